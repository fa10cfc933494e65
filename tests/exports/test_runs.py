"""One run at a time (a lock in the database, tried concurrently), the run history over the API, the audit
entry, `peil export run` with and without a terminal, the cron job, and the guard the export applies itself."""

from __future__ import annotations

import gzip
import json
import os
import pty
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select
from typer.testing import CliRunner

from scoring import AttributeInfo, ConstructCell, ConstructInfo, ResultCell, ResultTable, UnitInfo
from service import scheduler
from service.cli import app as cli
from service.config import Settings, get_settings
from service.exports import endpoints, files, lock
from service.exports.rows import UnsafeExport, WaveInfo, check_safe, wave_tables
from service.exports.service import ExportBusy, run_export
from service.models import AuditEntry, ExportRun, WaveResult
from service.models.base import utcnow
from tests.conftest import TEST_SECRET
from tests.exports.conftest import ClosedWave, export
from tests.exports.readers import files_of
from tests.factories import make_key

REPO = Path(__file__).resolve().parents[2]


def _runs(app: FastAPI) -> list[ExportRun]:
    with app.state.sessionmaker() as session:
        return list(session.scalars(select(ExportRun).order_by(ExportRun.id)))


def _attempt_together(app: FastAPI, settings: Settings, n: int, slot: datetime | None) -> list[object]:
    """``n`` workers start an export at the same instant; what each got (a run or ExportBusy)."""
    barrier = threading.Barrier(n)
    results: list[object] = [None] * n

    def worker(i: int) -> None:
        barrier.wait()
        try:
            results[i] = run_export(app.state.sessionmaker, settings, trigger="schedule", actor="w", slot=slot)
        except ExportBusy as exc:
            results[i] = exc

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    return results


def test_workers_firing_the_same_cron_tick_make_one_run(
    app: FastAPI, client: TestClient, closed_wave: ClosedWave, file_settings: Settings
) -> None:
    slot = datetime(2026, 11, 23, 3, 0, tzinfo=UTC)
    results = _attempt_together(app, file_settings, 6, slot)
    runs = [r for r in results if isinstance(r, ExportRun)]
    assert len(runs) == 1 and runs[0].status == "succeeded" and runs[0].waves == [closed_wave.id]
    assert sum(isinstance(r, ExportBusy) for r in results) == 5
    assert len(_runs(app)) == 1
    # A worker that comes late for the same tick, after the run has finished, finds the slot taken.
    with pytest.raises(ExportBusy):
        run_export(app.state.sessionmaker, file_settings, trigger="schedule", actor="late", slot=slot)
    # The next tick runs again (nothing new: an empty run).
    later = run_export(app.state.sessionmaker, file_settings, trigger="schedule", actor="w", slot=slot + timedelta(1))
    assert later.status == "succeeded" and later.waves == []


def test_the_cron_job_on_several_workers(
    app: FastAPI, client: TestClient, closed_wave: ClosedWave, file_settings: Settings, monkeypatch
) -> None:
    """``export_job`` as APScheduler calls it in each worker: one run per tick, the others skip quietly."""
    tick = datetime(2026, 11, 23, 4, 0, 7, tzinfo=UTC)
    monkeypatch.setattr(scheduler, "utcnow", lambda: tick)
    threads = [
        threading.Thread(target=scheduler.export_job, args=(file_settings, app.state.sessionmaker)) for _ in range(4)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    runs = _runs(app)
    assert [(r.trigger, r.status, r.waves) for r in runs] == [("schedule", "succeeded", [closed_wave.id])]
    jobs = scheduler.start_scheduler(
        file_settings.model_copy(update={"export_cron": "15 3 * * *"}), app.state.sessionmaker, app.state.instruments
    )
    try:
        job = jobs.get_job("export")
        assert (
            job is not None and str(job.trigger) == "cron[month='*', day='*', day_of_week='*', hour='3', minute='15']"
        )
    finally:
        jobs.shutdown(wait=False)


def test_a_held_lock_refuses_manual_runs_until_it_lapses(
    app: FastAPI, client: TestClient, closed_wave: ClosedWave, file_settings: Settings
) -> None:
    factory = app.state.sessionmaker
    assert lock.acquire(factory, "another-replica", timedelta(minutes=10))
    with pytest.raises(ExportBusy):
        run_export(factory, file_settings, trigger="cli", actor="me")
    assert not lock.acquire(factory, "a-third", timedelta(minutes=10))
    # Its claim lapses if it stops renewing (seen from 11 minutes on); then another run takes it.
    assert lock.acquire(factory, "a-third", timedelta(minutes=10), now=utcnow() + timedelta(minutes=11))
    assert not lock.heartbeat(factory, "another-replica")  # the lapsed owner learns it lost the claim
    lock.release(factory, "a-third")
    assert export(app, file_settings).status == "succeeded"
    assert _runs(app)[-1].waves == [closed_wave.id]


def test_api_runs_now_lists_runs_and_audits(
    app: FastAPI, client: TestClient, closed_wave: ClosedWave, settings: Settings, tmp_path: Path
) -> None:
    app.state.settings = settings.model_copy(update={"export_target": f"file://{tmp_path / 'api'}"})
    try:
        hr = make_key(app, "hr", "bi-team")
        created = client.post("/api/v1/exports", headers=hr)
        assert created.status_code == 201, created.text
        run = created.json()
        assert run["status"] == "succeeded" and run["waves"] == [closed_wave.id] and run["trigger"] == "api"
        manifest = json.loads((tmp_path / "api" / "manifest.json").read_text())
        assert run["rows"] == {name: t["rows"] for name, t in manifest["tables"].items()}
        assert run["rows"]["cells"] == 13 * 3 * 6  # units x (total + 2 locations) x constructs
        assert client.post("/api/v1/exports", headers=hr, json={"full": True}).json()["waves"] == [closed_wave.id]
        assert client.post("/api/v1/exports", headers=hr, json={}).json()["waves"] == []
        refused = client.post("/api/v1/exports", headers=hr, json={"waves": [999]})
        assert refused.status_code == 422 and "999" in refused.json()["error"]["message"]
        assert client.post("/api/v1/exports", headers=hr, json={"later": True}).status_code == 422
        assert lock.acquire(app.state.sessionmaker, "elsewhere")
        busy = client.post("/api/v1/exports", headers=hr)
        assert busy.status_code == 409 and busy.json()["error"]["code"] == "export_running"
        lock.release(app.state.sessionmaker, "elsewhere")

        listed = client.get("/api/v1/exports", headers=hr).json()["runs"]
        assert [r["id"] for r in listed] == [3, 2, 1]
        assert listed[2]["target"] == f"file://{tmp_path / 'api'}" and listed[2]["finished_at"] is not None
        assert set(listed[2]) >= {"status", "started_at", "finished_at", "waves", "rows", "target", "error"}
        assert client.get("/api/v1/exports", headers=make_key(app, "dashboard")).status_code == 403
        with app.state.sessionmaker() as session:
            audited = session.scalars(select(AuditEntry).where(AuditEntry.action == "exported")).all()
        assert [(a.key_name, a.detail["run_id"], a.detail["waves"]) for a in audited] == [
            ("bi-team", 1, [closed_wave.id]),
            ("bi-team", 2, [closed_wave.id]),
            ("bi-team", 3, []),
        ]
    finally:
        app.state.settings = settings


def test_api_answers_202_while_a_long_run_goes_on(
    app: FastAPI,
    client: TestClient,
    closed_wave: ClosedWave,
    settings: Settings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A run longer than the POST's wait (a SQL export of a large organisation) is answered with 202 and the
    running run; it goes on outside the request and the history shows it finish."""
    app.state.settings = settings.model_copy(update={"export_target": f"file://{tmp_path / 'api'}"})
    release = threading.Event()
    real = files.FileTarget.write_wave

    def slow(self, wave_id, tables, *, check):
        assert release.wait(30)
        real(self, wave_id, tables, check=check)

    monkeypatch.setattr(endpoints, "POST_WAIT_SECONDS", 0.05)
    monkeypatch.setattr(files.FileTarget, "write_wave", slow)
    try:
        hr = make_key(app, "hr", "bi-team")
        accepted = client.post("/api/v1/exports", headers=hr)
        assert accepted.status_code == 202, accepted.text
        run = accepted.json()
        assert run["status"] == "running" and run["finished_at"] is None
        busy = client.post("/api/v1/exports", headers=hr)
        assert busy.status_code == 409 and busy.json()["error"]["code"] == "export_running"
        release.set()
        for _ in range(300):
            listed = client.get("/api/v1/exports", headers=hr).json()["runs"]
            if listed[0]["status"] != "running":
                break
            time.sleep(0.1)
        assert listed[0]["id"] == run["id"] and listed[0]["status"] == "succeeded", listed[0]
        assert listed[0]["waves"] == [closed_wave.id]
    finally:
        release.set()
        app.state.settings = settings


@pytest.fixture
def peil(settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("PEIL_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("PEIL_SECRET_KEY", TEST_SECRET)
    monkeypatch.setenv("PEIL_ENV", "test")
    monkeypatch.setenv("PEIL_EXPORT_TARGET", f"file://{tmp_path / 'cli'}")
    get_settings.cache_clear()
    yield CliRunner()
    get_settings.cache_clear()


def test_cli_export_run(app: FastAPI, client: TestClient, closed_wave: ClosedWave, peil: CliRunner, tmp_path) -> None:
    first = peil.invoke(cli, ["export", "run"])
    assert first.exit_code == 0, first.output
    assert f"waves {closed_wave.id};" in first.output and "rows" in first.output
    assert "#" not in first.output and "\r" not in first.output  # no progress bar without a terminal
    assert (tmp_path / "cli" / "manifest.json").is_file()
    again = peil.invoke(cli, ["export", "run"])
    assert again.exit_code == 0 and "nothing new" in again.output
    forced = peil.invoke(cli, ["export", "run", "--wave", str(closed_wave.id)])
    assert forced.exit_code == 0 and f"waves {closed_wave.id};" in forced.output
    assert peil.invoke(cli, ["export", "run", "--full"]).exit_code == 0
    unknown = peil.invoke(cli, ["export", "run", "--wave", "4242"])
    assert unknown.exit_code == 2 and "4242" in unknown.output
    assert lock.acquire(app.state.sessionmaker, "elsewhere")
    assert peil.invoke(cli, ["export", "run"]).exit_code == 75
    lock.release(app.state.sessionmaker, "elsewhere")
    assert [r.trigger for r in _runs(app)] == ["cli"] * 4


def test_cli_progress_bar_on_a_terminal(
    app: FastAPI, client: TestClient, closed_wave: ClosedWave, settings: Settings, tmp_path: Path
) -> None:
    leader, follower = pty.openpty()
    env = {
        **os.environ,
        "PEIL_DATABASE_URL": settings.database_url,
        "PEIL_SECRET_KEY": TEST_SECRET,
        "PEIL_ENV": "test",
        "PEIL_EXPORT_TARGET": f"file://{tmp_path / 'tty'}",
        "COLUMNS": "100",
    }
    process = subprocess.Popen(
        [sys.executable, "-c", "from service.cli import main; main()", "export", "run"],
        stdout=follower,
        stderr=subprocess.PIPE,
        env=env,
        cwd=REPO,
    )
    os.close(follower)
    output = b""
    while True:
        try:
            chunk = os.read(leader, 4096)
        except OSError:  # the terminal closed: the command is done
            break
        if not chunk:
            break
        output += chunk
    os.close(leader)
    assert process.wait(timeout=120) == 0, process.stderr.read() if process.stderr else ""
    text = output.decode(errors="replace")
    assert "100%" in text and "#" in text, text
    assert f"waves {closed_wave.id};" in text


def _table(n: int, suppressed: bool = False) -> ResultTable:
    cell = ResultCell(
        "team", None, None, n, suppressed, None, (ConstructCell("c", n, 4.0, 1.0, 3, 5, 0.5, 0.3, 0.7, 75),)
    )
    return ResultTable(
        wave_id=7,
        instrument="career-safety",
        version=1,
        min_group_size=5,
        previous_wave_id=None,
        units=(UnitInfo("team", None),),
        attributes=(AttributeInfo("location", ()),),
        constructs=(ConstructInfo("c", "likert5", 1, 5, 4.0, ("i1",)),),
        items=(),
        cells=(cell,),
    )


def test_the_export_refuses_a_small_group_whatever_produced_it(
    app: FastAPI, client: TestClient, closed_wave: ClosedWave, file_settings: Settings
) -> None:
    info = WaveInfo("w", utcnow(), utcnow(), None, (), utcnow(), {}, None)
    check_safe(wave_tables(_table(5), info), 5)
    with pytest.raises(UnsafeExport, match="smaller than 5"):
        check_safe(wave_tables(_table(3), info), 5)
    # A stored table that would publish a group of 3 (a bug elsewhere, a tampered row) fails the run, and
    # nothing of it is written.
    assert export(app, file_settings).status == "succeeded"
    root = Path(str(file_settings.export_target).removeprefix("file://"))
    before = files_of(root)
    with app.state.sessionmaker() as session, session.begin():
        row = session.get_one(WaveResult, closed_wave.id)
        table = json.loads(gzip.decompress(row.table))
        published = next(c for c in table["cells"] if not c["suppressed"] and c["constructs"])
        published["n"] = 3
        published["constructs"][0]["n"] = 3
        row.table, row.built_at = gzip.compress(json.dumps(table).encode()), utcnow()
    failed = export(app, file_settings)
    assert failed.status == "failed" and "smaller than 5" in (failed.error or "")
    assert files_of(root) == before
