"""From a stored result table to the exported Arrow tables: a change of shape, never a new number.

Every value comes from the ``ResultTable`` the API serves (or, for the ``waves``/``units``/``instruments``
tables, from the wave's own row, the unit names and the published instrument's hash). Hidden cells stay: one
row per construct with ``suppressed = true``, the reason, and null values. Comments are not exported at all:
free text is shown to HR only, under rule 6 of the design. ``check_safe`` refuses a table in which a count
column holds a group smaller than the wave's minimum, whatever produced it.
"""

from __future__ import annotations

import gc
import gzip
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
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


@contextmanager
def _no_gc() -> Iterator[None]:
    """Pause the cyclic garbage collector: decoding a table allocates millions of small dicts and lists that
    all stay alive, and every collection would walk them all again, many times over."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def decode(blob: bytes) -> dict[str, Any]:
    """The stored form of a result table (gzipped JSON of ``ResultTable.to_dict()``) as plain JSON values."""
    with _no_gc():
        table: dict[str, Any] = json.loads(gzip.decompress(blob))
    return table


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


def _records(name: str, wave_id: int, records: Iterable[Mapping[str, Any]]) -> pa.Table:
    """Rows from dicts (extra keys ignored, missing ones null), converted by pyarrow in one pass."""
    schema = SCHEMAS[name]
    body = pa.schema([f for f in schema if f.name != "wave_id"])
    table = pa.Table.from_pylist(list(records), schema=body)
    return table.add_column(0, schema.field("wave_id"), pa.array(np.full(table.num_rows, wave_id, dtype=np.int64)))


def _depths(units: Sequence[Mapping[str, Any]]) -> dict[str, int]:
    depth: dict[str, int] = {}
    for unit in units:  # parents come first
        depth[unit["key"]] = 0 if unit["parent"] is None else depth[unit["parent"]] + 1
    return depth


_CELL = pa.struct(
    [
        pa.field("unit", pa.string()),
        pa.field("attribute", pa.string()),
        pa.field("value", pa.string()),
        pa.field("n", pa.int64()),
        pa.field("suppressed", pa.bool_()),
        pa.field("reason", pa.string()),
        pa.field(
            "constructs",
            pa.list_(
                pa.struct(
                    [pa.field("construct", pa.string()), pa.field("n", pa.int64())]
                    + [pa.field(f, pa.float64()) for f in _CONSTRUCT_FIELDS]
                )
            ),
        ),
        pa.field(
            "items",
            pa.list_(
                pa.struct(
                    [
                        pa.field("item", pa.string()),
                        pa.field("n", pa.int64()),
                        pa.field("counts", pa.list_(pa.int64())),
                        pa.field("mean", pa.float64()),
                    ]
                )
            ),
        ),
        pa.field(
            "enps",
            pa.struct(
                [
                    pa.field("n", pa.int64()),
                    pa.field("score", pa.float64()),
                    pa.field("ci_low", pa.float64()),
                    pa.field("ci_high", pa.float64()),
                    pa.field("promoters", pa.int64()),
                    pa.field("passives", pa.int64()),
                    pa.field("detractors", pa.int64()),
                ]
            ),
        ),
    ]
)
_ENPS_SOURCE = dict(
    zip(_ENPS_FIELDS, ("n", "score", "ci_low", "ci_high", "promoters", "passives", "detractors"), strict=True)
)


def _blank(column: pa.ChunkedArray | pa.Array) -> pa.Array:
    """A unit's total has no attribute: '' rather than null, so that the column can be part of a key."""
    return pc.fill_null(column, "")


def _cells(wave_id: int, constructs: Sequence[Mapping[str, Any]], cells: pa.StructArray) -> pa.Table:
    """One row per cell x construct; a hidden cell (no constructs) gives rows with null figures.

    Vectorised: row r of cell i is construct j = r mod C; its figures are entry ``offset[i] + j`` of the
    flattened construct lists (published cells list every construct, in the table's order), or null.
    """
    ids = [c["id"] for c in constructs]
    n_cells, width = len(cells), len(ids)
    lists = cells.field("constructs")
    lengths = pc.list_value_length(lists).to_numpy(zero_copy_only=False)
    flat = lists.flatten()
    if not np.all((lengths == 0) | (lengths == width)) or flat.field("construct").to_pylist() != ids * int(
        np.count_nonzero(lengths)
    ):
        raise ValueError("a published cell does not list every construct in the table's order")
    cell_of = np.repeat(np.arange(n_cells, dtype=np.int64), width)
    j = np.tile(np.arange(width, dtype=np.int64), n_cells)
    published = ~cells.field("suppressed").to_numpy(zero_copy_only=False)
    offsets = lists.offsets.to_numpy()[:-1]
    has = published[cell_of] & (lengths[cell_of] == width)
    source = pa.array(np.where(has, offsets[cell_of] + j, 0), mask=~has)
    take_cell = pa.array(cell_of)
    columns: dict[str, pa.Array | pa.ChunkedArray] = {
        "wave_id": pa.array(np.full(n_cells * width, wave_id, dtype=np.int64)),
        "unit": cells.field("unit").take(take_cell),
        "attribute": _blank(cells.field("attribute").take(take_cell)),
        "value": _blank(cells.field("value").take(take_cell)),
        "construct": pa.array(ids * n_cells, type=pa.string()),
        "suppressed": cells.field("suppressed").take(take_cell),
        "reason": cells.field("reason").take(take_cell),
        "n": cells.field("n").take(take_cell),
        "construct_n": flat.field("n").take(source),
    }
    for name in _CONSTRUCT_FIELDS:
        columns[name] = flat.field(name).take(source)
    nps = np.array([c["scale"] == "nps" for c in constructs], dtype=np.bool_)
    enps = cells.field("enps")
    with_enps = nps[j] & published[cell_of]
    enps_source = pa.array(cell_of, mask=~with_enps)
    for name, source_name in _ENPS_SOURCE.items():
        columns[name] = enps.field(source_name).take(enps_source)
    schema = SCHEMAS["cells"]
    return pa.Table.from_arrays([columns[f.name] for f in schema], schema=schema)


def _distributions(wave_id: int, cells: pa.StructArray) -> pa.Table:
    """One row per published cell x item with a distribution (a hidden cell has none: the cells say so; nor has
    an item withheld in a published cell, whose ``n`` is null in the table)."""
    lists = cells.field("items")
    flat = lists.flatten()
    cell_of = pc.list_parent_indices(lists)
    shown = pc.is_valid(flat.field("n"))
    if not pc.all(shown).as_py():
        flat, cell_of = flat.filter(shown), cell_of.filter(shown)
    columns = {
        "wave_id": pa.array(np.full(len(flat), wave_id, dtype=np.int64)),
        "unit": cells.field("unit").take(cell_of),
        "attribute": _blank(cells.field("attribute").take(cell_of)),
        "value": _blank(cells.field("value").take(cell_of)),
        "item": flat.field("item"),
        "n": flat.field("n"),
        "counts": flat.field("counts"),
        "mean": flat.field("mean"),
    }
    schema = SCHEMAS["distributions"]
    return pa.Table.from_arrays([columns[f.name] for f in schema], schema=schema)


# The tables that come from the result table alone (the columnar copy stores them); ``waves`` and
# ``instruments`` (one row each) and the units' names come from the wave's own row at export time.
RESULT_TABLES: tuple[str, ...] = tuple(name for name in SCHEMAS if name not in ("waves", "instruments"))


@dataclass(frozen=True)
class Derived:
    """What the export takes from one stored result table: its own facts and the rows of ``RESULT_TABLES``
    (``units.name`` null: names are the wave's business, filled in by ``finish``)."""

    wave_id: int
    instrument: str
    version: int
    min_group_size: int
    previous_wave_id: int | None
    constructs: tuple[str, ...]
    tables: Mapping[str, pa.Table]


def wave_tables(table: ResultTable | Mapping[str, Any], info: WaveInfo) -> dict[str, pa.Table]:
    """All exported tables of one wave, from its stored JSON form (``ResultTable.to_dict()``), in the table's
    own row order. A ``ResultTable`` is turned into that form first."""
    d: Mapping[str, Any] = table.to_dict() if isinstance(table, ResultTable) else table
    return finish(derive(d), info)


def derive(d: Mapping[str, Any]) -> Derived:
    """The rows of ``RESULT_TABLES`` from a result table's JSON form: a change of shape only."""
    with _no_gc():
        return _derive(d)


def _derive(d: Mapping[str, Any]) -> Derived:
    w = int(d["wave_id"])
    depth = _depths(d["units"])
    cells = pa.array(d["cells"], type=_CELL)
    if not isinstance(cells, pa.StructArray):
        cells = cells.combine_chunks()
    previous = d["previous_wave_id"]
    tables = {
        "units": _records(
            "units",
            w,
            ({"unit": u["key"], "parent": u["parent"], "depth": depth[u["key"]]} for u in d["units"]),
        ),
        "constructs": _records(
            "constructs",
            w,
            (
                {**c, "construct": c["id"], "instrument": d["instrument"], "version": d["version"]}
                for c in d["constructs"]
            ),
        ),
        "items": _records("items", w, ({**i, "item": i["id"]} for i in d["items"])),
        "cells": _cells(w, d["constructs"], cells),
        "distributions": _distributions(w, cells),
        "reliability": _records("reliability", w, d["reliability"]),
        "changes": _records("changes", w, ({**c, "previous_wave_id": previous} for c in d["changes"])),
        "flags": _records(
            "flags",
            w,
            (
                {
                    **f,
                    "construct": f["construct"] or "",
                    "option": str(f["evidence"].get("option") or ""),
                    "evidence": json.dumps(f["evidence"], sort_keys=True, separators=(",", ":")),
                }
                for f in d["flags"]
            ),
        ),
        "participation": _records("participation", w, d["participation"]),
    }
    check_keys(tables)
    return Derived(
        wave_id=w,
        instrument=str(d["instrument"]),
        version=int(d["version"]),
        min_group_size=int(d["min_group_size"]),
        previous_wave_id=None if previous is None else int(previous),
        constructs=tuple(str(c["id"]) for c in d["constructs"]),
        tables=tables,
    )


def finish(derived: Derived, info: WaveInfo) -> dict[str, pa.Table]:
    """Every exported table of the wave: the derived rows, the unit names, and the one-row ``waves`` and
    ``instruments`` tables from what the service knows of the wave."""
    w = derived.wave_id
    units = derived.tables["units"]
    keys = units.column("unit").to_pylist()
    names = pa.array([info.unit_names.get(k) for k in keys], type=pa.string())
    units = units.set_column(units.schema.get_field_index("name"), SCHEMAS["units"].field("name"), names)
    found = {
        "waves": _records(
            "waves",
            w,
            [
                {
                    "name": info.name,
                    "instrument": derived.instrument,
                    "version": derived.version,
                    "min_group_size": derived.min_group_size,
                    "opens_at": info.opens_at,
                    "closes_at": info.closes_at,
                    "closed_at": info.closed_at,
                    "previous_wave_id": derived.previous_wave_id,
                    "attributes": list(info.attributes),
                    "built_at": info.built_at,
                }
            ],
        ),
        "instruments": _records(
            "instruments",
            w,
            [
                {
                    "instrument": derived.instrument,
                    "version": derived.version,
                    "sha256": info.instrument_sha256,
                    "constructs": list(derived.constructs),
                }
            ],
        ),
        **derived.tables,
        "units": units,
    }
    return {name: found[name] for name in SCHEMAS}


# Columns a hidden row keeps: what it is and why it is hidden, never a figure.
_NOT_FIGURES = frozenset({"suppressed", "reason", "test", "previous_wave_id", "items", "method"})


def check_safe(tables: Mapping[str, pa.Table], min_group_size: int) -> None:
    """Refuse (``UnsafeExport``) a group below the minimum or a hidden row with a number.

    Run on every table of every wave an export writes, whatever it was read from. (Key uniqueness is not a
    matter of safety: ``derive`` checks it where rows are made, see ``check_keys``.)
    """
    for name, columns in COUNT_COLUMNS.items():
        table = tables[name]
        for column in columns:
            # The values present only: a mostly-null column from the columnar copy is not read in its null slots.
            values = pc.drop_null(table.column(column))
            small = pc.and_(pc.greater(values, 0), pc.less(values, min_group_size))
            if pc.any(small).as_py():
                raise UnsafeExport(f"{name}.{column} holds a group smaller than {min_group_size}")
        if "suppressed" in table.column_names:
            hidden = table.column("suppressed")
            for column in table.column_names:
                if column in KEYS[name] or column in _NOT_FIGURES:
                    continue
                values = table.column(column)
                # Bitmaps only (no filtered copy of the hidden rows): is any hidden row's value present?
                if values.null_count != len(values) and pc.any(pc.and_(hidden, pc.is_valid(values))).as_py():
                    raise UnsafeExport(f"{name}.{column} has a value in a hidden row")


def check_keys(tables: Mapping[str, pa.Table]) -> None:
    """Refuse (``UnsafeExport``) two rows with the same natural key (the SQL target's primary key).

    ``derive`` runs it on the rows it makes, when a table is stored (the columnar copy holds checked rows) and
    when an export derives them from the JSON (a small share of an export's time).
    """
    for name, table in tables.items():
        if not _unique(table, KEYS[name]):
            raise UnsafeExport(f"{name} has two rows with the same key {KEYS[name]}")


def _unique(table: pa.Table, keys: Sequence[str]) -> bool:
    """No two rows share a key: each key column as dictionary codes, combined into one integer per row."""
    if table.num_rows < 2:
        return True
    combined = np.zeros(table.num_rows, dtype=np.int64)
    radix = 1
    for key in keys:
        encoded = pc.dictionary_encode(table.column(key)).combine_chunks()
        size = max(len(encoded.dictionary), 1)
        if radix * size >= 2**62:  # too many distinct keys for one integer: let Arrow group them
            return bool(table.group_by(list(keys)).aggregate([]).num_rows == table.num_rows)
        combined = combined * size + encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64)
        radix *= size
    if radix <= 8 * table.num_rows + 1024:  # few possible keys: count them
        return int(np.bincount(combined, minlength=radix).max()) <= 1
    combined.sort()
    return not bool(np.any(combined[1:] == combined[:-1]))
