"""The exported rows say exactly what the stored result table says, read through the results service's own
``stored_table`` (ResultTable objects), not through the export's bulk conversion of the JSON."""

from __future__ import annotations

import math

from fastapi import FastAPI
from fastapi.testclient import TestClient

from service.exports.schema import TABLES
from service.results.service import stored_table
from tests.exports.conftest import ClosedWave, close_wave_with_answers
from tests.exports.readers import read_table
from tests.exports.test_files import _root, export


def _same(a: float | int | None, b: float | int | None) -> bool:
    return (a is None and b is None) or (a is not None and b is not None and math.isclose(a, b, rel_tol=0, abs_tol=0))


def test_rows_match_the_stored_table_cell_by_cell(
    app: FastAPI, client: TestClient, closed_wave: ClosedWave, file_settings
) -> None:
    mixed = close_wave_with_answers(
        client, app, closed_wave.hr, seed=5, per_team=6, name="Small", attributes=("tenure_band", "location")
    )
    assert export(app, file_settings).status == "succeeded"
    root = _root(file_settings)
    exported = {name: read_table(root, name).to_pylist() for name in TABLES}
    for wave in (closed_wave, mixed):
        with app.state.sessionmaker() as session:
            _, table = stored_table(session, wave.id)
        cells = [r for r in exported["cells"] if r["wave_id"] == wave.id]
        assert len(cells) == len(table.cells) * len(table.constructs)
        for row in cells:
            cell = table.cell(row["unit"], row["attribute"] or None, row["value"] or None)
            assert (row["suppressed"], row["reason"], row["n"]) == (cell.suppressed, cell.reason, cell.n)
            figures = cell.construct(row["construct"])
            if figures is None:
                assert cell.suppressed and row["construct_n"] is None and row["mean"] is None
                continue
            assert row["construct_n"] == figures.n
            for name in ("mean", "sd", "ci_low", "ci_high", "favourable", "favourable_low", "favourable_high", "index"):
                assert _same(row[name], getattr(figures, name)), (row, name)
            enps = cell.enps if row["construct"] == "enps" else None
            assert _same(row["enps"], enps.score if enps else None)
            assert row["promoters"] == (enps.promoters if enps else None)
        distributions = [r for r in exported["distributions"] if r["wave_id"] == wave.id]
        expected = [
            (c.unit, c.attribute or "", c.value or "", i.item, i.n, list(i.counts), i.mean)
            for c in table.cells
            for i in c.items
            if not i.suppressed  # an item withheld in a published cell has no row: the table's cell says so
        ]
        withheld = {
            (c.unit, c.attribute or "", c.value or "", i.item) for c in table.cells for i in c.items if i.suppressed
        }
        assert not {(r["unit"], r["attribute"], r["value"], r["item"]) for r in distributions} & withheld
        got = [
            (r["unit"], r["attribute"], r["value"], r["item"], r["n"], r["counts"], r["mean"]) for r in distributions
        ]
        assert got == expected
        flags = [r for r in exported["flags"] if r["wave_id"] == wave.id]
        assert [(r["unit"], r["construct"] or None, r["rule"]) for r in flags] == [
            (f.unit, f.construct, f.rule) for f in table.flags
        ]
        changes = [r for r in exported["changes"] if r["wave_id"] == wave.id]
        assert [(r["unit"], r["construct"], r["difference"]) for r in changes] == [
            (c.unit, c.construct, c.difference) for c in table.changes
        ]
        participation = [r for r in exported["participation"] if r["wave_id"] == wave.id]
        assert [(r["unit"], r["invited"], r["responded"]) for r in participation] == [
            (p.unit, p.invited, p.responded) for p in table.participation
        ]
