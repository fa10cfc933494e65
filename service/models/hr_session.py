"""Signed-in sessions of the HR pages: which key signed in, its form token, its language, when last seen.

The browser holds a random token (in a signed cookie); the row is keyed by the token's SHA-256, so a copy of the
database opens no session. A session idle for longer than the pages allow is deleted when next seen.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from service.models.base import Base, utcnow


class HrSession(Base):
    __tablename__ = "hr_sessions"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # SHA-256 of the cookie's token, hex
    key_id: Mapped[int] = mapped_column(ForeignKey("api_keys.id", ondelete="CASCADE"), index=True)
    csrf: Mapped[str] = mapped_column(String(64))  # the token every form of the session carries
    lang: Mapped[str] = mapped_column(String(2))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
