"""Waves: validation, the state machine by API and by clock, participants (links go by mail), participation."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from uuid import uuid4

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from service import links
from service.db import transaction
from service.invitations.sender import FileSender
from service.models import AuditEntry, Invitation, Wave
from service.waves import close
from service.waves import service as waves
from service.waves.participants import add_participants
from tests.factories import create_wave, invite, make_key, open_wave, participants, put_tree, small_tree, wave_body
from tests.mail import outbox, run_mail_job, tokens_for


@pytest.fixture
def hr(client: TestClient, app) -> dict[str, str]:
    headers = make_key(app, "hr")
    put_tree(client, headers)
    return headers


def test_create_list_get(client: TestClient, hr) -> None:
    wave = create_wave(client, hr)
    assert wave["state"] == "draft" and wave["min_group_size"] == 5 and wave["invited"] == 0
    assert client.get("/api/v1/waves", headers=hr).json()["waves"][0]["id"] == wave["id"]
    assert client.get(f"/api/v1/waves/{wave['id']}", headers=hr).json()["name"] == "Autumn 2026"
    assert client.get("/api/v1/waves/424242", headers=hr).status_code == 404


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"instrument": "nope"}, "instrument"),
        ({"version": 99}, "instrument"),
        ({"min_group_size": 2}, "min_group_size"),
        ({"attributes": ["Bad Name"]}, "attributes"),
        ({"attributes": ["a", "a"]}, "attributes"),
        ({"opens_at": "2026-12-10T00:00:00Z", "closes_at": "2026-12-01T00:00:00Z"}, "closes_at"),
        ({"opens_at": "2020-01-01T00:00:00Z", "closes_at": "2020-02-01T00:00:00Z"}, "closes_at"),
        ({"opens_at": "2026-12-01T00:00:00"}, "opens_at"),  # no time zone
        ({"name": ""}, "name"),
    ],
)
def test_invalid_waves_are_refused(client: TestClient, hr, overrides, field) -> None:
    response = client.post("/api/v1/waves", json=wave_body(**overrides), headers=hr)
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert field in error["message"] or any(field in d.get("field", "") for d in error.get("details", []))
    assert client.get("/api/v1/waves", headers=hr).json()["waves"] == []


def test_state_machine_by_api(client: TestClient, hr, app) -> None:
    wave = create_wave(client, hr)
    wid = wave["id"]
    assert client.post(f"/api/v1/waves/{wid}/close", headers=hr).status_code == 409  # draft cannot close
    assert client.patch(f"/api/v1/waves/{wid}", json={"min_group_size": 7}, headers=hr).json()["min_group_size"] == 7
    opened = client.post(f"/api/v1/waves/{wid}/open", headers=hr)
    assert opened.status_code == 200 and opened.json()["state"] == "open"
    assert client.post(f"/api/v1/waves/{wid}/open", headers=hr).status_code == 409
    fixed = client.patch(f"/api/v1/waves/{wid}", json={"min_group_size": 3}, headers=hr)
    assert fixed.status_code == 409 and "min_group_size" in fixed.json()["error"]["message"]
    closing = client.post(f"/api/v1/waves/{wid}/close", headers=hr)
    assert closing.status_code == 202 and closing.json()["state"] == "closing"  # at once: the job builds later
    assert closing.json()["closed_at"] is not None and closing.json()["close_attempts"] == 0
    for state in ("closing", "closed"):
        assert client.post(f"/api/v1/waves/{wid}/close", headers=hr).status_code == 409
        assert client.patch(f"/api/v1/waves/{wid}", json={"name": "later"}, headers=hr).status_code == 409
        joining = {"participants": [{"unit_key": "team1", "email": "late@example.com", "attributes": {}}]}
        assert client.post(f"/api/v1/waves/{wid}/participants", json=joining, headers=hr).status_code == 409
        if state == "closing":
            assert [c.wave_id for c in close.run_due(app.state.sessionmaker, app.state.instruments)] == [wid]
    shown = client.get(f"/api/v1/waves/{wid}", headers=hr).json()
    assert shown["state"] == "closed" and shown["close_attempts"] == 1 and shown["close_error"] is None


def test_state_machine_by_clock(client: TestClient, hr, app) -> None:
    wave = create_wave(client, hr)
    with transaction(app.state.sessionmaker) as session:
        row = session.get(Wave, wave["id"])
        assert row is not None
        waves.advance(session, row, now=row.opens_at + timedelta(minutes=1))
        assert row.state == "open"
        assert waves.advance_all(session, now=row.closes_at + timedelta(seconds=1)) == 1
        assert row.state == "closing"  # the clock only freezes the wave: the close job builds
        assert waves.advance_all(session, now=row.closes_at + timedelta(seconds=2)) == 0
    assert client.get(f"/api/v1/waves/{wave['id']}", headers=hr).json()["state"] == "closing"
    assert [c.wave_id for c in close.run_due(app.state.sessionmaker, app.state.instruments)] == [wave["id"]]
    assert client.get(f"/api/v1/waves/{wave['id']}", headers=hr).json()["state"] == "closed"
    with app.state.sessionmaker() as session:  # the clock's changes are audited under its name
        clock = session.scalars(select(AuditEntry).where(AuditEntry.key_name == "clock").order_by(AuditEntry.id))
        assert [(e.action, e.wave_id) for e in clock] == [("wave.opened", wave["id"]), ("wave.closed", wave["id"])]


def test_participants_answer_counts_and_links_go_by_mail(client: TestClient, hr, app) -> None:
    wave = create_wave(client, hr)
    rows = participants(wave["id"], per_team=3, teams=["team1", "team2"])
    rows[0]["language"] = "en"
    response = client.post(f"/api/v1/waves/{wave['id']}/participants", json={"participants": rows}, headers=hr)
    assert response.status_code == 201, response.text
    assert response.json() == {
        "wave_id": wave["id"],
        "created": 6,
        "units": [{"unit_key": "team1", "created": 3}, {"unit_key": "team2", "created": 3}],
    }
    body = client.get(f"/api/v1/waves/{wave['id']}", headers=hr).json()
    assert body["invited"] == 6 and body["mail"] == {"pending": 6, "sent": 0, "failed": 0, "removed": 0}
    open_wave(client, hr, wave["id"])
    emails = [row["email"] for row in rows]
    folder = app.state.settings.data_dir / f"outbox-{wave['id']}-{uuid4().hex}"
    run_mail_job(app, FileSender(folder))
    mails = outbox(folder)
    tokens = tokens_for(mails, emails)
    assert len(set(tokens)) == 6 and all(links.plausible(t) for t in tokens)  # 43 url-safe characters: 256 bits
    assert {m.to: m.language for m in mails} == {e: "en" if e == emails[0] else "nl" for e in emails}
    with app.state.sessionmaker() as session:
        stored = set(session.scalars(select(Invitation.token_hash)))
    assert stored == {links.token_hash(t) for t in tokens}  # in the clear, only the hash is kept
    assert client.get(f"/api/v1/waves/{wave['id']}", headers=hr).json()["mail"]["sent"] == 6
    assert client.get(f"/s/{tokens[0]}").status_code == 200


def test_participants_csv_in_and_out(client: TestClient, hr) -> None:
    wave = create_wave(client, hr, language="en")
    body = "unit_key,email,language,tenure_band,location\nteam1,a@example.com,,<1,A\nteam2,b@example.com,nl,3+,B\n"
    response = client.post(
        f"/api/v1/waves/{wave['id']}/participants",
        content=body.encode(),
        headers={**hr, "content-type": "text/csv", "accept": "text/csv"},
    )
    assert response.status_code == 201, response.text
    assert response.headers["content-type"].startswith("text/csv")
    assert list(csv.reader(io.StringIO(response.text))) == [["unit_key", "created"], ["team1", "1"], ["team2", "1"]]
    assert client.get(f"/api/v1/waves/{wave['id']}", headers=hr).json()["language"] == "en"


def test_a_bad_row_refuses_the_whole_upload(client: TestClient, hr, app) -> None:
    wave = create_wave(client, hr)
    good = {"unit_key": "team1", "email": "ok@example.com", "attributes": {"tenure_band": "<1", "location": "A"}}
    rows = [
        good,
        {**good, "unit_key": "nowhere", "email": "p2@example.com"},
        {**good, "email": "p3@example.com", "attributes": {"tenure_band": "<1"}},
        {**good, "email": "p4@example.com", "attributes": {"tenure_band": "<1", "location": "A", "salary": "high"}},
        {**good, "email": "p5@example.com", "attributes": {"tenure_band": "", "location": "A"}},
        "not an object",
        {"unit_key": "team1", "attributes": {"tenure_band": "<1", "location": "A"}},  # no email
        {**good, "email": "not an address"},
        {**good, "email": "OK@example.com"},  # row 1's address again
        {**good, "email": "p10@example.com", "language": "fr"},
    ]
    response = client.post(f"/api/v1/waves/{wave['id']}/participants", json={"participants": rows}, headers=hr)
    assert response.status_code == 422
    details = response.json()["error"]["details"]
    assert {d["row"] for d in details} == set(range(2, 11))
    reasons = {d["row"]: d["reason"] for d in details}
    assert "nowhere" in reasons[2] and "salary" in reasons[4]
    assert "email" in reasons[7] and "required" in reasons[7].lower()
    assert reasons[8].startswith("email:") and "row 1" in reasons[9] and "language" in reasons[10]
    with app.state.sessionmaker() as session:
        assert session.scalar(select(func.count()).select_from(Invitation)) == 0
    # A second upload may not invite an address the wave already has (in any case).
    assert (
        client.post(f"/api/v1/waves/{wave['id']}/participants", json={"participants": [good]}, headers=hr).status_code
        == 201
    )
    again = client.post(
        f"/api/v1/waves/{wave['id']}/participants",
        json={"participants": [{**good, "email": "new@example.com"}, {**good, "email": "Ok@Example.com"}]},
        headers=hr,
    )
    assert again.status_code == 422, again.text
    [problem] = again.json()["error"]["details"]
    assert problem == {"row": 2, "field": "email", "reason": "already a participant of this wave"}
    assert client.get(f"/api/v1/waves/{wave['id']}", headers=hr).json()["invited"] == 1


def test_participants_csv_needs_an_email_column(client: TestClient, hr) -> None:
    wave = create_wave(client, hr)
    response = client.post(
        f"/api/v1/waves/{wave['id']}/participants",
        content=b"unit_key,tenure_band,location\nteam1,<1,A\n",
        headers={**hr, "content-type": "text/csv"},
    )
    assert response.status_code == 422 and "email" in response.json()["error"]["message"]


def test_an_open_wave_takes_no_new_participants(client: TestClient, hr, app) -> None:
    wave = create_wave(client, hr)
    invite(client, hr, wave["id"], per_team=5, teams=["team1"])
    open_wave(client, hr, wave["id"])
    late = {"unit_key": "team1", "email": "new.hire@example.com", "attributes": {"tenure_band": "<1", "location": "A"}}
    response = client.post(f"/api/v1/waves/{wave['id']}/participants", json={"participants": [late]}, headers=hr)
    assert response.status_code == 409
    assert "next wave" in response.json()["error"]["message"]
    assert client.get(f"/api/v1/waves/{wave['id']}", headers=hr).json()["invited"] == 5


def test_upload_limits(client: TestClient, hr, app) -> None:
    wave = create_wave(client, hr)
    app.state.settings.max_participants, old = 3, app.state.settings.max_participants
    try:
        rows = participants(wave["id"], per_team=4, teams=["team1"])
        response = client.post(f"/api/v1/waves/{wave['id']}/participants", json={"participants": rows}, headers=hr)
        assert response.status_code == 422 and "at most 3" in response.json()["error"]["message"]
    finally:
        app.state.settings.max_participants = old
    huge = b'{"participants": [' + b'{"unit_key": "team1"},' * 1_000_000 + b"{}]}"
    response = client.post(
        f"/api/v1/waves/{wave['id']}/participants", content=huge, headers={**hr, "content-type": "application/json"}
    )
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"


def test_participation_rolls_up_and_hides_small_units(client: TestClient, hr) -> None:
    wave = create_wave(client, hr)
    invite(client, hr, wave["id"], per_team=6, teams=["team1", "team2", "team3"])
    invite(client, hr, wave["id"], per_team=2, teams=["team4"])
    open_wave(client, hr, wave["id"])
    body = client.get(f"/api/v1/waves/{wave['id']}/participation", headers=make_key(client.app, "dashboard")).json()
    rows = {r["unit_key"]: r for r in body["units"]}
    assert set(rows) == {u["key"] for u in small_tree()}  # every unit has a row: hidden ones say so
    invited = {"team1": 6, "team2": 6, "team3": 6, "team4": 2, "dep1": 12, "dep2": 8, "div1": 20, "org": 20}
    for key, row in rows.items():  # the guard decides what is shown (results' rules); what is shown is right
        if row["suppressed"]:
            assert row["invited"] is None and row["responded"] is None and row["reason"]
        else:
            assert (row["invited"], row["responded"], row["rate"]) == (invited[key], None, 0)  # open: no count
    assert any(not row["suppressed"] for row in rows.values())
    assert rows["team4"]["suppressed"] is True and rows["team4"]["reason"] == "primary"


def test_window_end_in_the_past_cannot_open(client: TestClient, hr, app) -> None:
    wave = create_wave(client, hr)
    with transaction(app.state.sessionmaker) as session:
        row = session.get(Wave, wave["id"])
        assert row is not None
        with pytest.raises(Exception, match="already ended"):
            waves.open_wave(session, row, now=datetime.now(UTC) + timedelta(days=30))


def test_closing_keeps_changes_made_in_the_same_transaction(client: TestClient, hr, app) -> None:
    """Participants uploaded, the wave opened and closed in one transaction: the attribute values recorded survive."""
    wave = create_wave(client, hr)
    with transaction(app.state.sessionmaker) as session:
        row = waves.get(session, wave["id"])
        add_participants(
            session,
            row,
            [{"unit_key": "team1", "email": "x@example.com", "attributes": {name: "x" for name in row.attributes}}],
            secret=app.state.secret,
            max_rows=10,
        )
        waves.open_wave(session, row)
        waves.close_wave(session, row)
    with app.state.sessionmaker() as session:
        stored = waves.get(session, wave["id"])
        assert stored.state == "closing"
        assert stored.attribute_values == {name: ["x"] for name in stored.attributes}
