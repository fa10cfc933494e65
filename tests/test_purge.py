"""`peil purge --older-than DAYS`: the answers of waves closed long ago go; their stored results stay and are
still served; recent, open and unbuilt waves keep their answers; the audit log says who purged what."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine, delete, func, select, text, update
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from service.cli import app as cli
from service.config import get_settings
from service.models import AuditEntry, Invitation, Response, Wave, WaveResult
from service.models.base import utcnow
from service.waves.purge import purged
from tests.conftest import TEST_SECRET
from tests.factories import close_wave, create_wave, invite, make_key, open_wave, put_tree
from tests.forms.answers import all_answers, as_fields
from tests.mail import mail_links


@pytest.fixture
def peil(settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[CliRunner]:
    """The `peil` command on the test database."""
    monkeypatch.setenv("PEIL_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("PEIL_SECRET_KEY", TEST_SECRET)
    monkeypatch.setenv("PEIL_ENV", "test")
    get_settings.cache_clear()
    yield CliRunner()
    get_settings.cache_clear()


def _wave_with_answers(client: TestClient, app: FastAPI, hr: dict[str, str], name: str, *, close: bool) -> int:
    wave = create_wave(client, hr, name=name)
    emails = invite(client, hr, wave["id"], per_team=1, teams=["team1", "team2", "team3"])
    open_wave(client, hr, wave["id"])
    tokens = mail_links(app, emails)
    instrument = app.state.instruments[("career-safety", 1)].instrument
    for n, token in enumerate(tokens):
        assert client.post(f"/s/{token}", data=as_fields(all_answers(instrument, n))).status_code == 200
    if close:
        close_wave(client, app, hr, wave["id"])
    return int(wave["id"])


def _closed_days_ago(engine: Engine, wave_id: int, days: float, *, with_results: bool = True) -> None:
    """Move a closed wave's close into the past; make sure its result table is stored (or is not)."""
    when = utcnow() - timedelta(days=days)
    with Session(engine) as session, session.begin():
        session.execute(
            update(Wave)
            .where(Wave.id == wave_id)
            .values(
                opens_at=when - timedelta(days=14), opened_at=when - timedelta(days=14), closed_at=when, closes_at=when
            )
        )
        if not with_results:
            session.execute(delete(WaveResult).where(WaveResult.wave_id == wave_id))
        else:
            assert session.get(WaveResult, wave_id) is not None  # stored by the close job


def _count(engine: Engine, model, wave_id: int) -> int:
    with Session(engine) as session:
        return session.scalar(select(func.count()).select_from(model).where(model.wave_id == wave_id)) or 0


def _results(engine: Engine, wave_id: int) -> tuple[bytes, object] | None:
    with Session(engine) as session:
        row = session.get(WaveResult, wave_id)
        return None if row is None else (row.table, row.built_at)


def test_purge_deletes_old_answers_and_keeps_results(
    client: TestClient, app: FastAPI, engine: Engine, peil: CliRunner
) -> None:
    hr = make_key(app, "hr", "HR Anna")
    put_tree(client, hr)
    old = _wave_with_answers(client, app, hr, "Spring 2025", close=True)
    recent = _wave_with_answers(client, app, hr, "Autumn 2025", close=True)
    running = _wave_with_answers(client, app, hr, "Now", close=False)
    unbuilt = _wave_with_answers(client, app, hr, "Never built", close=True)
    _closed_days_ago(engine, old, 40)
    _closed_days_ago(engine, recent, 10)
    _closed_days_ago(engine, unbuilt, 40, with_results=False)
    stored_before = _results(engine, old)
    invitations_before = _count(engine, Invitation, old)

    dry = peil.invoke(cli, ["purge", "--older-than", "30", "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert f"wave {old} (Spring 2025)" in dry.output and "would delete 3 responses" in dry.output
    assert _count(engine, Response, old) == 3

    result = peil.invoke(cli, ["purge", "--older-than", "30"])
    assert result.exit_code == 0, result.output
    assert f"wave {old} (Spring 2025)" in result.output and "deleted 3 responses" in result.output
    assert f"wave {unbuilt} (Never built): kept, no stored results" in result.output

    assert _count(engine, Response, old) == 0
    assert {w: _count(engine, Response, w) for w in (recent, running, unbuilt)} == {recent: 3, running: 3, unbuilt: 3}
    assert _results(engine, old) == stored_before  # the published table, byte for byte
    assert _count(engine, Invitation, old) == invitations_before

    with Session(engine) as session:
        entries = list(session.scalars(select(AuditEntry).where(AuditEntry.action == "responses.purged")))
        assert purged(session, old) and not purged(session, recent)
    assert [(e.key_name, e.wave_id, e.detail["responses"]) for e in entries] == [("peil purge", old, 3)]
    admin = make_key(app, "admin")
    log = client.get("/api/v1/audit", params={"wave_id": old}, headers=admin).json()["entries"]
    assert log[0]["action"] == "responses.purged" and log[0]["key_name"] == "peil purge"

    # The dashboards still work: the wave and, where the results API exists, its stored results.
    assert client.get(f"/api/v1/waves/{old}", headers=hr).json()["state"] == "closed"
    if "/api/v1/waves/{wave_id}/results" in app.openapi()["paths"] and stored_before[0] != b"stored result table":
        assert client.get(f"/api/v1/waves/{old}/results", headers=hr).status_code == 200

    again = peil.invoke(cli, ["purge", "--older-than", "30"])
    assert again.exit_code == 0 and "nothing to purge" in again.output
    assert len(entries) == 1


def test_purge_refuses_a_negative_age(peil: CliRunner, client: TestClient) -> None:
    result = peil.invoke(cli, ["purge", "--older-than", "-1"])
    assert result.exit_code == 2


def test_purge_leaves_no_trace_of_the_answers_in_the_files(
    client: TestClient, app: FastAPI, engine: Engine, settings, peil: CliRunner
) -> None:
    """After the purge the storage is rewritten (VACUUM): on SQLite the deleted answers' bytes are in neither the
    database file nor its write-ahead log; on PostgreSQL the table lives in a new file."""
    hr = make_key(app, "hr", "HR Anna")
    put_tree(client, hr)
    wave = create_wave(client, hr, name="Long ago")
    emails = invite(client, hr, wave["id"], per_team=1, teams=["team1"])
    open_wave(client, hr, wave["id"])
    [token] = mail_links(app, emails)
    instrument = app.state.instruments[("career-safety", 1)].instrument
    [text_item] = [item.id for item in instrument.items if item.type == "text"]
    secret = "Vertrouwelijk-" + "x" * 40
    answers = {**all_answers(instrument, 0), text_item: secret}
    assert client.post(f"/s/{token}", data=as_fields(answers)).status_code == 200
    close_wave(client, app, hr, wave["id"])
    _closed_days_ago(engine, wave["id"], 40)

    def files() -> bytes:
        path = Path(settings.database_url.removeprefix("sqlite:///"))
        return b"".join(p.read_bytes() for p in (path, path.with_name(path.name + "-wal")) if p.exists())

    def filenode() -> int:
        with engine.connect() as conn:
            return int(conn.scalar(text("SELECT pg_relation_filenode('responses')")))

    sqlite = engine.dialect.name == "sqlite"
    if sqlite:
        raw = engine.raw_connection()  # outside a transaction: the answer in the file itself, not only in the log
        raw.driver_connection.execute("PRAGMA wal_checkpoint(TRUNCATE)").close()
        raw.close()
        assert secret.encode() in files()
    else:
        before = filenode()
    result = peil.invoke(cli, ["purge", "--older-than", "30"])
    assert result.exit_code == 0 and "deleted 1 responses" in result.output, result.output
    if sqlite:
        assert secret.encode() not in files()
    else:
        assert filenode() != before
