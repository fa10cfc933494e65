"""Export runs and the export lock: the history HR reads, and the row that lets one run happen at a time."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, CheckConstraint, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from service.models.base import Base, utcnow

RUN_STATES = ("running", "succeeded", "failed")


class ExportRun(Base):
    """One export run: what it wrote where, and how it ended.

    ``exported`` is the state of the target after a successful run (wave id -> the ``built_at`` of the result
    table it holds); the next incremental run compares it with ``wave_results.built_at``.
    """

    __tablename__ = "export_runs"
    __table_args__ = (CheckConstraint("status IN ('running', 'succeeded', 'failed')", name="status"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    status: Mapped[str] = mapped_column(String(12), default="running", index=True)
    trigger: Mapped[str] = mapped_column(String(16))  # cli, api, schedule
    full: Mapped[bool] = mapped_column(default=False)
    target: Mapped[str] = mapped_column(String(500))  # never with credentials
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None]
    waves: Mapped[list[int]] = mapped_column(JSON, default=list)  # ids of the waves this run wrote
    rows: Mapped[dict[str, Any]] = mapped_column(default=dict)  # table -> rows written
    exported: Mapped[dict[str, Any]] = mapped_column(default=dict)  # wave id -> built_at, after the run
    checksum: Mapped[str | None] = mapped_column(String(64))
    error: Mapped[str | None] = mapped_column(Text)


class ExportLock(Base):
    """A single row (id 1): who runs the export and until when the claim holds without a heartbeat.

    ``slot`` is the last scheduled time a run was started for, so that every worker firing the same cron
    tick finds the slot taken, even after the winner has finished.
    """

    __tablename__ = "export_lock"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    owner: Mapped[str | None] = mapped_column(String(100))
    run_id: Mapped[int | None]
    locked_until: Mapped[datetime]
    slot: Mapped[datetime | None]
