"""Pilot schemas: the declaration HR makes, and the effect Peil estimates."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

UnitKey = Annotated[str, StringConstraints(min_length=1, max_length=100, strip_whitespace=True)]
OUTCOMES = ("retention", "internal_mobility", "time_to_promotion")


class PilotCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, StringConstraints(min_length=1, max_length=200, strip_whitespace=True)]
    units: list[UnitKey] = Field(min_length=1, max_length=100, description="the pilot's units, each with its subtree")
    starts_on: date
    comparison_units: list[UnitKey] | None = Field(
        default=None, max_length=1000, description="default: the rest of the pilot's organisation"
    )


class Pilot(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    units: list[str]
    starts_on: date
    comparison_units: list[str] | None = Field(validation_alias="comparison")
    created_at: datetime


class PilotList(BaseModel):
    pilots: list[Pilot]


class Estimate(BaseModel):
    estimate: float
    se: float | None
    df: float | None = Field(description="degrees of freedom of the t-interval; null for a normal interval")
    ci_low: float | None = Field(description="95 % interval")
    ci_high: float | None


class GroupFigures(BaseModel):
    n: float = Field(description="people (for a rate: the mean headcount)")
    mean: float | None
    sd: float | None


class EffectPoint(BaseModel):
    """One wave or period the estimate reads: each group as its published cells give it (null: hidden)."""

    side: Literal["before", "after"]
    wave_id: int | None
    period: str | None
    label: str
    pilot: GroupFigures | None
    comparison: GroupFigures | None


class EffectGroups(BaseModel):
    pilot_before: GroupFigures
    pilot_after: GroupFigures
    comparison_before: GroupFigures
    comparison_after: GroupFigures


class Effect(BaseModel):
    """The pilot's effect on one construct or outcome: (pilot after - before) - (comparison after - before)."""

    pilot_id: int
    measure: Literal["construct", "outcome"]
    name: str = Field(description="the construct's id or the outcome's name")
    starts_on: date
    verdict: Literal["increase", "decrease", "no_clear_effect", "cannot_tell"]
    reasons: list[str] = Field(
        description="why it cannot tell: too_few_waves, groups_too_small, interval_too_wide, no_spread"
    )
    message_en: str
    message_nl: str
    useful: float | None = Field(
        description="an interval narrower than +-this around 0 rules out an effect that matters; null: no interval"
    )
    estimate: Estimate | None = Field(description="null unless every input cell is published")
    groups: EffectGroups | None
    pre_trend: Estimate | None = Field(description="the same estimator on the first and last wave before the start")
    parallel: bool | None = Field(description="false: the groups already drifted apart before the start")
    points: list[EffectPoint]
