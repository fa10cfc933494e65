"""The exported tables: fixed Arrow schemas and natural keys, shared by the Parquet and the SQL target.

Every table has ``wave_id`` and is partitioned by wave. The schemas are explicit (never inferred from data), so
a wave with no flags writes an empty file of the same shape, and readers can union all waves without surprises.
A unit's own total (not cut by an attribute) has ``attribute = ''`` and ``value = ''``: the key columns are never
null, so the SQL target can use them as its primary key.

Bump ``SCHEMA_VERSION`` when a column changes; the manifest and the SQL target carry it.
"""

from __future__ import annotations

import pyarrow as pa

SCHEMA_VERSION = 1

_STR = pa.string()
_INT = pa.int64()
_F = pa.float64()
_BOOL = pa.bool_()
_TS = pa.timestamp("us", tz="UTC")


def _f(name: str, kind: pa.DataType, nullable: bool = True) -> pa.Field:
    return pa.field(name, kind, nullable=nullable)


def _key(*names: str) -> list[pa.Field]:
    return [_f("wave_id", _INT, False), *(_f(n, _STR, False) for n in names)]


SCHEMAS: dict[str, pa.Schema] = {
    "waves": pa.schema(
        [
            _f("wave_id", _INT, False),
            _f("name", _STR, False),
            _f("instrument", _STR, False),
            _f("version", _INT, False),
            _f("min_group_size", _INT, False),
            _f("opens_at", _TS, False),
            _f("closes_at", _TS, False),
            _f("closed_at", _TS),
            _f("previous_wave_id", _INT),
            _f("attributes", pa.list_(_STR), False),
            _f("built_at", _TS, False),
        ]
    ),
    "units": pa.schema([*_key("unit"), _f("parent", _STR), _f("name", _STR), _f("depth", _INT, False)]),
    "instruments": pa.schema(
        [
            _f("wave_id", _INT, False),
            _f("instrument", _STR, False),
            _f("version", _INT, False),
            _f("sha256", _STR),
            _f("constructs", pa.list_(_STR), False),
        ]
    ),
    "constructs": pa.schema(
        [
            *_key("construct"),
            _f("instrument", _STR, False),
            _f("version", _INT, False),
            _f("scale", _STR, False),
            _f("min", _INT, False),
            _f("max", _INT, False),
            _f("favourable_min", _F, False),
            _f("items", pa.list_(_STR), False),
        ]
    ),
    "items": pa.schema(
        [*_key("item"), _f("type", _STR, False), _f("construct", _STR), _f("points", pa.list_(_STR), False)]
    ),
    "cells": pa.schema(
        [
            *_key("unit", "attribute", "value", "construct"),
            _f("suppressed", _BOOL, False),
            _f("reason", _STR),
            _f("n", _INT),  # respondents in the cell
            _f("construct_n", _INT),  # respondents with a score on this construct
            _f("mean", _F),
            _f("sd", _F),
            _f("ci_low", _F),
            _f("ci_high", _F),
            _f("favourable", _F),
            _f("favourable_low", _F),
            _f("favourable_high", _F),
            _f("index", _F),
            _f("enps_n", _INT),  # eNPS: only on the row of the construct on the nps scale
            _f("enps", _F),
            _f("enps_low", _F),
            _f("enps_high", _F),
            _f("promoters", _INT),
            _f("passives", _INT),
            _f("detractors", _INT),
        ]
    ),
    "distributions": pa.schema(
        [
            *_key("unit", "attribute", "value", "item"),
            _f("n", _INT, False),
            _f("counts", pa.list_(_INT), False),  # labelled by items.points, in order
            _f("mean", _F),
        ]
    ),
    "reliability": pa.schema(
        [
            *_key("unit", "construct"),
            _f("suppressed", _BOOL, False),
            _f("n", _INT),
            _f("items", _INT, False),
            _f("alpha", _F),
            _f("ci_low", _F),
            _f("ci_high", _F),
            _f("method", _STR, False),
            _f("rwg", _F),
            _f("icc1", _F),
            _f("teams", _INT),
        ]
    ),
    "changes": pa.schema(
        [
            *_key("unit", "construct"),
            _f("previous_wave_id", _INT),
            _f("suppressed", _BOOL, False),
            _f("reason", _STR),
            _f("test", _STR, False),
            _f("n", _INT),
            _f("mean", _F),
            _f("previous_n", _INT),
            _f("previous_mean", _F),
            _f("difference", _F),
            _f("statistic", _F),
            _f("df", _F),
            _f("p", _F),
            _f("p_adjusted", _F),
            _f("significant", _BOOL),
        ]
    ),
    "flags": pa.schema(
        [
            # construct '' for a rule about the unit (participation); option: the barrier named, else ''
            *_key("unit", "construct", "rule", "option"),
            _f("severity", _STR, False),
            _f("evidence", _STR, False),  # JSON object
            _f("message_nl", _STR, False),
            _f("message_en", _STR, False),
        ]
    ),
    "participation": pa.schema(
        [
            *_key("unit"),
            _f("suppressed", _BOOL, False),
            _f("reason", _STR),
            _f("invited", _INT),
            _f("responded", _INT),
            _f("rate", _F),
        ]
    ),
}

TABLES: tuple[str, ...] = tuple(SCHEMAS)

KEYS: dict[str, tuple[str, ...]] = {
    "waves": ("wave_id",),
    "units": ("wave_id", "unit"),
    "instruments": ("wave_id",),
    "constructs": ("wave_id", "construct"),
    "items": ("wave_id", "item"),
    "cells": ("wave_id", "unit", "attribute", "value", "construct"),
    "distributions": ("wave_id", "unit", "attribute", "value", "item"),
    "reliability": ("wave_id", "unit", "construct"),
    "changes": ("wave_id", "unit", "construct"),
    "flags": ("wave_id", "unit", "construct", "rule", "option"),
    "participation": ("wave_id", "unit"),
}

# Columns that count respondents (or invitations): each is null, 0 (nobody answered, no statistic) or at least
# the wave's minimum group size. The exporter checks this before anything is written.
COUNT_COLUMNS: dict[str, tuple[str, ...]] = {
    "cells": ("n", "construct_n", "enps_n"),
    "distributions": ("n",),
    "reliability": ("n",),
    "changes": ("n", "previous_n"),
    "participation": ("invited",),
}
