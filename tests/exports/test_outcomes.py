"""The export's ``outcomes`` table: the stored, guarded figures the API serves, to Parquet and to SQL, refused when
a row would show a small group."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path

import psycopg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from service.config import Settings
from service.exports import outcomes
from service.exports.rows import UnsafeExport
from tests.api.test_outcomes import rows
from tests.conftest import PG_ADMIN_URL
from tests.exports.conftest import export


@pytest.fixture
def uploaded(client: TestClient, hr: dict[str, str]) -> dict[str, list[dict]]:
    """Two quarters of outcomes, and what the API serves of them."""
    for period in ("2026-Q1", "2026-Q2"):
        response = client.put("/api/v1/outcomes", json={"outcomes": rows(period)}, headers=hr)
        assert response.status_code == 200, response.text
    served = client.get("/api/v1/outcomes", headers=hr).json()["periods"]
    return {p["period"]: p["units"] for p in served}


def _as_served(row: dict) -> dict:
    return {k: row[k] for k in ("unit", "parent", "suppressed", "reason", *dict(outcomes.FIGURES))}


def test_the_files_hold_what_the_api_serves(
    app: FastAPI, client: TestClient, uploaded: dict[str, list[dict]], file_settings: Settings
) -> None:
    run = export(app, file_settings)
    assert run.status == "succeeded", run.error
    root = Path(file_settings.export_target.removeprefix("file://"))
    table = pq.read_table(root / "outcomes" / "part-0.parquet")
    assert table.schema.equals(outcomes.SCHEMA)
    found: dict[str, list[dict]] = {}
    for row in table.to_pylist():
        found.setdefault(row["period"], []).append(_as_served(row))
    assert found == {period: [_as_served(u) for u in units] for period, units in uploaded.items()}
    hidden = [r for r in table.to_pylist() if r["suppressed"]]
    assert hidden and all(r["retention"] is None and r["leavers"] is None for r in hidden)
    assert run.rows["outcomes"] == table.num_rows == 2 * 13
    manifest = json.loads((root / "manifest.json").read_text())
    assert manifest["tables"]["outcomes"] == {"rows": 26, "key": ["period", "unit"]}
    entry = next(f for f in manifest["files"] if f["table"] == "outcomes")
    assert entry["path"] == "outcomes/part-0.parquet" and entry["wave_id"] is None
    before = (root / "outcomes" / "part-0.parquet").stat().st_mtime_ns
    assert export(app, file_settings).status == "succeeded"  # nothing changed: the file is left as it is
    assert (root / "outcomes" / "part-0.parquet").stat().st_mtime_ns == before


def test_the_sql_target_replaces_the_table(
    app: FastAPI,
    client: TestClient,
    hr: dict[str, str],
    uploaded: dict[str, list[dict]],
    settings: Settings,
    pg_schema: tuple[str, str],
) -> None:
    url, schema = pg_schema
    sql_settings = settings.model_copy(update={"export_target": url})
    assert export(app, sql_settings).status == "succeeded"
    again = client.put("/api/v1/outcomes", json={"outcomes": rows("2026-Q2")[:3]}, headers=hr)
    assert again.status_code == 200
    assert export(app, sql_settings).status == "succeeded"
    with psycopg.connect(PG_ADMIN_URL) as conn:
        stored = conn.execute(
            f'SELECT period, count(*), sum(headcount_start) FROM "{schema}".outcomes GROUP BY period ORDER BY period'
        ).fetchall()
        primary = conn.execute(
            """SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid
               AND a.attnum = ANY(i.indkey) WHERE i.indrelid = %s::regclass AND i.indisprimary""",
            [f'"{schema}".outcomes'],
        ).fetchall()
    q1_org = next(u for u in uploaded["2026-Q1"] if u["unit"] == "org")
    assert stored[0][:2] == ("2026-Q1", 13) and q1_org["headcount_start"] == 123
    assert stored[1][:2] == ("2026-Q2", 13)  # every unit of the rebuilt period, hidden ones too
    assert {a for (a,) in primary} == {"period", "unit"}


def test_a_row_that_would_show_a_small_group_is_refused() -> None:
    row = {
        "period": "2026-Q1",
        "unit": "team7",
        "parent": "dep3",
        "name": "Team7",
        "kind": "quarter",
        "starts_on": date(2026, 1, 1),
        "ends_on": date(2026, 3, 31),
        "min_group_size": 5,
        "built_at": datetime(2026, 4, 1, tzinfo=UTC),
        "suppressed": False,
        "reason": None,
        **dict.fromkeys(dict(outcomes.FIGURES)),
    }
    small = {**row, "headcount_start": 2, "headcount_end": 2, "leavers": 1}
    with pytest.raises(UnsafeExport, match="fewer people"):
        outcomes.check_safe(pa.Table.from_pylist([small], schema=outcomes.SCHEMA))
    hidden = {**row, "suppressed": True, "reason": "primary", "leavers": 1}
    with pytest.raises(UnsafeExport, match="hidden row"):
        outcomes.check_safe(pa.Table.from_pylist([hidden], schema=outcomes.SCHEMA))
    few = {**row, "headcount_start": 20, "headcount_end": 20, "promotions": 2, "time_to_promotion": 12.0}
    with pytest.raises(UnsafeExport, match="fewer promotions"):
        outcomes.check_safe(pa.Table.from_pylist([few], schema=outcomes.SCHEMA))
