"""API keys: a name, a role, and the SHA-256 of the key (the key itself is shown once and never stored).

A ``manager`` key reads the results of one unit and everything below it: it carries that unit; other roles
carry none.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from service.models.base import Base, utcnow

ROLES = ("hr", "dashboard", "admin", "manager")


class ApiKey(Base):
    __tablename__ = "api_keys"
    __table_args__ = (
        CheckConstraint("role IN ('hr', 'dashboard', 'admin', 'manager')", name="role"),
        CheckConstraint("(role = 'manager') = (unit_id IS NOT NULL)", name="manager_unit"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    role: Mapped[str] = mapped_column(String(16))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    unit_id: Mapped[int | None] = mapped_column(ForeignKey("units.id", ondelete="RESTRICT"), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]
