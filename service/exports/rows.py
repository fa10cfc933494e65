"""From a stored result table to the exported Arrow tables: a change of shape, never a new number.

Every value comes from the ``ResultTable`` the API serves (or, for the ``waves``/``units``/``instruments``
tables, from the wave's own row, the unit names and the published instrument's hash). Hidden cells stay: one
row per construct with ``suppressed = true``, the reason, and null values. Comments are not exported at all:
free text is shown to HR only, under rule 6 of the design. ``check_safe`` refuses a table in which a count
column holds a group smaller than the wave's minimum, whatever produced it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from scoring import ResultTable
from service.exports.schema import COUNT_COLUMNS, KEYS, SCHEMAS

_CONSTRUCT_FIELDS = (
    "mean",
    "sd",
    "ci_low",
    "ci_high",
    "favourable",
    "favourable_low",
    "favourable_high",
    "index",
)
_ENPS_FIELDS = ("enps_n", "enps", "enps_low", "enps_high", "promoters", "passives", "detractors")


class UnsafeExport(RuntimeError):
    """A table about to be exported holds a group below the minimum: nothing is written."""


@dataclass(frozen=True)
class WaveInfo:
    """What the export knows about a wave besides its result table (names and times, no statistic)."""

    name: str
    opens_at: datetime
    closes_at: datetime
    closed_at: datetime | None
    attributes: tuple[str, ...]
    built_at: datetime
    unit_names: Mapping[str, str]
    instrument_sha256: str | None


def _table(name: str, columns: Mapping[str, list[Any]]) -> pa.Table:
    schema = SCHEMAS[name]
    return pa.Table.from_arrays([pa.array(columns[f.name], type=f.type) for f in schema], schema=schema)


def _columns(name: str) -> dict[str, list[Any]]:
    return {f.name: [] for f in SCHEMAS[name]}


def _records(name: str, wave_id: int, records: Iterable[Mapping[str, Any]]) -> pa.Table:
    columns = _columns(name)
    for record in records:
        for column, values in columns.items():
            values.append(wave_id if column == "wave_id" else record.get(column))
    return _table(name, columns)


def _depths(table: ResultTable) -> dict[str, int]:
    depth: dict[str, int] = {}
    for unit in table.units:  # parents come first
        depth[unit.key] = 0 if unit.parent is None else depth[unit.parent] + 1
    return depth


def _cells(table: ResultTable) -> pa.Table:
    constructs = [c.id for c in table.constructs]
    nps = {c.id for c in table.constructs if c.scale == "nps"}
    cols = _columns("cells")
    key_cols = [cols["unit"], cols["attribute"], cols["value"], cols["construct"]]
    flag_cols = [cols["suppressed"], cols["reason"], cols["n"], cols["construct_n"]]
    stat_cols = [cols[f] for f in _CONSTRUCT_FIELDS]
    enps_cols = [cols[f] for f in _ENPS_FIELDS]
    blank_stats = (None,) * len(_CONSTRUCT_FIELDS)
    blank_enps = (None,) * len(_ENPS_FIELDS)
    for cell in table.cells:
        keys = (cell.unit, cell.attribute or "", cell.value or "")
        by_id = {c.construct: c for c in cell.constructs}
        enps = cell.enps
        for construct in constructs:
            for col, v in zip(key_cols, (*keys, construct), strict=True):
                col.append(v)
            c = None if cell.suppressed else by_id.get(construct)
            if c is None:
                flags = (cell.suppressed, cell.reason, cell.n, None if cell.suppressed else 0)
                stats: tuple[Any, ...] = blank_stats
            else:
                flags = (False, None, cell.n, c.n)
                stats = (c.mean, c.sd, c.ci_low, c.ci_high, c.favourable, c.favourable_low, c.favourable_high, c.index)
            for col, v in zip(flag_cols, flags, strict=True):
                col.append(v)
            for col, v in zip(stat_cols, stats, strict=True):
                col.append(v)
            e: tuple[Any, ...] = blank_enps
            if enps is not None and construct in nps and not cell.suppressed:
                e = (enps.n, enps.score, enps.ci_low, enps.ci_high, enps.promoters, enps.passives, enps.detractors)
            for col, v in zip(enps_cols, e, strict=True):
                col.append(v)
    cols["wave_id"] = [table.wave_id] * len(cols["unit"])
    return _table("cells", cols)


def _distributions(table: ResultTable) -> pa.Table:
    cols = _columns("distributions")
    unit, attribute, value, item = cols["unit"], cols["attribute"], cols["value"], cols["item"]
    n, counts, mean = cols["n"], cols["counts"], cols["mean"]
    for cell in table.cells:
        if cell.suppressed:  # the cells table says it is hidden; a hidden cell has no distributions
            continue
        a, v = cell.attribute or "", cell.value or ""
        for i in cell.items:
            unit.append(cell.unit)
            attribute.append(a)
            value.append(v)
            item.append(i.item)
            n.append(i.n)
            counts.append(i.counts)
            mean.append(i.mean)
    cols["wave_id"] = [table.wave_id] * len(unit)
    return _table("distributions", cols)


def wave_tables(table: ResultTable, info: WaveInfo) -> dict[str, pa.Table]:
    """All exported tables of one wave, in a fixed row order (the result table's own order)."""
    w = table.wave_id
    depth = _depths(table)
    out = {
        "waves": _records(
            "waves",
            w,
            [
                {
                    "name": info.name,
                    "instrument": table.instrument,
                    "version": table.version,
                    "min_group_size": table.min_group_size,
                    "opens_at": info.opens_at,
                    "closes_at": info.closes_at,
                    "closed_at": info.closed_at,
                    "previous_wave_id": table.previous_wave_id,
                    "attributes": list(info.attributes),
                    "built_at": info.built_at,
                }
            ],
        ),
        "units": _records(
            "units",
            w,
            (
                {"unit": u.key, "parent": u.parent, "name": info.unit_names.get(u.key), "depth": depth[u.key]}
                for u in table.units
            ),
        ),
        "instruments": _records(
            "instruments",
            w,
            [
                {
                    "instrument": table.instrument,
                    "version": table.version,
                    "sha256": info.instrument_sha256,
                    "constructs": [c.id for c in table.constructs],
                }
            ],
        ),
        "constructs": _records(
            "constructs",
            w,
            (
                {
                    "construct": c.id,
                    "instrument": table.instrument,
                    "version": table.version,
                    "scale": c.scale,
                    "min": c.min,
                    "max": c.max,
                    "favourable_min": c.favourable_min,
                    "items": list(c.items),
                }
                for c in table.constructs
            ),
        ),
        "items": _records(
            "items",
            w,
            ({"item": i.id, "type": i.type, "construct": i.construct, "points": list(i.points)} for i in table.items),
        ),
        "cells": _cells(table),
        "distributions": _distributions(table),
        "reliability": _records("reliability", w, (r.__dict__ for r in table.reliability)),
        "changes": _records(
            "changes",
            w,
            ({**c.__dict__, "previous_wave_id": table.previous_wave_id} for c in table.changes),
        ),
        "flags": _records(
            "flags",
            w,
            (
                {
                    "unit": f.unit,
                    "construct": f.construct or "",
                    "rule": f.rule,
                    "option": str(f.evidence.get("option") or ""),
                    "severity": f.severity,
                    "evidence": json.dumps(dict(f.evidence), sort_keys=True, separators=(",", ":")),
                    "message_nl": f.message_nl,
                    "message_en": f.message_en,
                }
                for f in table.flags
            ),
        ),
        "participation": _records("participation", w, (p.__dict__ for p in table.participation)),
    }
    return out


def check_safe(tables: Mapping[str, pa.Table], min_group_size: int) -> None:
    """Refuse (``UnsafeExport``) a group below the minimum, a hidden row with a number, or a duplicate key."""
    for name, columns in COUNT_COLUMNS.items():
        table = tables[name]
        for column in columns:
            values = table.column(column)
            small = pc.and_(pc.greater(values, 0), pc.less(values, min_group_size))
            if pc.any(small).as_py():
                raise UnsafeExport(f"{name}.{column} holds a group smaller than {min_group_size}")
        if "suppressed" in table.column_names:
            hidden = table.filter(table.column("suppressed"))
            for column in hidden.column_names:
                if column in KEYS[name] or column in ("suppressed", "reason", "test", "previous_wave_id", "items"):
                    continue
                if column == "method":
                    continue
                if hidden.column(column).null_count != hidden.num_rows:
                    raise UnsafeExport(f"{name}.{column} has a value in a hidden row")
    for name, table in tables.items():
        keys = KEYS[name]
        if table.num_rows and table.group_by(list(keys)).aggregate([]).num_rows != table.num_rows:
            raise UnsafeExport(f"{name} has two rows with the same key {keys}")
