"""The CSV form of outcomes: one row per period and unit, written by the results' CSV writer (same escaping); a
hidden unit is a row too, with ``suppressed`` true, its reason and empty figures."""

from __future__ import annotations

from fastapi import Response

from service.outcomes.schemas import OutcomeFigures, Outcomes
from service.results.tabular import render

FIGURES = tuple(name for name in OutcomeFigures.model_fields if name not in ("unit", "parent"))


def outcomes(out: Outcomes) -> Response:
    header = ["period", "unit", "parent", *FIGURES]
    rows = [[p.period, u.unit, u.parent, *(getattr(u, name) for name in FIGURES)] for p in out.periods for u in p.units]
    return render(header, rows, "outcomes.csv")
