"""Continuous exit waves: participants join while the wave is open (each addition audited, mailed by the mail
job), and answers are published per period, once the quarter has ended and enough people answered, pooled over
the quarters of a year until they are; each period's table is built by the close job like any wave's."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select

from service.db import transaction
from service.forms import storage
from service.invitations.sender import FileSender
from service.models import AuditEntry
from service.waves import close, periods
from service.waves import service as waves
from tests.factories import create_wave, make_key, participants, put_tree
from tests.forms.answers import all_answers, as_fields
from tests.mail import mail_links, outbox, run_mail_job

K = 3


@pytest.fixture
def hr(client: TestClient, app: FastAPI) -> dict[str, str]:
    headers = make_key(app, "hr")
    put_tree(client, headers)
    return headers


def _exit_wave(client: TestClient, hr: dict[str, str], **overrides: Any) -> dict[str, Any]:
    """An exit wave running from now for two and a half years, opened by HR."""
    now = datetime.now(UTC)
    body = {
        "name": "Exit",
        "instrument": "exit",
        "kind": "continuous",
        "min_group_size": K,
        "opens_at": (now + timedelta(minutes=5)).isoformat(),
        "closes_at": (now + timedelta(days=900)).isoformat(),
        **overrides,
    }
    wave = create_wave(client, hr, **body)
    assert client.post(f"/api/v1/waves/{wave['id']}/open", headers=hr).status_code == 200
    return wave


def _leave(client: TestClient, hr: dict[str, str], wave_id: int, rows: list[dict[str, Any]]) -> None:
    added = client.post(f"/api/v1/waves/{wave_id}/participants", json={"participants": rows}, headers=hr)
    assert added.status_code == 201, added.text


def _clock(app: FastAPI, now: datetime) -> None:
    """The scheduler's tick at ``now``, then the close worker's turn."""
    with transaction(app.state.sessionmaker) as session:
        waves.advance_all(session, now=now)
    close.run_due(app.state.sessionmaker, app.state.instruments)


def test_a_continuous_wave_runs_the_exit_instrument_only(client: TestClient, hr: dict[str, str]) -> None:
    refused = client.post(
        "/api/v1/waves",
        json={
            "name": "Pulse",
            "instrument": "career-pulse",
            "version": 1,
            "kind": "continuous",
            "opens_at": datetime.now(UTC).isoformat(),
            "closes_at": (datetime.now(UTC) + timedelta(days=30)).isoformat(),
        },
        headers=hr,
    )
    assert refused.status_code == 422 and refused.json()["error"]["details"][0]["field"] == "kind"


def test_leavers_join_the_open_wave_and_a_quarter_is_published_once_ended(
    client: TestClient, app: FastAPI, hr: dict[str, str]
) -> None:
    wave = _exit_wave(client, hr, attributes=[])
    rows = [
        {"unit_key": team, "email": f"leaver-{team}-{i}@example.com"} for team in ("team1", "team5") for i in (1, 2)
    ]
    _leave(client, hr, wave["id"], rows[:2])  # people leave one by one, while the wave is open
    _leave(client, hr, wave["id"], rows[2:])
    assert client.get(f"/api/v1/waves/{wave['id']}", headers=hr).json()["invited"] == 4
    tokens = mail_links(app, [row["email"] for row in rows])  # mailed by the ordinary mail job
    instrument = app.state.instruments[("exit", 1)].instrument
    for n, token in enumerate(tokens):
        assert client.post(f"/s/{token}", data=as_fields(all_answers(instrument, n))).status_code == 200
    with app.state.sessionmaker() as session:
        actions = session.scalars(select(AuditEntry.action).where(AuditEntry.wave_id == wave["id"]))
        assert [a for a in actions if a.startswith("participants.")] == ["participants.added"] * 2

    shown = client.get(f"/api/v1/waves/{wave['id']}", headers=hr).json()
    assert shown["kind"] == "continuous" and shown["state"] == "open" and shown["periods"] == []
    quarter_end = periods.next_quarter(periods.quarter_start(datetime.now(UTC)))
    _clock(app, quarter_end - timedelta(minutes=1))  # the quarter has not ended: nothing is published
    assert client.get(f"/api/v1/waves/{wave['id']}", headers=hr).json()["periods"] == []

    _clock(app, quarter_end + timedelta(minutes=1))
    shown = client.get(f"/api/v1/waves/{wave['id']}", headers=hr).json()
    assert shown["state"] == "open"  # it runs on, and takes the next leavers
    [period] = shown["periods"]
    assert period["state"] == "closed" and period["ends_at"].startswith(quarter_end.date().isoformat())
    assert period["name"] == f"Exit, {periods.label(periods.quarter_start(datetime.now(UTC)), quarter_end)}"
    result = client.get(f"/api/v1/waves/{period['wave_id']}/results", headers=make_key(app, "dashboard"))
    assert result.status_code == 200, result.text
    total = result.json()["units"][0]["total"]
    assert result.json()["units"][0]["unit"] == "org" and total["n"] == 4 and not total["suppressed"]
    # A published answer is final: its link no longer changes it.
    again = client.post(f"/s/{tokens[0]}", data=as_fields(all_answers(instrument, 7)))
    assert again.status_code == 410 and "gesloten" in again.text  # the closed page, its answers kept
    assert client.get(f"/api/v1/waves/{wave['id']}/results", headers=hr).status_code == 409  # the wave runs on
    live = client.get(f"/api/v1/waves/{wave['id']}/participation", headers=hr).json()["units"][0]
    assert live["unit_key"] == "org" and live["invited"] == 4 and live["rate"] == 1.0  # the period's answers count
    _leave(client, hr, wave["id"], [{"unit_key": "team2", "email": "later@example.com"}])
    # Reminders pass over those whose answers a period took: they answered.
    assert client.post(f"/api/v1/waves/{wave['id']}/reminders", headers=hr).status_code == 202
    folder = app.state.settings.data_dir / f"outbox-exit-{wave['id']}-{uuid4().hex}"
    run_mail_job(app, FileSender(folder))
    assert {m.to for m in outbox(folder) if m.kind == "reminder"} <= {"later@example.com"}
    assert "later@example.com" in {m.to for m in outbox(folder) if m.kind == "invitation"}


def _answer_on(app: FastAPI, tokens: list[str], day: datetime) -> None:
    """The links' answers saved as if on ``day`` (the form saves today's date; the clock is the test's)."""
    instrument = app.state.instruments[("exit", 1)].instrument
    with transaction(app.state.sessionmaker) as session:
        for n, token in enumerate(tokens):
            link = storage.open_link(session.connection(), token, app.state.secret)
            assert link is not None
            answers = all_answers(instrument, n)
            storage.store(
                session.connection(),
                link,
                token=token,
                secret=app.state.secret,
                answers=answers,
                complete=True,
                now=day,
            )


def test_short_quarters_are_pooled_within_their_year(client: TestClient, app: FastAPI, hr: dict[str, str]) -> None:
    wave = _exit_wave(client, hr, attributes=[])
    year = datetime.now(UTC).year + 1
    emails = [f"pooled-{i}@example.com" for i in range(10)]
    _leave(client, hr, wave["id"], [{"unit_key": "team3", "email": e} for e in emails])
    tokens = mail_links(app, emails)
    _answer_on(app, tokens[0:2], datetime(year, 2, 10, 12, tzinfo=UTC))  # Q1: 2, fewer than K
    _answer_on(app, tokens[2:4], datetime(year, 5, 10, 12, tzinfo=UTC))  # Q2: 2 more
    _answer_on(app, tokens[4:5], datetime(year, 8, 10, 12, tzinfo=UTC))  # Q3: 1, never enough in its year
    _answer_on(app, tokens[5:8], datetime(year + 1, 1, 20, 12, tzinfo=UTC))  # next year's Q1: 3

    _clock(app, datetime(year, 4, 1, 1, tzinfo=UTC))
    assert client.get(f"/api/v1/waves/{wave['id']}", headers=hr).json()["periods"] == []
    _clock(app, datetime(year + 1, 4, 1, 1, tzinfo=UTC))
    shown = client.get(f"/api/v1/waves/{wave['id']}", headers=hr).json()["periods"]
    assert [p["name"] for p in shown] == [f"Exit, {year} Q1-Q2", f"Exit, {year + 1} Q1"]
    dashboard = make_key(app, "dashboard")
    sizes = [
        client.get(f"/api/v1/waves/{p['wave_id']}/results", headers=dashboard).json()["units"][0]["total"]["n"]
        for p in shown
    ]
    assert sizes == [4, 3]

    closed = client.post(f"/api/v1/waves/{wave['id']}/close", headers=hr)
    assert closed.status_code == 202
    close.run_due(app.state.sessionmaker, app.state.instruments)
    rest = client.get(f"/api/v1/waves/{wave['id']}/results", headers=dashboard).json()["units"][0]["total"]
    assert rest["suppressed"]  # the one answer no period took, in the wave's own table, hidden
    assert (
        client.post(f"/api/v1/waves/{wave['id']}/participants", json={"participants": []}, headers=hr).status_code
        == 409
    )


def test_a_single_wave_still_refuses_participants_once_open(client: TestClient, hr: dict[str, str]) -> None:
    wave = create_wave(client, hr)
    assert client.post(f"/api/v1/waves/{wave['id']}/open", headers=hr).status_code == 200
    rows = participants(wave["id"], per_team=1, teams=["team1"])
    late = client.post(f"/api/v1/waves/{wave['id']}/participants", json={"participants": rows}, headers=hr)
    assert late.status_code == 409
