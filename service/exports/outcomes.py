"""The export's ``outcomes`` table: every uploaded period's guarded figures, one row per period and unit.

A table of its own, not partitioned by wave (``outcomes/part-0.parquet``, or one SQL table keyed by period and
unit), written whole on every run from the stored tables the API serves: a change of shape, never a new number.
A hidden unit is a row with ``suppressed = true``, its reason, and null figures.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy import select
from sqlalchemy.orm import Session

from service.exports.rows import UnsafeExport
from service.models import Unit
from service.outcomes import service as outcomes

NAME = "outcomes"
KEY = ("period", "unit")
FIGURES = (
    ("headcount_start", pa.int64()),
    ("headcount_end", pa.int64()),
    ("mean_headcount", pa.float64()),
    ("leavers", pa.int64()),
    ("moves_in", pa.int64()),
    ("moves_out", pa.int64()),
    ("promotions", pa.int64()),
    ("retention", pa.float64()),
    ("internal_mobility", pa.float64()),
    ("time_to_promotion", pa.float64()),
    ("promotion_reason", pa.string()),
)
SCHEMA = pa.schema(
    [
        pa.field("period", pa.string(), nullable=False),
        pa.field("unit", pa.string(), nullable=False),
        pa.field("parent", pa.string()),
        pa.field("name", pa.string()),
        pa.field("kind", pa.string(), nullable=False),
        pa.field("starts_on", pa.date32(), nullable=False),
        pa.field("ends_on", pa.date32(), nullable=False),
        pa.field("min_group_size", pa.int64(), nullable=False),
        pa.field("built_at", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("suppressed", pa.bool_(), nullable=False),
        pa.field("reason", pa.string()),
        *(pa.field(name, kind) for name, kind in FIGURES),
    ]
)


def load(session: Session) -> pa.Table:
    """The rows of every stored period, oldest first, units in each table's order."""
    names = dict(session.execute(select(Unit.key, Unit.name)).all())
    rows = []
    for period, built_at, table in outcomes.stored(session):
        for cell in table.cells:
            rows.append(
                {
                    "period": period.name,
                    "unit": cell.unit,
                    "parent": cell.parent,
                    "name": names.get(cell.unit),
                    "kind": period.kind,
                    "starts_on": period.starts_on,
                    "ends_on": period.ends_on,
                    "min_group_size": table.min_group_size,
                    "built_at": built_at,
                    "suppressed": cell.suppressed,
                    "reason": cell.reason,
                    **{name: getattr(cell, name) for name, _ in FIGURES},
                }
            )
    return pa.Table.from_pylist(rows, schema=SCHEMA)


def check_safe(table: pa.Table) -> None:
    """Refuse (``UnsafeExport``) a hidden row with a figure, a shown one resting on fewer than its period's
    minimum (its headcounts sum to less), or a time to promotion over fewer promotions than that."""
    hidden = table.column("suppressed")
    k = table.column("min_group_size")
    for name, _ in FIGURES:
        if name != "promotion_reason" and pc.any(pc.and_(hidden, pc.is_valid(table.column(name)))).as_py():
            raise UnsafeExport(f"{NAME}.{name} has a value in a hidden row")
    people = pc.add(table.column("headcount_start"), table.column("headcount_end"))
    if pc.any(pc.and_(pc.invert(hidden), pc.less(people, k))).as_py():
        raise UnsafeExport(f"{NAME} shows a unit of fewer people than its minimum group size")
    timed = pc.is_valid(table.column("time_to_promotion"))
    if pc.any(pc.and_(timed, pc.less(table.column("promotions"), k))).as_py():
        raise UnsafeExport(f"{NAME}.time_to_promotion rests on fewer promotions than the minimum group size")
