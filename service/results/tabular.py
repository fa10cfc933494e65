"""The CSV form of every results answer: one row per cell, unit, flag, text or point; a hidden one is a row too,
with ``suppressed`` true, its reason, and empty figures (never a zero, never a missing row)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from typing import Any

from fastapi import Response

from service.results import schemas
from service.spreadsheets import csv_text

CSV_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {"content": {"text/csv": {"schema": {"type": "string"}}}, "description": "JSON, or CSV with Accept: text/csv"}
}

_CONSTRUCT_FIELDS = ("n", "mean", "sd", "ci_low", "ci_high", "favourable", "favourable_low", "favourable_high")
_FAVOURABLE = frozenset({"favourable", "favourable_low", "favourable_high"})


def withheld(reason: str | None) -> str:
    """What a CSV says in place of a statistic withheld in a published cell: words, never a number."""
    return f"withheld ({reason})" if reason else "withheld"


def _construct_row(f: schemas.ConstructFigures | None) -> list[Any]:
    if f is None:
        return [None] * len(_CONSTRUCT_FIELDS)
    if f.favourable_suppressed:
        mark = withheld(f.favourable_reason)
        return [mark if field in _FAVOURABLE else getattr(f, field) for field in _CONSTRUCT_FIELDS]
    return [getattr(f, field) for field in _CONSTRUCT_FIELDS]


def render(header: Sequence[str], rows: Iterable[Sequence[Any]], filename: str) -> Response:
    """The rows as a CSV download, every value escaped for spreadsheets (``service.spreadsheets``)."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", filename)  # unit keys are HR's own: keep the header plain ASCII
    return Response(
        csv_text(header, rows),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{safe}"'},
    )


def results(out: schemas.Results) -> Response:
    """One row per cell (each unit's total, then its cuts); per construct its figures, then eNPS (``enps_score*``:
    an instrument's construct may itself be called ``enps``). A statistic withheld in a published cell reads
    ``withheld (reason)``."""
    constructs = [c.id for c in out.constructs]
    header = ["unit", "attribute", "value", "n", "suppressed", "reason"]
    header += [f"{c}_{field}" for c in constructs for field in _CONSTRUCT_FIELDS]
    header += [f"enps_score{suffix}" for suffix in ("_n", "", "_ci_low", "_ci_high")]  # apart from a construct "enps"
    rows = []
    for unit in out.units:
        for cell in (unit.total, *unit.cuts):
            figures = {f.construct_id: f for f in cell.constructs}
            row: list[Any] = [cell.unit, cell.attribute, cell.value, cell.n, cell.suppressed, cell.reason]
            for c in constructs:
                row += _construct_row(figures.get(c))
            e = cell.enps
            if e is None:
                row += [None, None, None, None]
            elif e.suppressed:
                row += [withheld(e.reason)] * 4
            else:
                row += [e.n, e.score, e.ci_low, e.ci_high]
            rows.append(row)
    return render(header, rows, f"wave-{out.wave_id}-results.csv")


def heatmap(out: schemas.Heatmap) -> Response:
    header = ["unit", "parent", "construct", "n", "mean", "favourable", "suppressed", "reason"]
    rows = [
        [
            u.unit, u.parent, c.construct_id, c.n, c.mean,
            withheld(None) if c.favourable_suppressed else c.favourable, c.suppressed, c.reason,
        ]
        for u in out.units
        for c in u.constructs
    ]  # fmt: skip
    return render(header, rows, f"wave-{out.wave_id}-heatmap.csv")


def flags(out: schemas.Flags) -> Response:
    header = ["unit", "construct", "rule", "severity", "evidence", "message_nl", "message_en"]
    rows = [
        [f.unit, f.construct_id, f.rule, f.severity, json.dumps(f.evidence, sort_keys=True), f.message_nl, f.message_en]
        for f in out.flags
    ]
    return render(header, rows, f"wave-{out.wave_id}-flags.csv")


def comments(out: schemas.Comments) -> Response:
    """One row per text; a unit whose texts are withheld is one row without text."""
    header = ["unit", "item", "text", "suppressed", "reason"]
    rows: list[list[Any]] = []
    for unit in out.units:
        if unit.suppressed:
            rows.append([unit.unit, None, None, True, unit.reason])
            continue
        rows += [[unit.unit, g.item, text, False, None] for g in unit.items for text in g.texts]
    return render(header, rows, f"wave-{out.wave_id}-comments.csv")


def trend(out: schemas.Trend) -> Response:
    header = ["unit", "construct", "wave_id", "wave", "instrument", "version", "closed_at"]
    header += ["n", "mean", "ci_low", "ci_high", "favourable", "index", "suppressed", "reason"]
    rows: list[list[Any]] = []
    for p in out.points:
        closed_at = p.closed_at.isoformat() if p.closed_at else None
        rows.append([out.unit, out.construct_id, p.wave_id, p.wave, p.instrument, p.version, closed_at])
        rows[-1].extend([p.n, p.mean, p.ci_low, p.ci_high, p.favourable, p.index, p.suppressed, p.reason])
    return render(header, rows, f"unit-{out.unit}-{out.construct_id}-trend.csv")


def drivers(out: schemas.Drivers) -> Response:
    """One row per relation, with its focus-area figures where it is one; a unit without drivers is one row."""
    header = ["unit", "outcome", "construct", "n", "r", "ci_low", "ci_high", "focus_rank", "index", "baseline", "gap"]
    header += ["priority", "reason"]
    rows: list[list[Any]] = []
    for unit in out.units:
        if not unit.available:
            rows.append([unit.unit, *[None] * 11, unit.reason])
            continue
        focus = {(f.outcome, f.construct_id): f for f in unit.focus_areas}
        for r in unit.relations:
            f = focus.get((r.outcome, r.construct_id))
            row = [unit.unit, r.outcome, r.construct_id, r.n, r.r, r.ci_low, r.ci_high]
            row += [None] * 5 if f is None else [f.rank, f.index, f.baseline, f.gap, f.priority]
            rows.append([*row, None])
    return render(header, rows, f"wave-{out.wave_id}-drivers.csv")
