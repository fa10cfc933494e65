"""The Parquet export of a wave closed through the API: read back with pyarrow and DuckDB, checked for privacy,
idempotent, incremental, and atomic when a run fails or is killed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select

from service.config import Settings
from service.exports import files
from service.exports.schema import TABLES
from service.models import ExportLock, ExportRun, WaveResult
from service.models.base import utcnow
from tests.conftest import TEST_SECRET
from tests.exports.conftest import SECRET_TEXT, ClosedWave, close_wave_with_answers, export
from tests.exports.readers import assert_safe, check_manifest, duck, files_of, read_table, secrets_of


def _root(settings: Settings) -> Path:
    assert settings.export_target is not None
    return Path(settings.export_target.removeprefix("file://"))


def _psych_safety_by_division(app: FastAPI, wave: ClosedWave) -> dict[str, float]:
    """Independently of the engine: each respondent's score (reverse items recoded), averaged per division."""
    instrument = app.state.instruments[("career-safety", 1)].instrument
    construct = next(c for c in instrument.constructs if c.id == "psych_safety")
    items = [i.id for i in instrument.items if i.construct_id == "psych_safety"]
    scores: dict[str, list[float]] = {}
    for r in wave.respondents:
        values = [8 - r.answers[i] if i in construct.reverse else r.answers[i] for i in items]
        assert len(values) >= construct.min_answered
        scores.setdefault(wave.division_of(r.team), []).append(sum(values) / len(values))
    return {division: sum(v) / len(v) for division, v in scores.items()}


def test_read_back_with_pyarrow_and_duckdb(app, client: TestClient, closed_wave: ClosedWave, file_settings) -> None:
    run = export(app, file_settings)
    assert run.status == "succeeded", run.error
    assert run.waves == [closed_wave.id]
    root = _root(file_settings)
    manifest = check_manifest(root)
    assert manifest["schema_version"] == 1
    assert set(manifest["tables"]) == {*TABLES, "outcomes"}  # outcomes: a table of its own, here without rows
    assert manifest["tables"]["outcomes"] == {"rows": 0, "key": ["period", "unit"]}
    assert (root / "cells" / f"wave={closed_wave.id}" / "part-0.parquet").is_file()

    # pyarrow: every (unit, column, construct) is there, hidden ones too, with the hive partition column.
    cells = read_table(root, "cells")
    units = read_table(root, "units")
    constructs = read_table(root, "constructs")
    waves = read_table(root, "waves").to_pylist()
    assert waves[0]["wave_id"] == closed_wave.id and waves[0]["attributes"] == ["location"]
    columns = 1 + 2  # the total, location A and B
    assert cells.num_rows == units.num_rows * columns * constructs.num_rows
    assert set(cells.column("wave").to_pylist()) == {closed_wave.id}
    assert units.num_rows == 13 and sorted(r["unit"] for r in units.to_pylist() if r["depth"] == 1) == ["div1", "div2"]

    # DuckDB: the average psychological-safety score per division, two ways, against the raw answers.
    con = duck(root)
    by_division = dict(
        con.execute(
            """SELECT c.unit, c.mean FROM cells c JOIN units u USING (wave_id, unit)
               WHERE u.depth = 1 AND c.construct = 'psych_safety' AND c.attribute = '' AND NOT c.suppressed
               ORDER BY c.unit"""
        ).fetchall()
    )
    from_teams = dict(
        con.execute(
            """WITH RECURSIVE up(unit, division) AS (
                   SELECT unit, unit FROM units WHERE depth = 1
                   UNION ALL SELECT u.unit, up.division FROM units u JOIN up ON u.parent = up.unit)
               SELECT division, SUM(c.mean * c.construct_n) / SUM(c.construct_n) FROM cells c
               JOIN up USING (unit) JOIN units t USING (wave_id, unit)
               WHERE c.construct = 'psych_safety' AND c.attribute = '' AND t.unit LIKE 'team%'
               GROUP BY division ORDER BY division"""
        ).fetchall()
    )
    expected = _psych_safety_by_division(app, closed_wave)
    assert by_division.keys() == expected.keys() == from_teams.keys()
    for division, mean in expected.items():
        assert by_division[division] == pytest.approx(mean, rel=1e-9)
        assert from_teams[division] == pytest.approx(mean, rel=1e-9)
    n = con.execute("SELECT n FROM cells WHERE unit = 'org' AND attribute = '' AND construct = 'psych_safety'")
    assert n.fetchone() == (len(closed_wave.respondents),)


def test_nothing_small_and_nothing_personal(app, client: TestClient, closed_wave: ClosedWave, file_settings) -> None:
    # A second wave cut by tenure and location in teams of 6: cuts of 2 and 3 people, so the guard hides cells.
    small = close_wave_with_answers(
        client, app, closed_wave.hr, seed=5, per_team=6, name="Small", attributes=("tenure_band", "location")
    )
    assert export(app, file_settings).waves == [closed_wave.id, small.id]
    root = _root(file_settings)
    tables = {name: read_table(root, name) for name in TABLES}
    hidden = [r for r in tables["cells"].to_pylist() if r["suppressed"]]
    assert {r["wave_id"] for r in hidden} == {small.id}
    assert {r["reason"] for r in hidden} >= {"primary", "complementary"}
    units, constructs = 13, tables["constructs"].num_rows // 2
    assert sum(1 for r in tables["cells"].to_pylist() if r["wave_id"] == small.id) == units * (1 + 3 + 2) * constructs
    with app.state.sessionmaker() as session:
        forbidden = secrets_of(session)
    people = closed_wave.respondents + small.respondents
    forbidden += [r.token for r in people] + [SECRET_TEXT, "/s/"]
    assert_safe(tables, 5, forbidden)
    raw = b"".join(p.read_bytes() for p in root.rglob("*") if p.is_file())
    assert SECRET_TEXT.encode() not in raw  # not even in a compressed page's clear bytes or the manifest
    assert all(r.token.encode() not in raw for r in people)
    # Published distributions, eNPS and changes come from the same published cells only.
    published = {(r["unit"], r["attribute"], r["value"]) for r in tables["cells"].to_pylist() if not r["suppressed"]}
    assert {(r["unit"], r["attribute"], r["value"]) for r in tables["distributions"].to_pylist()} <= published
    enps = [r for r in tables["cells"].to_pylist() if r["enps"] is not None]
    assert enps and all(
        r["construct"] == "enps" and r["promoters"] + r["passives"] + r["detractors"] == r["enps_n"] for r in enps
    )


def test_rerun_changes_nothing_and_full_writes_the_same_bytes(
    app, client: TestClient, closed_wave: ClosedWave, file_settings
) -> None:
    assert export(app, file_settings).status == "succeeded"
    root = _root(file_settings)
    before = files_of(root)
    mtimes = {p: (root / p).stat().st_mtime_ns for p in before}
    again = export(app, file_settings)
    assert again.status == "succeeded" and again.waves == [] and sum(again.rows.values()) == 0
    assert files_of(root) == before
    assert {p: (root / p).stat().st_mtime_ns for p in before} == mtimes  # not even rewritten
    full = export(app, file_settings, full=True)
    assert full.status == "succeeded" and full.waves == [closed_wave.id]
    assert files_of(root) == before
    # Determinism does not hide in the skip: writing the same rows twice gives the same bytes.
    table = read_table(root, "cells").drop_columns(["wave"])
    assert files.write_parquet(table) == files.write_parquet(table)
    assert not pq.read_metadata(root / "cells" / f"wave={closed_wave.id}" / "part-0.parquet").metadata.get(
        b"created_at"
    )


def test_incremental_new_and_rebuilt_waves(app, client: TestClient, closed_wave: ClosedWave, file_settings) -> None:
    first = export(app, file_settings)
    root = _root(file_settings)
    wave_1 = {p: d for p, d in files_of(root).items() if f"wave={closed_wave.id}" in p}
    second = close_wave_with_answers(client, app, closed_wave.hr, seed=12, name="Winter")
    run = export(app, file_settings)
    assert (first.waves, run.waves) == ([closed_wave.id], [second.id])
    assert {p: d for p, d in files_of(root).items() if f"wave={closed_wave.id}" in p} == wave_1
    manifest = check_manifest(root)
    assert sorted(map(int, manifest["waves"])) == [closed_wave.id, second.id]
    changes = read_table(root, "changes").to_pylist()
    assert changes and {r["previous_wave_id"] for r in changes} == {closed_wave.id}

    from service.waves import close

    close.rebuild(app.state.sessionmaker, closed_wave.id, app.state.instruments, actor="test")  # a new built_at
    rebuilt = export(app, file_settings)
    assert rebuilt.waves == [closed_wave.id]
    assert export(app, file_settings).waves == []


def _fail_on_write(monkeypatch: pytest.MonkeyPatch, after: int) -> None:
    real = files.write_parquet
    calls = {"n": 0}

    def failing(table):
        calls["n"] += 1
        if calls["n"] > after:
            raise OSError("disk full (injected)")
        return real(table)

    monkeypatch.setattr(files, "write_parquet", failing)


def test_a_failed_run_leaves_the_export_intact_and_the_next_repairs_it(
    app, client: TestClient, closed_wave: ClosedWave, file_settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert export(app, file_settings).status == "succeeded"
    root = _root(file_settings)
    before = files_of(root)
    second = close_wave_with_answers(client, app, closed_wave.hr, seed=13, name="Winter")
    _fail_on_write(monkeypatch, after=4)
    failed = export(app, file_settings)
    assert failed.status == "failed" and "disk full (injected)" in (failed.error or "")
    assert failed.finished_at is not None
    assert files_of(root) == before  # no temporary file left, no file replaced
    check_manifest(root)
    assert duck(root).execute("SELECT DISTINCT wave_id FROM cells").fetchall() == [(closed_wave.id,)]
    monkeypatch.undo()
    repaired = export(app, file_settings)
    assert repaired.status == "succeeded" and repaired.waves == [second.id]
    assert sorted(map(int, check_manifest(root)["waves"])) == [closed_wave.id, second.id]


KILLER = """
import os, signal, sys
from datetime import timedelta
from service.config import Settings
from service.db import make_engine, make_sessionmaker
from service.exports import files
from service.exports.service import run_export

real, calls = files._fsync_write, [0]
def write_then_die(path, data):
    calls[0] += 1
    if calls[0] > int(sys.argv[2]):
        os.kill(os.getpid(), signal.SIGKILL)
    return real(path, data)
files._fsync_write = write_then_die  # killed with temporary files of the wave on disk
settings = Settings(env="test", database_url=sys.argv[1], export_target=sys.argv[3], secret_key="t" * 48)
run = run_export(make_sessionmaker(make_engine(settings.database_url)), settings, trigger="cli", actor="killed",
           lock_ttl=timedelta(seconds=1))
print(run.status, run.error, file=sys.stderr)
"""


def test_a_killed_run_leaves_the_export_readable_and_is_recorded_as_failed(
    app, client: TestClient, closed_wave: ClosedWave, file_settings, settings
) -> None:
    assert export(app, file_settings, full=True).status == "succeeded"
    root = _root(file_settings)
    before = files_of(root)
    second = close_wave_with_answers(client, app, closed_wave.hr, seed=14, name="Winter")
    env = {**os.environ, "PEIL_SECRET_KEY": TEST_SECRET}
    killed = subprocess.run(
        [sys.executable, "-c", KILLER, settings.database_url, "5", file_settings.export_target],
        env=env,
        cwd=Path(__file__).resolve().parents[2],
        capture_output=True,
        timeout=120,
    )
    assert killed.returncode == -9, killed.stderr.decode()[-2000:]
    assert {p: d for p, d in files_of(root).items() if not Path(p).name.startswith(".")} == before
    check_manifest(root)
    assert duck(root).execute("SELECT count(*) FROM cells WHERE wave_id = ?", [second.id]).fetchone() == (0,)
    with app.state.sessionmaker() as session:
        dead = session.scalars(select(ExportRun).order_by(ExportRun.id.desc())).first()
        assert dead is not None and dead.status == "running"
        locked_until = session.get_one(ExportLock, 1).locked_until
    while utcnow() <= locked_until:  # the dead run's claim lapses after its one-second ttl
        time.sleep(0.1)
    repaired = export(app, file_settings)
    assert repaired.status == "succeeded" and repaired.waves == [second.id]
    with app.state.sessionmaker() as session:
        dead = session.get_one(ExportRun, dead.id)
        assert dead.status == "failed" and "interrupted" in (dead.error or "")
    assert not [p for p in files_of(root) if Path(p).name.startswith(".")]  # the dead run's temporaries swept
    manifest = check_manifest(root)
    assert sorted(map(int, manifest["waves"])) == [closed_wave.id, second.id]
    assert json.loads((root / "manifest.json").read_text()) == manifest


def test_the_readme_duckdb_one_liner(app, client: TestClient, closed_wave: ClosedWave, file_settings) -> None:
    assert export(app, file_settings).status == "succeeded"
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    query = readme.split('duckdb -c "', 1)[1].split('"\n', 1)[0]
    rows = duck(_root(file_settings)).execute(query.replace("data/export", str(_root(file_settings)))).fetchall()
    expected = _psych_safety_by_division(app, closed_wave)
    assert [unit for unit, _n, _mean in rows] == sorted(expected)
    assert [mean for _unit, _n, mean in rows] == [pytest.approx(expected[u], abs=0.005) for u in sorted(expected)]


def test_a_wave_whose_results_are_gone_leaves_the_export(
    app, client: TestClient, closed_wave: ClosedWave, file_settings
) -> None:
    second = close_wave_with_answers(client, app, closed_wave.hr, seed=15, name="Winter")
    assert export(app, file_settings).waves == [closed_wave.id, second.id]
    root = _root(file_settings)
    with app.state.sessionmaker() as session, session.begin():
        session.delete(session.get_one(WaveResult, second.id))
    run = export(app, file_settings)
    assert run.status == "succeeded" and run.waves == []
    assert not list(root.glob(f"*/wave={second.id}"))
    assert sorted(map(int, check_manifest(root)["waves"])) == [closed_wave.id]
    assert duck(root).execute("SELECT DISTINCT wave_id FROM cells").fetchall() == [(closed_wave.id,)]
