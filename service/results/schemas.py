"""Results out of the API: pydantic mirrors of the stored ``scoring.ResultTable``, so the OpenAPI schema is exact."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

# "construct" (the domain's word for a scale) is a field of the JSON; in Python it is ``construct_id``, because
# ``BaseModel.construct`` is pydantic's own (v1's name of ``model_construct``).

WITHHELD = (
    "true when the cell is published but this statistic is withheld (its figures null): the guard's second stage "
    "hid it so that no small group can be worked out from it"
)
REASON = (
    "why a cell is hidden: primary (rests on 1 to k-1 respondents), complementary (hidden so a small cell "
    "cannot be recovered by subtraction), range (hidden so the scale's bounds cannot pin a hidden mean), "
    "empty (nobody); null when published"
)


class ConstructInfo(BaseModel):
    id: str
    scale: str
    min: int
    max: int
    favourable_min: float
    items: list[str]


class ItemInfo(BaseModel):
    """An item with a distribution; ``points`` label the entries of ``counts`` in every cell."""

    id: str
    type: str
    construct_id: str | None = Field(alias="construct")
    points: list[str]


class ConstructFigures(BaseModel):
    construct_id: str = Field(alias="construct")
    n: int
    mean: float | None
    sd: float | None
    ci_low: float | None = Field(description="t-interval, 95 %")
    ci_high: float | None
    favourable: float | None = Field(description="share of respondents in the top two boxes")
    favourable_low: float | None = Field(description="Wilson interval, 95 %")
    favourable_high: float | None
    index: float | None = Field(description="100 (mean - min) / (max - min)")
    favourable_suppressed: bool = Field(False, description=WITHHELD)
    favourable_reason: str | None = Field(None, description="why the favourable share is withheld; else null")


class ItemFigures(BaseModel):
    item: str
    n: int | None
    counts: list[int] = Field(description="empty when withheld")
    mean: float | None
    suppressed: bool = Field(False, description=WITHHELD)
    reason: str | None = Field(None, description="why the item is withheld; else null")


class Enps(BaseModel):
    n: int | None
    score: float | None
    ci_low: float | None
    ci_high: float | None
    promoters: int | None
    passives: int | None
    detractors: int | None
    suppressed: bool = Field(False, description=WITHHELD)
    reason: str | None = Field(None, description="why eNPS is withheld; else null")


class Tally(BaseModel):
    eligible: int = Field(description="cells with at least min_group_size respondents")
    published: int


class PublicationLevel(BaseModel):
    depth: int = Field(description="0: the organisations, 1: the units below them, ...")
    totals: Tally
    cuts: Tally


class Publication(BaseModel):
    """What the guard published of the table's eligible cells (at least ``min_group_size`` respondents)."""

    totals: Tally = Field(description="unit totals")
    cuts: Tally = Field(description="units cut by one attribute value")
    protecting_others: int = Field(description="eligible cells hidden to protect others (complementary, range)")
    details_withheld: int = Field(
        description="eligible published cells whose favourable shares, eNPS and items are withheld"
    )
    levels: list[PublicationLevel] = Field(description="the same per level of the tree")


class Cell(BaseModel):
    """A unit rolled up (``attribute`` null) or a unit cut by one attribute value. Hidden: no numbers at all."""

    unit: str
    attribute: str | None
    value: str | None
    n: int | None
    suppressed: bool
    reason: str | None = Field(description=REASON)
    constructs: list[ConstructFigures]
    items: list[ItemFigures]
    enps: Enps | None


class Change(BaseModel):
    """The unit's construct against the previous wave (Welch or eNPS z test, Benjamini-Hochberg adjusted)."""

    construct_id: str = Field(alias="construct")
    suppressed: bool
    reason: str | None
    test: str
    n: int | None
    mean: float | None
    previous_n: int | None
    previous_mean: float | None
    difference: float | None
    statistic: float | None
    df: float | None
    p: float | None
    p_adjusted: float | None
    significant: bool | None


class UnitResults(BaseModel):
    unit: str
    parent: str | None
    total: Cell
    cuts: list[Cell] = Field(description="the unit cut by each value of `by`, in the order of the values")
    changes: list[Change]


class Reliability(BaseModel):
    unit: str
    construct_id: str = Field(alias="construct")
    suppressed: bool
    n: int | None
    items: int
    alpha: float | None
    ci_low: float | None
    ci_high: float | None
    method: str
    rwg: float | None
    icc1: float | None
    teams: int | None


class Results(BaseModel):
    wave_id: int
    instrument: str
    version: int
    min_group_size: int
    previous_wave_id: int | None
    by: str | None
    constructs: list[ConstructInfo]
    items: list[ItemInfo]
    units: list[UnitResults]
    reliability: list[Reliability] = Field(description="internal consistency, for the organisation units shown")
    publication: Publication | None = Field(
        None, description="what the guard published of the whole table; null for a table built before it was counted"
    )


class HeatmapCell(BaseModel):
    construct_id: str = Field(alias="construct")
    n: int | None
    mean: float | None
    favourable: float | None
    suppressed: bool
    reason: str | None = Field(description=REASON)
    favourable_suppressed: bool = Field(False, description=WITHHELD)


class HeatmapRow(BaseModel):
    unit: str
    parent: str | None
    n: int | None
    suppressed: bool
    reason: str | None = Field(description=REASON)
    constructs: list[HeatmapCell]


class Heatmap(BaseModel):
    wave_id: int
    min_group_size: int
    constructs: list[ConstructInfo]
    units: list[HeatmapRow]
    publication: Publication | None = Field(None, description="what the guard published of the whole table")


class Flag(BaseModel):
    unit: str
    construct_id: str | None = Field(alias="construct")
    rule: str = Field(description="below, below_org, decline, barrier or participation")
    severity: str
    evidence: dict[str, float | int | str | None]
    message_nl: str
    message_en: str


class Flags(BaseModel):
    wave_id: int
    flags: list[Flag]


class CommentGroup(BaseModel):
    item: str
    texts: list[str] = Field(description="shuffled, without metadata")


class UnitComments(BaseModel):
    unit: str
    suppressed: bool
    reason: str | None = Field(description=f"{REASON}; comments need at least twice the minimum group size")
    items: list[CommentGroup]


class Comments(BaseModel):
    wave_id: int
    min_group_size: int
    units: list[UnitComments]


class TrendPoint(BaseModel):
    wave_id: int
    wave: str
    instrument: str
    version: int
    closed_at: datetime | None
    n: int | None
    mean: float | None
    ci_low: float | None
    ci_high: float | None
    favourable: float | None
    index: float | None
    suppressed: bool
    reason: str | None = Field(description=f"{REASON}; not_built: the wave's table is not stored")


class Trend(BaseModel):
    unit: str
    construct_id: str = Field(alias="construct")
    points: list[TrendPoint] = Field(description="closed waves whose instrument has the construct, oldest first")


def plain(obj: Any) -> dict[str, Any]:
    """A frozen dataclass of ``scoring.tables`` as a dict for these models (tuples become lists on validation)."""
    return dict(obj.__dict__)


class Relation(BaseModel):
    """How a construct goes with an outcome among the unit's respondents: Pearson r, Fisher-z 95 % interval."""

    outcome: str = Field(description="enps or intention_to_stay")
    construct_id: str = Field(alias="construct")
    n: int = Field(description="respondents with both")
    r: float | None = Field(description="null below 30 respondents")
    ci_low: float | None
    ci_high: float | None


class FocusArea(BaseModel):
    """A construct that lags (index below the baseline) and goes with the outcome (r >= 0.3, interval above 0)."""

    outcome: str
    rank: int = Field(description="1 first: ranked by priority = r x (baseline - index)")
    construct_id: str = Field(alias="construct")
    r: float
    ci_low: float
    ci_high: float
    index: float = Field(description="the construct's 0-100 index in the unit")
    baseline: float = Field(description="the organisation's index (at the top: the mean index of its constructs)")
    gap: float
    priority: float


class UnitDrivers(BaseModel):
    unit: str
    available: bool
    reason: str | None = Field(
        description="why there are none: the cell is hidden (its reason), too_few (under 30 respondents), or "
        "withheld (the guard hid them so that no small group can be worked out)"
    )
    relations: list[Relation]
    focus_areas: list[FocusArea]


class Drivers(BaseModel):
    wave_id: int
    min_n: int = Field(description="respondents a cell needs for its correlations")
    strong: float = Field(description="the r a focus area needs")
    units: list[UnitDrivers]
