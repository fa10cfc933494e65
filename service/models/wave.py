"""Survey waves: one run of an instrument for a population, with a window and a minimum group size.

``draft -> open -> closing -> closed``: a closing wave takes no answers, and its close job (``service.waves.close``)
builds and stores its result table, then marks it closed. The ``close_*`` columns are that job's state, on the
wave itself so that HR sees it: how often it ran, why it last failed, when it may run again, and which worker
holds it (a lease that lapses if that worker dies).

A wave's ``kind``: ``single`` (a run with a fixed participant list), ``continuous`` (the exit survey: it takes
participants while open, and publishes its answers per period, ``service.waves.periods``), or ``period`` (one
published period of a continuous wave, ``parent_id``: its answers moved into it, closed like any wave). A
``scope_unit_id`` limits a wave to a subtree of the org tree: its participants and its table.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import CheckConstraint, ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from service.models.base import Base, utcnow

STATES = ("draft", "open", "closing", "closed")
KINDS = ("single", "continuous", "period")


class Wave(Base):
    __tablename__ = "waves"
    __table_args__ = (
        CheckConstraint("state IN ('draft', 'open', 'closing', 'closed')", name="state"),
        CheckConstraint("min_group_size >= 3", name="min_group_size"),
        CheckConstraint("closes_at > opens_at", name="window"),
        CheckConstraint("kind IN ('single', 'continuous', 'period')", name="kind"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    instrument: Mapped[str] = mapped_column(String(64))
    version: Mapped[int]
    opens_at: Mapped[datetime]
    closes_at: Mapped[datetime]
    min_group_size: Mapped[int]
    attributes: Mapped[list[str]]
    language: Mapped[str] = mapped_column(String(2), default="nl")  # of the mails; a participant's row may differ
    # The values seen per attribute over all uploads (not per person: invitations keep theirs sealed).
    attribute_values: Mapped[dict[str, Any]] = mapped_column(default=dict)
    state: Mapped[str] = mapped_column(String(8), default="draft", index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    opened_at: Mapped[datetime | None]
    closed_at: Mapped[datetime | None]
    close_attempts: Mapped[int] = mapped_column(default=0, server_default="0")
    close_error: Mapped[str | None] = mapped_column(Text)
    close_retry_at: Mapped[datetime | None]
    close_owner: Mapped[str | None] = mapped_column(String(100))
    close_lease_until: Mapped[datetime | None]
    kind: Mapped[str] = mapped_column(String(10), default="single", server_default="single")
    scope_unit_id: Mapped[int | None] = mapped_column(ForeignKey("units.id", ondelete="RESTRICT"))
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("waves.id", ondelete="CASCADE"), index=True)
