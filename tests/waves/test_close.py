"""The close job (``service.waves.close``): closing answers at once and builds nothing; one worker of many
builds; a failure is recorded and retried; a worker whose lease lapsed stores nothing; rule 5 in the database."""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from scipy import stats
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from service import links
from service.models import AuditEntry, Response, Wave, WaveResult
from service.models.base import utcnow
from service.waves import close
from tests.conftest import TEST_SECRET
from tests.factories import create_wave, invite, make_key, open_wave, put_tree
from tests.forms.answers import all_answers, as_fields
from tests.mail import mail_links

TEAMS = ["team1", "team2", "team3", "team4", "team5", "team6", "team7"]


@pytest.fixture
def hr(app: FastAPI, client: TestClient) -> dict[str, str]:
    headers = make_key(app, "hr")
    put_tree(client, headers)
    return headers


def _answered(app: FastAPI, client: TestClient, hr: dict[str, str], per_team: int = 5) -> tuple[int, list[str]]:
    """An open wave whose invitees answered through the form, one after the other; the wave and their tokens."""
    wave = create_wave(client, hr)
    emails = invite(client, hr, wave["id"], per_team=per_team, teams=TEAMS)
    open_wave(client, hr, wave["id"])
    tokens = mail_links(app, emails)
    instrument = app.state.instruments[("career-safety", 1)].instrument
    for n, token in enumerate(tokens):
        assert client.post(f"/s/{token}", data=as_fields(all_answers(instrument, n))).status_code == 200
    return wave["id"], tokens


def _closing(app: FastAPI, client: TestClient, hr: dict[str, str]) -> int:
    wave_id, _tokens = _answered(app, client, hr)
    started = client.post(f"/api/v1/waves/{wave_id}/close", headers=hr)
    assert started.status_code == 202 and started.json()["state"] == "closing"
    return wave_id


def _row(app: FastAPI, wave_id: int) -> Wave:
    with app.state.sessionmaker() as session:
        wave = session.get(Wave, wave_id)
        assert wave is not None
        return wave


def _built(app: FastAPI, wave_id: int) -> int:
    with app.state.sessionmaker() as session:
        stored = select(func.count()).select_from(WaveResult).where(WaveResult.wave_id == wave_id)
        entries = select(func.count()).where(AuditEntry.wave_id == wave_id, AuditEntry.action == "results.built")
        assert session.scalar(stored) == session.scalar(entries)
        return int(session.scalar(entries) or 0)


def test_closing_answers_at_once_and_builds_nothing(app: FastAPI, client: TestClient, hr: dict[str, str]) -> None:
    wave_id = _closing(app, client, hr)
    assert _built(app, wave_id) == 0  # the request only froze the wave
    for what in ("results", "heatmap", "flags", "comments"):
        answer = client.get(f"/api/v1/waves/{wave_id}/{what}", headers=hr)
        assert answer.status_code == 409 and f"wave {wave_id} is closing" in answer.json()["error"]["message"]
    [done] = close.run_due(app.state.sessionmaker, app.state.instruments)
    assert done.wave_id == wave_id and set(done.seconds) >= {"load", "build", "store", "export", "commit"}
    assert _built(app, wave_id) == 1 and client.get(f"/api/v1/waves/{wave_id}/results", headers=hr).status_code == 200
    assert close.run_due(app.state.sessionmaker, app.state.instruments) == []  # idempotent: nothing left to do


def test_of_several_workers_exactly_one_builds(app: FastAPI, client: TestClient, hr: dict[str, str]) -> None:
    wave_id = _closing(app, client, hr)
    results: list[list[close.Closed]] = []
    start = threading.Barrier(4)

    def worker() -> None:
        start.wait()
        results.append(close.run_due(app.state.sessionmaker, app.state.instruments))

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert sorted(len(r) for r in results) == [0, 0, 0, 1]
    assert _built(app, wave_id) == 1 and _row(app, wave_id).close_attempts == 1


def test_a_failure_is_recorded_and_retried_later(app: FastAPI, client: TestClient, hr: dict[str, str]) -> None:
    """A worker without the wave's instrument (an older deployment, say) fails with the reason, lets go of the
    wave, and the job runs again once the retry time has come, each time after twice the wait before."""
    wave_id = _closing(app, client, hr)
    factory, instruments = app.state.sessionmaker, app.state.instruments
    start = utcnow()
    assert close.run_due(factory, {}, now=start) == []
    failed = _row(app, wave_id)
    assert failed.state == "closing" and failed.close_attempts == 1 and failed.close_owner is None
    assert failed.close_error == "instrument career-safety/1 is not among this worker's definitions"
    assert failed.close_retry_at is not None and failed.close_retry_at >= start + close.RETRY_FIRST
    shown = client.get(f"/api/v1/waves/{wave_id}", headers=hr).json()
    assert shown["state"] == "closing" and shown["close_error"] == failed.close_error and shown["close_attempts"] == 1
    assert shown["close_retry_at"] is not None
    answer = client.get(f"/api/v1/waves/{wave_id}/results", headers=hr)
    assert answer.status_code == 409 and failed.close_error in answer.json()["error"]["message"]

    assert close.run_due(factory, instruments, now=failed.close_retry_at - timedelta(seconds=1)) == []  # not yet
    assert close.run_due(factory, {}, now=failed.close_retry_at) == []  # fails again: twice the wait
    again = _row(app, wave_id)
    assert again.close_attempts == 2 and again.close_retry_at is not None
    assert again.close_retry_at - failed.close_retry_at >= 2 * close.RETRY_FIRST
    [done] = close.run_due(factory, instruments, now=again.close_retry_at)
    closed = _row(app, wave_id)
    assert done.wave_id == wave_id and closed.state == "closed" and closed.close_attempts == 3
    assert closed.close_error is None and closed.close_retry_at is None and _built(app, wave_id) == 1


def test_a_worker_whose_lease_lapsed_stores_nothing(app: FastAPI, client: TestClient, hr: dict[str, str]) -> None:
    """A worker that hangs past its lease loses the wave to another; when it wakes, it stores nothing."""
    wave_id = _closing(app, client, hr)
    factory, instruments = app.state.sessionmaker, app.state.instruments
    now = utcnow()
    assert close.claim(factory, wave_id, "slow", now=now)
    assert not close.claim(factory, wave_id, "other", now=now + close.LEASE - timedelta(seconds=1))
    assert close.due(factory, now=now + close.LEASE - timedelta(seconds=1)) == []
    assert close.claim(factory, wave_id, "other", now=now + close.LEASE + timedelta(seconds=1))
    with pytest.raises(close.LeaseLost):
        close.close(factory, wave_id, instruments, owner="slow")
    assert _built(app, wave_id) == 0 and _row(app, wave_id).state == "closing"
    close.close(factory, wave_id, instruments, owner="other")
    assert _built(app, wave_id) == 1 and _row(app, wave_id).state == "closed"


def test_a_rebuild_goes_through_the_same_steps(app: FastAPI, client: TestClient, hr: dict[str, str]) -> None:
    wave_id = _closing(app, client, hr)
    with pytest.raises(Exception, match="another worker is closing"):
        assert close.claim(app.state.sessionmaker, wave_id, "worker")
        close.rebuild(app.state.sessionmaker, wave_id, app.state.instruments, actor="test")
    close.close(app.state.sessionmaker, wave_id, app.state.instruments, owner="worker")
    first = _stored(app, wave_id)
    again = close.rebuild(app.state.sessionmaker, wave_id, app.state.instruments, actor="test")
    assert again.table.to_dict() == first and _row(app, wave_id).close_owner is None


def _stored(app: FastAPI, wave_id: int) -> dict[str, Any]:
    import gzip
    import json

    with app.state.sessionmaker() as session:
        row = session.get(WaveResult, wave_id)
        assert row is not None
        stored: dict[str, Any] = json.loads(gzip.decompress(row.table))
        return stored


def _physical(session: Session, wave_id: int) -> list[tuple[str, str, str, Any]]:
    """The wave's responses in the order they lie on disk: (token_mac, id, xmin, answered_on)."""
    return [
        (mac, id_, xmin, day)
        for mac, id_, xmin, day in session.execute(
            text("SELECT token_mac, id, xmin::text, answered_on FROM responses WHERE wave_id = :wave_id ORDER BY ctid"),
            {"wave_id": wave_id},
        )
    ]


def test_rule_5_the_stored_order_tells_nothing_after_the_close(
    app: FastAPI, client: TestClient, hr: dict[str, str], database_url: str
) -> None:
    """Answers submitted in a known order: before the close, rows lie on disk in that order with rising
    transaction ids and each has its day; after it, every row is new (new id), written by one transaction, in
    the order of the new random ids, without a day, and its place on disk bears no relation to when it came."""
    wave_id, tokens = _answered(app, client, hr, per_team=10)
    submitted = {links.token_mac(TEST_SECRET.encode(), token): n for n, token in enumerate(tokens)}
    postgresql = database_url.startswith("postgresql")
    with app.state.sessionmaker() as session:
        if postgresql:
            before = _physical(session, wave_id)
            assert [submitted[mac] for mac, *_ in before] == list(range(len(tokens)))  # the leak this closes
            assert len({xmin for _, _, xmin, _ in before}) == len(tokens)
        old_ids = set(session.scalars(select(Response.id).where(Response.wave_id == wave_id)))
        assert None not in set(session.scalars(select(Response.answered_on).where(Response.wave_id == wave_id)))
    assert client.post(f"/api/v1/waves/{wave_id}/close", headers=hr).status_code == 202
    close.run_due(app.state.sessionmaker, app.state.instruments)
    with app.state.sessionmaker() as session:
        days = set(session.scalars(select(Response.answered_on).where(Response.wave_id == wave_id)))
        assert days == {None}
        assert session.scalar(select(func.count()).where(Response.wave_id == wave_id)) == len(tokens)
        if not postgresql:  # SQLite keeps rows in the order of their ids, random from the first save
            return
        after = _physical(session, wave_id)
    assert {mac for mac, *_ in after} == set(submitted)
    assert not {id_ for _, id_, _, _ in after} & old_ids  # fresh rows
    assert len({xmin for _, _, xmin, _ in after}) == 1  # one transaction wrote them all
    assert [id_ for _, id_, _, _ in after] == sorted(id_ for _, id_, _, _ in after)  # placed by the random ids
    rho = stats.spearmanr([submitted[mac] for mac, *_ in after], range(len(after))).statistic
    assert abs(rho) < 0.5, rho  # 70 rows in a random order: |rho| >= 0.5 has a chance of about 1 in 100,000
