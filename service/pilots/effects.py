"""A pilot's effect on a construct or an outcome: the published cells of stored tables in, ``scoring.effects`` out.

Nothing is computed from answers or counts again. For a construct, every closed wave whose instrument has it and
whose window lies wholly before or wholly after the start (a wave that straddles the start is left out) gives
a point: the pilot's units' total cells pooled, and the comparison's (its units' cells pooled, or the
organisation's cell minus the pilot's). For an outcome, every uploaded period (months when there are months on
both sides, else quarters) gives one the same way, from the period's guarded table. A hidden cell leaves its group
of that point empty, and the estimate is then withheld.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Literal

from sqlalchemy import select
from sqlalchemy.orm import Session

from scoring import ResultTable
from scoring.effects import Effect as Found
from scoring.effects import Group, Measure, PilotEffect, Point, pilot_effect, pool, rate, remainder
from scoring.outcomes import OutcomeTable
from service.errors import Unprocessable
from service.instruments.loader import Instruments
from service.models import Pilot, Wave
from service.outcomes import service as outcomes
from service.pilots import messages
from service.pilots.schemas import OUTCOMES, Effect, EffectGroups, EffectPoint, Estimate, GroupFigures
from service.results.service import table_of

USEFUL_SCALE_SHARE = 0.10  # a construct's effect that matters: a tenth of its scale (0.4 on 1-5, 0.6 on 1-7)
USEFUL_RATE = 0.05  # a rate's effect that matters: 5 percentage points
DEFAULT_MIN_GROUP_SIZE = 5

CellGroup = Callable[[str], Group | None]  # a unit's group in one table, None when hidden or absent


def _groups(
    pilot: Pilot, parents: dict[str, str | None], group: CellGroup, measure: Measure
) -> tuple[Group | None, Group | None]:
    """The pilot's group and the comparison's in one table (None: a cell they rest on is hidden or absent)."""
    parts = [group(key) for key in pilot.units]
    shown = [g for g in parts if g is not None]
    pilot_group = pool(shown, measure) if len(shown) == len(parts) else None
    if pilot.comparison is not None:
        others = [group(key) for key in pilot.comparison]
        found = [g for g in others if g is not None]
        return pilot_group, pool(found, measure) if len(found) == len(others) else None
    root = pilot.units[0]
    while (above := parents.get(root)) is not None:
        root = above
    whole = group(root) if root in parents else None
    if whole is None or pilot_group is None:
        return pilot_group, None
    return pilot_group, remainder(whole, shown, measure)


def _figures(g: Group) -> GroupFigures:
    return GroupFigures(n=g.n, mean=_num(g.mean), sd=_num(math.sqrt(g.var)) if g.var >= 0 else None)


def _shown(g: Group | None) -> GroupFigures | None:
    return None if g is None else _figures(g)


def _num(x: float) -> float | None:
    return x if math.isfinite(x) else None


def _estimate(e: Found | None) -> Estimate | None:
    if e is None:
        return None
    return Estimate(estimate=e.estimate, se=_num(e.se), df=_num(e.df), ci_low=_num(e.ci_low), ci_high=_num(e.ci_high))


def _effect(
    pilot: Pilot,
    measure: Literal["construct", "outcome"],
    name: str,
    found: PilotEffect,
    useful: float | None,
    points: Sequence[tuple[EffectPoint, Point]],
    unit: str,
) -> Effect:
    groups = None
    if found.groups is not None:
        pb, pa, cb, ca = (_figures(g) for g in found.groups)
        groups = EffectGroups(pilot_before=pb, pilot_after=pa, comparison_before=cb, comparison_after=ca)
    en, nl = messages.describe(found, name, pilot.starts_on, useful, unit)
    return Effect(
        pilot_id=pilot.id,
        measure=measure,
        name=name,
        starts_on=pilot.starts_on,
        verdict=found.verdict,
        reasons=list(found.reasons),
        message_en=en,
        message_nl=nl,
        useful=useful,
        estimate=_estimate(found.effect),
        groups=groups,
        pre_trend=_estimate(found.pre_trend),
        parallel=found.parallel,
        points=[shown for shown, _ in points],
    )


def _start(pilot: Pilot) -> datetime:
    return datetime(pilot.starts_on.year, pilot.starts_on.month, pilot.starts_on.day, tzinfo=UTC)


def _construct_group(table: ResultTable, construct: str) -> CellGroup:
    def group(key: str) -> Group | None:
        try:
            figures = table.cell(key).construct(construct)  # None when the cell is hidden
        except KeyError:
            return None
        if figures is None or figures.n == 0 or figures.mean is None:
            return None
        return Group(figures.n, figures.mean, math.nan if figures.sd is None else figures.sd**2)

    return group


def construct_effect(session: Session, pilot: Pilot, construct: str, instruments: Instruments) -> Effect:
    """The pilot's effect on a construct's mean, from the stored tables of closed waves."""
    having = {key for key, loaded in instruments.items() if construct in {c.id for c in loaded.instrument.constructs}}
    if not having:
        known = sorted({c.id for loaded in instruments.values() for c in loaded.instrument.constructs})
        raise Unprocessable(
            f"no instrument has a construct {construct!r}; known: {', '.join(known)}",
            details=[{"field": "construct", "reason": "unknown construct"}],
        )
    start = _start(pilot)
    closed = session.scalars(select(Wave).where(Wave.state == "closed").order_by(Wave.closes_at, Wave.id))
    points: list[tuple[EffectPoint, Point]] = []
    k, scale = DEFAULT_MIN_GROUP_SIZE, 4.0
    for wave in closed:
        if (wave.instrument, wave.version) not in having or not (wave.closes_at <= start or wave.opens_at >= start):
            continue  # another instrument, or the wave straddles the start
        table = table_of(session, wave)
        if table is None:
            continue  # closed without a stored table (see `peil results rebuild`): it publishes nothing
        info = next(c for c in table.constructs if c.id == construct)
        k, scale = max(k, table.min_group_size), float(info.max - info.min)
        parents = {u.key: u.parent for u in table.units}
        pilot_group, comparison = _groups(pilot, parents, _construct_group(table, construct), "score")
        after = wave.opens_at >= start
        shown = EffectPoint(
            side="after" if after else "before",
            wave_id=wave.id,
            period=None,
            label=wave.name,
            pilot=_shown(pilot_group),
            comparison=_shown(comparison),
        )
        points.append((shown, Point(wave.name, after, pilot_group, comparison)))
    useful = USEFUL_SCALE_SHARE * scale
    found = pilot_effect([p for _, p in points], measure="score", min_group_size=k, useful=useful)
    return _effect(pilot, "construct", construct, found, useful, points, "points")


def _outcome_group(table: OutcomeTable, outcome: str) -> CellGroup:
    def group(key: str) -> Group | None:
        try:
            cell = table.cell(key)
        except KeyError:
            return None
        if cell.suppressed or cell.mean_headcount is None or cell.leavers is None or cell.moves_out is None:
            return None
        events = cell.mean_headcount - cell.leavers if outcome == "retention" else cell.moves_out
        return rate(events, cell.mean_headcount)

    return group


def outcome_effect(session: Session, pilot: Pilot, outcome: str) -> Effect:
    """The pilot's effect on an outcome's rate, from the guarded tables of the uploaded periods."""
    if outcome not in OUTCOMES:
        raise Unprocessable(
            f"unknown outcome {outcome!r}; known: {', '.join(OUTCOMES)}",
            details=[{"field": "outcome", "reason": "unknown outcome"}],
        )
    if outcome == "time_to_promotion":
        found = PilotEffect("cannot_tell", ("no_spread",))
        return _effect(pilot, "outcome", outcome, found, None, [], "months")
    start = _start(pilot)
    tables = outcomes.stored(session)
    sides = {(p.kind, p.end <= start, p.start >= start) for p, _, _ in tables}
    kind = "month" if {("month", True, False), ("month", False, True)} <= sides else "quarter"
    points: list[tuple[EffectPoint, Point]] = []
    k = DEFAULT_MIN_GROUP_SIZE
    for period, _built_at, table in tables:
        if period.kind != kind or not (period.end <= start or period.start >= start):
            continue
        k = max(k, table.min_group_size)
        parents = {c.unit: c.parent for c in table.cells}
        pilot_group, comparison = _groups(pilot, parents, _outcome_group(table, outcome), "rate")
        after = period.start >= start
        shown = EffectPoint(
            side="after" if after else "before",
            wave_id=None,
            period=period.name,
            label=period.name,
            pilot=_shown(pilot_group),
            comparison=_shown(comparison),
        )
        points.append((shown, Point(period.name, after, pilot_group, comparison)))
    found = pilot_effect([p for _, p in points], measure="rate", min_group_size=k, useful=USEFUL_RATE)
    return _effect(pilot, "outcome", outcome, found, USEFUL_RATE, points, "rate")
