"""Mail bookkeeping that names nobody: reminder rounds of a wave, and the one row that lets one worker send."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from service.models.base import Base, utcnow


class ReminderRound(Base):
    """HR's request to remind a wave's non-respondents, worked through in token-hash order.

    How far the round got is sealed under the service secret (``sealed_cursor``): a plain position would point
    at the last participant reminded, that is at someone who had not answered.
    """

    __tablename__ = "reminder_rounds"

    id: Mapped[int] = mapped_column(primary_key=True)
    wave_id: Mapped[int] = mapped_column(ForeignKey("waves.id", ondelete="CASCADE"), index=True)
    requested_at: Mapped[datetime] = mapped_column(default=utcnow)
    not_before: Mapped[datetime]  # 48 hours after the wave's previous round finished
    sealed_cursor: Mapped[bytes | None] = mapped_column(LargeBinary)
    retries: Mapped[int] = mapped_column(default=0)  # temporary refusals of the message at the cursor
    retry_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]


class MailLock(Base):
    """A single row (id 1): which worker sends mail and until when its claim holds without renewal.

    ``paused_until`` and ``failures`` hold the back-off while the mail server cannot be reached.
    """

    __tablename__ = "mail_lock"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    owner: Mapped[str | None] = mapped_column(String(100))
    locked_until: Mapped[datetime]
    paused_until: Mapped[datetime | None]
    failures: Mapped[int] = mapped_column(default=0)
