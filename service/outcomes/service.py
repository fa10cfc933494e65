"""Outcomes: validate an upload whole, replace its periods' counts, build each period's guarded table once (scoring
does the maths), store it, and serve it from storage."""

from __future__ import annotations

import csv
import gzip
import io
import json
from collections import Counter
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

import numpy as np
from pydantic import ValidationError
from sqlalchemy import delete, insert, select
from sqlalchemy.orm import Session

from scoring.outcomes import COUNTS, OutcomeCell, OutcomeTable, count_problems, counts_from_rows, outcome_table
from service.errors import NotFound, Unprocessable
from service.models import OutcomeCount, OutcomePeriod, Unit, Wave
from service.models.base import utcnow
from service.outcomes import periods
from service.outcomes.periods import Period
from service.outcomes.schemas import (
    OutcomeFigures,
    OutcomeIn,
    Outcomes,
    PeriodOutcomes,
    UploadedPeriod,
    UploadResult,
)
from service.results.data import org_tree
from service.units.service import load_tree

COLUMNS = ("unit_key", "period", *COUNTS)
MAX_ROWS = 200_000
MAX_REPORTED_ROW_ERRORS = 100


def parse_json(body: bytes) -> list[Any]:
    """The rows of ``{"outcomes": [...]}``."""
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise Unprocessable("the body is not valid JSON") from exc
    if not isinstance(document, dict) or not isinstance(document.get("outcomes"), list) or len(document) != 1:
        raise Unprocessable('the body must be {"outcomes": [...]}')
    rows: list[Any] = document["outcomes"]
    return rows


def parse_csv(body: bytes) -> list[Any]:
    """The rows of a CSV with the header ``unit_key,period,headcount_start,...`` (an empty cell is no value)."""
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise Unprocessable("the CSV is not UTF-8") from exc
    reader = csv.DictReader(io.StringIO(text))
    header = reader.fieldnames or []
    unknown = [h for h in header if h not in COLUMNS]
    if "unit_key" not in header or unknown:
        raise Unprocessable(
            f"the CSV needs the header {','.join(COLUMNS)}"
            + (f"; unknown columns: {', '.join(unknown[:10])}" if unknown else "")
        )
    rows: list[Any] = []
    try:
        for row in reader:
            if None in row:
                raise Unprocessable(f"row {len(rows) + 1}: more fields than the header has")
            rows.append({k: v for k, v in row.items() if v not in ("", None)})
    except csv.Error as exc:
        raise Unprocessable(f"the CSV cannot be read: {exc}") from exc
    return rows


def _validated(session: Session, raw_rows: Sequence[Any]) -> tuple[list[OutcomeIn], list[dict[str, Any]]]:
    """Every row checked: its fields, its unit, one row per unit and period, and the counts' own rules
    (``scoring.outcomes.count_problems``). Returns the rows and every problem, with row numbers from 1."""
    errors: list[dict[str, Any]] = []
    rows: list[tuple[int, OutcomeIn]] = []
    for number, raw in enumerate(raw_rows, start=1):
        try:
            rows.append((number, OutcomeIn.model_validate(raw)))
        except ValidationError as exc:
            first = exc.errors()[0]
            field = ".".join(str(p) for p in first["loc"]) or "row"
            errors.append({"row": number, "field": field, "reason": first["msg"]})
    known = set(session.scalars(select(Unit.key)))
    errors += [
        {"row": n, "field": "unit_key", "reason": f"unknown unit {row.unit_key!r}"}
        for n, row in rows
        if row.unit_key not in known
    ]
    seen = Counter((row.period, row.unit_key) for _, row in rows)
    errors += [
        {"row": n, "field": "unit_key", "reason": f"{row.unit_key} appears more than once for {row.period}"}
        for n, row in rows
        if seen[(row.period, row.unit_key)] > 1
    ]
    if rows:
        columns = {name: np.array([getattr(row, name) for _, row in rows], dtype=np.float64) for name in COUNTS}
        errors += [
            {"row": rows[i][0], "field": field, "reason": reason} for i, field, reason in count_problems(columns)
        ]
    return [row for _, row in rows], sorted(errors, key=lambda e: (e["row"], e["field"]))


def upload(session: Session, raw_rows: Sequence[Any], min_group_size: int) -> UploadResult:
    """Validate every row, then replace each uploaded period's counts and build its table; all or nothing."""
    if not raw_rows:
        raise Unprocessable("no rows given")
    if len(raw_rows) > MAX_ROWS:
        raise Unprocessable(f"at most {MAX_ROWS} rows in one upload; got {len(raw_rows)}")
    rows, errors = _validated(session, raw_rows)
    if errors:
        shown = errors[:MAX_REPORTED_ROW_ERRORS]
        summary = "; ".join(f"row {e['row']}: {e['field']}: {e['reason']}" for e in shown[:5])
        raise Unprocessable(f"{len(errors)} problem(s), nothing was stored: {summary}", details=shown)
    unit_ids = dict(session.execute(select(Unit.key, Unit.id)).all())
    by_period: dict[str, list[OutcomeIn]] = {}
    for row in rows:
        by_period.setdefault(row.period, []).append(row)
    existing = set(session.scalars(select(OutcomePeriod.period).where(OutcomePeriod.period.in_(by_period))))
    for name, given in sorted(by_period.items()):
        session.execute(delete(OutcomeCount).where(OutcomeCount.period == name))
        values = [{"period": name, "unit_id": unit_ids[r.unit_key], **r.model_dump(exclude={"unit_key", "period"})}
                  for r in given]  # fmt: skip
        session.execute(insert(OutcomeCount), values)
        build(session, periods.parse(name), min_group_size)
    return UploadResult(
        rows=len(rows),
        periods=[UploadedPeriod(period=p, units=len(g), replaced=p in existing) for p, g in sorted(by_period.items())],
    )


def build(session: Session, period: Period, min_group_size: int) -> OutcomeTable:
    """Compute the period's table from its stored counts over the current org tree, and store it (replacing an
    earlier one); the caller commits."""
    tree = load_tree(session)
    position = {unit_id: i for i, unit_id in enumerate(tree.ids)}
    stored = session.execute(
        select(OutcomeCount.unit_id, *(getattr(OutcomeCount, name) for name in COUNTS)).where(
            OutcomeCount.period == period.name
        )
    ).all()
    columns = {name: [row[k + 1] for row in stored] for k, name in enumerate(COUNTS)}
    counts = counts_from_rows(len(tree.keys), [position[row[0]] for row in stored], columns)
    table = outcome_table(period.name, org_tree(tree), counts, min_group_size)
    row = session.get(OutcomePeriod, period.name)
    if row is None:
        row = OutcomePeriod(period=period.name)
        session.add(row)
    row.starts_on, row.ends_on, row.min_group_size = period.starts_on, period.ends_on, min_group_size
    row.built_at = utcnow()
    row.table = gzip.compress(json.dumps(table.to_dict(), separators=(",", ":")).encode(), compresslevel=6)
    session.flush()
    return table


def stored(session: Session, names: Iterable[str] | None = None) -> list[tuple[Period, datetime, OutcomeTable]]:
    """The stored tables (of the named periods, or all), oldest period first."""
    statement = select(OutcomePeriod.period, OutcomePeriod.built_at, OutcomePeriod.table)
    if names is not None:
        statement = statement.where(OutcomePeriod.period.in_(list(names)))
    found = [
        (periods.parse(name), built_at, OutcomeTable.from_dict(json.loads(gzip.decompress(blob))))
        for name, built_at, blob in session.execute(statement)
    ]
    return sorted(found, key=lambda f: f[0])


def period_of(text: str) -> Period:
    """A period named in a query: 422 if it is not one."""
    try:
        return periods.parse(text)
    except ValueError as exc:
        raise Unprocessable(str(exc), details=[{"field": "period", "reason": str(exc)}]) from exc


def require_unit(session: Session, key: str) -> None:
    if session.scalar(select(Unit.id).where(Unit.key == key)) is None:
        raise NotFound(f"no unit {key!r}")


def published(session: Session, *, unit: str | None, period: str | None, wave: Wave | None) -> Outcomes:
    """The stored tables as the API shows them: every period (or the one named, or those whose span holds the
    wave's whole window), every unit (or the one named; a unit the period's table does not know is ``empty``)."""
    names = None if period is None else [period_of(period).name]
    found = stored(session, names)
    if period is not None and not found:
        raise NotFound(f"no outcomes were uploaded for {period}")
    if wave is not None:
        found = [f for f in found if f[0].start <= wave.opens_at and wave.closes_at <= f[0].end]
    if unit is not None:
        require_unit(session, unit)
    out = []
    for span, built_at, table in found:
        if unit is None:
            cells = list(table.cells)
        else:
            try:
                cells = [table.cell(unit)]
            except KeyError:  # the unit did not exist when the period was uploaded: nobody was counted in it
                cells = [OutcomeCell(unit, None, True, "empty")]
        out.append(
            PeriodOutcomes(
                period=span.name,
                kind=span.kind,
                starts_on=span.starts_on,
                ends_on=span.ends_on,
                min_group_size=table.min_group_size,
                built_at=built_at,
                units=[OutcomeFigures.model_validate(c.__dict__) for c in cells],
            )
        )
    return Outcomes(periods=out)
