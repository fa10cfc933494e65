"""Outcome schemas: the counts HR uploads, and the guarded figures the API serves."""

from __future__ import annotations

import math
from datetime import date, datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from service.outcomes import periods
from service.results.schemas import REASON

UnitKey = Annotated[str, StringConstraints(min_length=1, max_length=100, strip_whitespace=True)]
Count = Annotated[int, Field(le=10_000_000, description="a count of people; not negative")]


def _period(text: str) -> str:
    periods.parse(text)
    return text


def _finite(value: float) -> float:
    if not math.isfinite(value):
        raise ValueError("must be a finite number")
    return value


class OutcomeIn(BaseModel):
    """One unit's own counts (not its subtree's) for one period."""

    model_config = ConfigDict(extra="forbid")

    unit_key: UnitKey
    period: Annotated[str, AfterValidator(_period)] = Field(description="a month (2026-03) or a quarter (2026-Q1)")
    headcount_start: Count
    headcount_end: Count
    leavers: Count
    moves_in: Count = Field(description="internal moves into the unit")
    moves_out: Count = Field(description="internal moves out of the unit (a move is counted where it left)")
    promotions: Count
    months_waited: Annotated[float, AfterValidator(_finite), Field(le=1e9)] = Field(
        default=0.0, description="the months those promoted had waited, summed"
    )


class OutcomesUpload(BaseModel):
    model_config = ConfigDict(extra="forbid")

    outcomes: list[OutcomeIn] = Field(max_length=200_000)


class UploadedPeriod(BaseModel):
    period: str
    units: int = Field(description="rows stored for the period")
    replaced: bool = Field(description="the period had been uploaded before: its rows were replaced")


class UploadResult(BaseModel):
    rows: int
    periods: list[UploadedPeriod]


class OutcomeFigures(BaseModel):
    """A unit's outcomes over a period, rolled up (its subtree). Hidden: no numbers at all."""

    unit: str
    parent: str | None
    suppressed: bool
    reason: str | None = Field(description=REASON)
    headcount_start: int | None
    headcount_end: int | None
    mean_headcount: float | None = Field(description="(headcount_start + headcount_end) / 2")
    leavers: int | None
    moves_in: int | None
    moves_out: int | None
    promotions: int | None
    retention: float | None = Field(description="1 - leavers / mean_headcount")
    internal_mobility: float | None = Field(description="moves_out / mean_headcount")
    time_to_promotion: float | None = Field(description="months waited / promotions; needs min_group_size promotions")
    promotion_reason: str | None = Field(description=f"why time_to_promotion is hidden in a shown unit: {REASON}")


class PeriodOutcomes(BaseModel):
    period: str
    kind: Literal["month", "quarter"]
    starts_on: date
    ends_on: date = Field(description="the period's last day")
    min_group_size: int
    built_at: datetime
    units: list[OutcomeFigures]


class Outcomes(BaseModel):
    periods: list[PeriodOutcomes] = Field(description="oldest first")
