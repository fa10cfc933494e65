"""Slices of a stored result table, as API models: every query reads the one table, nothing is recomputed."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Collection
from typing import Generic, TypeVar

from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.orm import Session

from scoring import ResultCell, ResultTable
from scoring.drivers import MIN_N, STRONG
from service.auth import Scope
from service.errors import NotFound, Unprocessable
from service.instruments.loader import Instruments
from service.models import Unit, Wave
from service.results import schemas
from service.results.schemas import plain
from service.results.service import table_of

Out = TypeVar("Out", bound=BaseModel)


class Rendered(Generic[Out]):
    """An answer that depends only on the stored table, with its JSON: made once per table, not once per call."""

    def __init__(self, out: Out) -> None:
        self.out = out
        self.json = out.model_dump_json(by_alias=True).encode()


class _Views:
    """Whole-table answers (heatmap, flags) per wave, kept while the table object is the one the cache serves:
    a rebuild gives a new table object, so a stale answer is never returned."""

    def __init__(self, size: int = 32) -> None:
        self._items: OrderedDict[tuple[str, int], tuple[ResultTable, Rendered[BaseModel]]] = OrderedDict()
        self._size = size
        self._lock = threading.Lock()

    def get(self, name: str, table: ResultTable, make: Callable[[ResultTable], Out]) -> Rendered[Out]:
        key = (name, table.wave_id)
        with self._lock:
            hit = self._items.get(key)
        if hit is not None and hit[0] is table:
            return hit[1]  # type: ignore[return-value]
        rendered = Rendered(make(table))
        with self._lock:
            self._items[key] = (table, rendered)  # type: ignore[assignment]
            self._items.move_to_end(key)
            while len(self._items) > self._size:
                self._items.popitem(last=False)
        return rendered


views = _Views()


def _infos(table: ResultTable) -> tuple[list[schemas.ConstructInfo], list[schemas.ItemInfo]]:
    constructs = [schemas.ConstructInfo.model_validate(plain(c)) for c in table.constructs]
    items = [schemas.ItemInfo.model_validate(plain(i)) for i in table.items]
    return constructs, items


def cell(c: ResultCell) -> schemas.Cell:
    return schemas.Cell.model_validate(c.to_dict())


def within(table: ResultTable, scope: Scope) -> set[str] | None:
    """The units of the table the scope may read (None: all), by the tree as the table recorded it."""
    return scope.within((u.key, u.parent) for u in table.units)


def _units(table: ResultTable, unit: str | None, inside: Collection[str] | None = None) -> list[str]:
    """The asked unit, or the roots of the tree (the organisations) when none is asked. A unit outside
    ``inside`` (a manager's part) is answered as an unknown one."""
    if unit is None:
        return [u.key for u in table.units if u.parent is None]
    if unit not in {u.key for u in table.units} or (inside is not None and unit not in inside):
        raise NotFound(f"no unit {unit!r} in the results of wave {table.wave_id}")
    return [unit]


def results(
    table: ResultTable, unit: str | None, by: str | None, inside: Collection[str] | None = None
) -> schemas.Results:
    """The unit's total cell and, with ``by``, its cuts by that one attribute (rule 4: one attribute at a time).
    With ``inside`` (a manager's part) only a unit in it is answered."""
    names = [a.name for a in table.attributes]
    if by is not None and by not in names:
        known = ", ".join(names) or "none"
        raise Unprocessable(
            f"wave {table.wave_id} cannot be cut by {by!r}; its attributes: {known}",
            details=[{"field": "by", "reason": "not an attribute of this wave"}],
        )
    parents = {u.key: u.parent for u in table.units}
    shown = _units(table, unit, inside)
    units = [
        schemas.UnitResults(
            unit=key,
            parent=parents[key],
            total=cell(table.cell(key)),
            cuts=[cell(c) for c in table.cuts(key, by)] if by is not None else [],
            changes=[schemas.Change.model_validate(plain(c)) for c in table.changes if c.unit == key],
        )
        for key in shown
    ]
    constructs, items = _infos(table)
    return schemas.Results(
        wave_id=table.wave_id,
        instrument=table.instrument,
        version=table.version,
        min_group_size=table.min_group_size,
        previous_wave_id=table.previous_wave_id,
        by=by,
        constructs=constructs,
        items=items,
        units=units,
        reliability=[schemas.Reliability.model_validate(plain(r)) for r in table.reliability if r.unit in shown],
        publication=publication(table) if inside is None else None,  # a manager sees their part only
    )


def publication(table: ResultTable) -> schemas.Publication | None:
    """What the guard published of the table's eligible cells (``scoring.loss``); None for an older table."""
    return None if table.publication is None else schemas.Publication.model_validate(table.publication.to_dict())


def heatmap(table: ResultTable) -> schemas.Heatmap:
    """Every unit x every construct: mean, favourable share and n, or the hidden mark and its reason."""
    rows = []
    for info in table.units:
        total = table.cell(info.key)
        if total.suppressed:
            figures = [
                schemas.HeatmapCell(
                    construct=c.id, n=None, mean=None, favourable=None, suppressed=True, reason=total.reason
                )
                for c in table.constructs
            ]
        else:
            by_id = {f.construct: f for f in total.constructs}
            figures = [
                schemas.HeatmapCell(
                    construct=c.id,
                    n=by_id[c.id].n,
                    mean=by_id[c.id].mean,
                    favourable=by_id[c.id].favourable,
                    suppressed=False,
                    reason=None,
                    favourable_suppressed=by_id[c.id].favourable_suppressed,
                )
                for c in table.constructs
            ]
        rows.append(
            schemas.HeatmapRow(
                unit=info.key,
                parent=info.parent,
                n=total.n,
                suppressed=total.suppressed,
                reason=total.reason,
                constructs=figures,
            )
        )
    constructs, _items = _infos(table)
    return schemas.Heatmap(
        wave_id=table.wave_id,
        min_group_size=table.min_group_size,
        constructs=constructs,
        units=rows,
        publication=publication(table),
    )


def heatmap_within(whole: schemas.Heatmap, unit: str, inside: Collection[str]) -> schemas.Heatmap:
    """A manager's heatmap: their organisation's row first (the reference line), then the rows of their part."""
    parents = {row.unit: row.parent for row in whole.units}
    root: str | None = unit
    while root is not None and parents.get(root) is not None:
        root = parents[root]
    rows = [row for row in whole.units if row.unit == root and row.unit not in inside]
    rows += [row for row in whole.units if row.unit in inside]
    return whole.model_copy(update={"units": rows, "publication": None})  # the whole table's counts: HR's


def flags(table: ResultTable) -> schemas.Flags:
    return schemas.Flags(wave_id=table.wave_id, flags=[schemas.Flag.model_validate(f.to_dict()) for f in table.flags])


def flags_within(whole: schemas.Flags, inside: Collection[str]) -> schemas.Flags:
    """The flags of a manager's part."""
    return whole.model_copy(update={"flags": [f for f in whole.flags if f.unit in inside]})


def heatmap_view(table: ResultTable, scope: Scope) -> Rendered[schemas.Heatmap]:
    """The heatmap the scope may read, made once per table and scope."""
    whole = views.get("heatmap", table, heatmap)
    if scope.unit is None:
        return whole
    unit, inside = scope.unit, within(table, scope) or set()
    return views.get(f"heatmap:{unit}", table, lambda _table: heatmap_within(whole.out, unit, inside))


def flags_view(table: ResultTable, scope: Scope) -> Rendered[schemas.Flags]:
    """The flags the scope may read, made once per table and scope."""
    whole = views.get("flags", table, flags)
    if scope.unit is None:
        return whole
    inside = within(table, scope) or set()
    return views.get(f"flags:{scope.unit}", table, lambda _table: flags_within(whole.out, inside))


def comments(table: ResultTable, unit: str | None) -> schemas.Comments:
    """Free texts under rule 6, as the table decided them: groups of at least 2k, shuffled, no metadata."""
    shown = _units(table, unit)
    stored = {c.unit: c for c in table.comments}
    units = []
    for key in shown:
        found = stored.get(key)
        if found is None:  # the table has no free text for the unit at all: nobody wrote any
            units.append(schemas.UnitComments(unit=key, suppressed=True, reason="empty", items=[]))
            continue
        units.append(
            schemas.UnitComments(
                unit=key,
                suppressed=found.suppressed,
                reason=found.reason,
                items=[]
                if found.suppressed
                else [schemas.CommentGroup(item=g.item, texts=list(g.texts)) for g in found.items],
            )
        )
    return schemas.Comments(wave_id=table.wave_id, min_group_size=table.min_group_size, units=units)


def trend(session: Session, unit: str, construct: str, instruments: Instruments) -> schemas.Trend:
    """The construct in the unit over every closed wave whose instrument has it, oldest first, each point read
    from that wave's own stored table (so it shows exactly what that wave published)."""
    having = {key for key, loaded in instruments.items() if construct in {c.id for c in loaded.instrument.constructs}}
    if not having:
        known = sorted({c.id for loaded in instruments.values() for c in loaded.instrument.constructs})
        raise Unprocessable(
            f"no instrument has a construct {construct!r}; known: {', '.join(known)}",
            details=[{"field": "construct", "reason": "unknown construct"}],
        )
    waves = [
        w
        for w in session.scalars(select(Wave).where(Wave.state == "closed").order_by(Wave.closes_at, Wave.id))
        if (w.instrument, w.version) in having
    ]
    points = []
    known_unit = session.scalar(select(Unit.id).where(Unit.key == unit)) is not None
    for wave in waves:
        table = table_of(session, wave)
        base = {
            "wave_id": wave.id,
            "wave": wave.name,
            "instrument": wave.instrument,
            "version": wave.version,
            "closed_at": wave.closed_at or wave.closes_at,
        }
        blank = {"n": None, "mean": None, "ci_low": None, "ci_high": None, "favourable": None, "index": None}
        if table is None:
            points.append(schemas.TrendPoint(**base, **blank, suppressed=True, reason="not_built"))
            continue
        try:
            total = table.cell(unit)
        except KeyError:  # the unit did not exist then: nobody answered in it
            points.append(schemas.TrendPoint(**base, **blank, suppressed=True, reason="empty"))
            continue
        known_unit = True
        figures = total.construct(construct)
        if total.suppressed or figures is None:
            points.append(schemas.TrendPoint(**base, **blank, suppressed=True, reason=total.reason or "empty"))
            continue
        points.append(
            schemas.TrendPoint(
                **base,
                n=figures.n,
                mean=figures.mean,
                ci_low=figures.ci_low,
                ci_high=figures.ci_high,
                favourable=figures.favourable,
                index=figures.index,
                suppressed=False,
                reason=None,
            )
        )
    if not known_unit:
        raise NotFound(f"no unit {unit!r}")
    return schemas.Trend(unit=unit, construct=construct, points=points)


def drivers(table: ResultTable, unit: str | None, inside: Collection[str] | None = None) -> schemas.Drivers:
    """Drivers and focus areas as the table stored them: of the unit asked, or of every unit that has them (with
    ``inside``, a manager's part, only units in it)."""
    relations: dict[str, list[schemas.Relation]] = {}
    focus: dict[str, list[schemas.FocusArea]] = {}
    for r in table.drivers.relations:
        relations.setdefault(r.unit, []).append(schemas.Relation.model_validate(plain(r)))
    for a in table.drivers.focus_areas:
        focus.setdefault(a.unit, []).append(schemas.FocusArea.model_validate(plain(a)))
    if unit is not None:
        keys = _units(table, unit, inside)
    else:
        keys = [u.key for u in table.units if u.key in relations and (inside is None or u.key in inside)]
    units = []
    for key in keys:
        cell = table.cell(key)
        reason = None
        if key not in relations:
            reason = cell.reason if cell.suppressed else "too_few" if (cell.n or 0) < MIN_N else "withheld"
        units.append(
            schemas.UnitDrivers(
                unit=key,
                available=key in relations,
                reason=reason,
                relations=relations.get(key, []),
                focus_areas=focus.get(key, []),
            )
        )
    return schemas.Drivers(wave_id=table.wave_id, min_n=MIN_N, strong=STRONG, units=units)
