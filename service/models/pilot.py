"""Pilots: a set of units trying something from a start date, against comparison units."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import JSON, String
from sqlalchemy.orm import Mapped, mapped_column

from service.models.base import Base, utcnow


class Pilot(Base):
    __tablename__ = "pilots"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    starts_on: Mapped[date]
    units: Mapped[list[str]]  # unit keys: each unit with its subtree
    comparison: Mapped[list[str] | None] = mapped_column(JSON)  # unit keys; null: the rest of the organisation
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
