"""Mobility outcomes: HR's counts per unit and period, and the guarded table built from them once per upload."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import CheckConstraint, ForeignKey, LargeBinary, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from service.models.base import Base, utcnow


class OutcomeCount(Base):
    """A unit's own counts (not its subtree's) for one period, as HR uploaded them: counts, never people."""

    __tablename__ = "outcome_counts"
    __table_args__ = (
        UniqueConstraint("period", "unit_id"),
        CheckConstraint(
            "headcount_start >= 0 AND headcount_end >= 0 AND leavers >= 0 AND moves_in >= 0 AND moves_out >= 0 "
            "AND promotions >= 0 AND months_waited >= 0",
            name="not_negative",
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    period: Mapped[str] = mapped_column(String(7), index=True)  # 2026-03 or 2026-Q1
    unit_id: Mapped[int] = mapped_column(ForeignKey("units.id", ondelete="RESTRICT"), index=True)
    headcount_start: Mapped[int]
    headcount_end: Mapped[int]
    leavers: Mapped[int]
    moves_in: Mapped[int]
    moves_out: Mapped[int]
    promotions: Mapped[int]
    months_waited: Mapped[float]


class OutcomePeriod(Base):
    """One uploaded period and its published table (``scoring.OutcomeTable``), built once when it was uploaded."""

    __tablename__ = "outcome_periods"

    period: Mapped[str] = mapped_column(String(7), primary_key=True)
    starts_on: Mapped[date]
    ends_on: Mapped[date]  # the period's last day
    min_group_size: Mapped[int]
    built_at: Mapped[datetime] = mapped_column(default=utcnow)
    table: Mapped[bytes] = mapped_column(LargeBinary)  # gzip-compressed JSON of OutcomeTable.to_dict()
