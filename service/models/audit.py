"""The audit log: which key (or command) did what to which wave, when. Never anything of respondents."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from service.models.base import Base, utcnow


class AuditEntry(Base):
    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    key_name: Mapped[str] = mapped_column(String(100))
    by_key_id: Mapped[int | None]  # the API key that acted; null for the command line and the clock
    action: Mapped[str] = mapped_column(String(40))
    wave_id: Mapped[int | None]
    detail: Mapped[dict[str, Any]] = mapped_column(default=dict)
