"""The heatmap page's table as CSV: the API's heatmap CSV, and with a cut the unit x value rows beside it."""

from __future__ import annotations

from typing import Any

from fastapi import Response

from scoring import ResultTable
from service.auth import Scope
from service.results import published, tabular


def heatmap_csv(table: ResultTable, scope: Scope, by: str | None) -> Response:
    """Every row the viewer may read, one line per unit (and cut) and construct; hidden ones say why."""
    heat = published.heatmap_view(table, scope).out
    if by is None or by not in {a.name for a in table.attributes}:
        return tabular.heatmap(heat)
    header = ["unit", "parent", "attribute", "value", "construct", "n", "mean", "favourable", "suppressed", "reason"]
    inside = published.within(table, scope)
    rows: list[list[Any]] = []
    for row in heat.units:
        rows += [
            [
                row.unit, row.parent, None, None, c.construct_id, c.n, c.mean,
                tabular.withheld(None) if c.favourable_suppressed else c.favourable, c.suppressed, c.reason,
            ]
            for c in row.constructs
        ]  # fmt: skip
        if inside is not None and row.unit not in inside:
            continue  # a manager's reference line: the organisation's total only
        for found in table.cuts(row.unit, by):
            cell = published.cell(found)
            figures = {f.construct_id: f for f in cell.constructs}
            for info in heat.constructs:
                f = figures.get(info.id)
                n, mean = (None, None) if f is None else (f.n, f.mean)
                favourable: float | str | None = None if f is None else f.favourable
                if f is not None and f.favourable_suppressed:
                    favourable = tabular.withheld(f.favourable_reason)
                rows.append(
                    [row.unit, row.parent, by, cell.value, info.id, n, mean, favourable, cell.suppressed, cell.reason]
                )
    return tabular.render(header, rows, f"wave-{table.wave_id}-heatmap-by-{by}.csv")
