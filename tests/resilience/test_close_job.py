"""The close job in a real `peil serve --workers 2`: SIGKILLed in the middle of a build, restarted, it ends in one
stored table equal to an uninterrupted build; of the workers of two servers on one database, one builds."""

from __future__ import annotations

import gzip
import json
import secrets
import time
from datetime import date
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, func, insert, select
from sqlalchemy.orm import Session

import scoring
from service.db import make_engine, reading
from service.models import AuditEntry, Response, Unit, Wave, WaveResult
from service.results.data import load_inputs
from tests.forms.answers import all_answers
from tests.resilience.live import LiveServer, hr_key, setup_wave, wait_closed
from tests.resilience.test_exactly_once import _instrument

pytestmark = pytest.mark.live

# Quick to take over: a killed worker's wave is free again after 2 s, and the workers look every half second.
FAST = {"PEIL_CLOSE_LEASE_SECONDS": "2", "PEIL_CLOCK_INTERVAL_SECONDS": "0.5"}
TEAMS = 300
RESPONDENTS = 30_000  # enough for a build of about a second: time to kill it in the middle


def _big_wave(server: LiveServer, engine: Engine) -> tuple[int, dict[str, str]]:
    """A wave of RESPONDENTS complete responses over TEAMS more teams, written straight into the database."""
    setup = setup_wave(server, hr_key(engine), invitations=7)
    teams = [{"key": f"t{t}", "name": f"Team {t}", "parent_key": f"dep{1 + t % 3}"} for t in range(TEAMS)]
    with httpx.Client(base_url=server.base, headers=setup.hr, timeout=60) as api:
        assert api.put("/api/v1/units", json={"units": teams}).status_code == 200
    instrument = _instrument()
    variants = [all_answers(instrument, variant) for variant in range(50)]
    with Session(engine) as session, session.begin():
        unit_ids = list(session.scalars(select(Unit.id).where(Unit.key.like("t%"))))
        session.execute(
            insert(Response),
            [
                {
                    "id": secrets.token_hex(16),
                    "wave_id": setup.wave_id,
                    "unit_id": unit_ids[r % len(unit_ids)],
                    "attributes": {"tenure_band": ["<1", "1-3", "3+"][r % 3], "location": ["A", "B"][r % 2]},
                    "token_mac": secrets.token_hex(32),
                    "answers": variants[r % len(variants)],
                    "complete": True,
                    "answered_on": date.today(),
                }
                for r in range(RESPONDENTS)
            ],
        )
    return setup.wave_id, setup.hr


def _state(engine: Engine, wave_id: int) -> tuple[str, str | None, int]:
    with Session(engine) as session:
        wave = session.get(Wave, wave_id)
        assert wave is not None
        return wave.state, wave.close_owner, wave.close_attempts


def _stored(engine: Engine, wave_id: int) -> list[dict[str, Any]]:
    with Session(engine) as session:
        return [json.loads(gzip.decompress(row.table)) for row in session.scalars(select(WaveResult))]


def _uninterrupted(url: str, wave_id: int) -> dict[str, Any]:
    """The wave's table built in this process, from its answers as they are stored, in one go."""
    from service.config import REPO_ROOT
    from service.instruments.loader import load_definitions

    engine = make_engine(url)
    try:
        with reading(engine) as connection, Session(bind=connection) as session:
            wave = session.get(Wave, wave_id)
            assert wave is not None
            instruments = load_definitions(REPO_ROOT / "survey_definitions")
            inputs = load_inputs(session, wave, instruments, purged=lambda _wave_id: False)
    finally:
        engine.dispose()
    built: dict[str, Any] = json.loads(json.dumps(scoring.build_table(inputs.data).to_dict()))
    return built


def test_a_close_killed_mid_build_resumes_into_one_table(
    fresh_url: str, fresh_engine: Engine, server: LiveServer
) -> None:
    server.stop()
    server.extra_env.update(FAST)
    server.start()
    wave_id, hr = _big_wave(server, fresh_engine)
    started = httpx.post(f"{server.base}/api/v1/waves/{wave_id}/close", headers=hr, timeout=30)
    assert started.status_code == 202 and started.json()["state"] == "closing"
    deadline = time.monotonic() + 60
    while _state(fresh_engine, wave_id)[1] is None:  # until a worker has taken the wave
        assert time.monotonic() < deadline, "no worker took the closing wave"
        time.sleep(0.005)
    server.kill()
    state, owner, attempts = _state(fresh_engine, wave_id)
    assert (state, attempts) == ("closing", 1) and owner is not None, "the kill came after the build had finished"
    assert _stored(fresh_engine, wave_id) == []  # nothing half-stored

    server.start()
    closed = wait_closed(server.base, hr, wave_id)
    assert closed["close_attempts"] == 2 and closed["close_error"] is None
    [table] = _stored(fresh_engine, wave_id)
    assert table == _uninterrupted(fresh_url, wave_id)
    with Session(fresh_engine) as session:
        built = select(func.count()).where(AuditEntry.wave_id == wave_id, AuditEntry.action == "results.built")
        assert session.scalar(built) == 1
        assert set(session.scalars(select(Response.answered_on).where(Response.wave_id == wave_id))) == {None}


def test_of_two_servers_on_one_database_one_worker_builds(
    fresh_url: str, fresh_engine: Engine, server: LiveServer, tmp_path
) -> None:
    """Two replicas of two workers each, all looking for closing waves every half second: one builds each."""
    server.stop()
    server.extra_env.update(FAST)
    server.start()
    other = LiveServer(fresh_url, tmp_path / "other", extra_env=dict(FAST), mail_folder=server.outbox)
    other.tmp.mkdir()
    other.start()
    try:
        setup = setup_wave(server, hr_key(fresh_engine), invitations=70)
        for n, token in enumerate(setup.tokens):
            answered = httpx.post(f"{other.base}/s/{token}", data=_form(n), timeout=30)
            assert answered.status_code == 200
        assert httpx.post(f"{other.base}/api/v1/waves/{setup.wave_id}/close", headers=setup.hr).status_code == 202
        closed = wait_closed(server.base, setup.hr, setup.wave_id)
        time.sleep(1.5)  # three more turns of every worker: none builds again
    finally:
        other.stop()
    assert closed["close_attempts"] == 1 and _state(fresh_engine, setup.wave_id) == ("closed", None, 1)
    assert len(_stored(fresh_engine, setup.wave_id)) == 1
    with Session(fresh_engine) as session:
        built = select(func.count()).where(AuditEntry.wave_id == setup.wave_id, AuditEntry.action == "results.built")
        assert session.scalar(built) == 1


def _form(n: int) -> dict[str, Any]:
    from tests.resilience.live import form

    return form(all_answers(_instrument(), variant=n))
