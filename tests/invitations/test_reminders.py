"""Reminders: exactly the participants without a complete response get one, with their own link, at most once per
48 hours; the API says nothing of who or how many; a round cut short resumes; removal stops mail and the link."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text

from service.invitations.sender import SmtpSender
from service.models.base import utcnow
from service.waves import close
from tests.factories import make_key, open_wave
from tests.forms.answers import all_answers, answers_for, as_fields
from tests.invitations.conftest import Draft
from tests.mail import SmtpServer, run_mail_job, tokens_for


def _opened(app: FastAPI, client: TestClient, draft: Draft, smtp: SmtpServer) -> list[str]:
    open_wave(client, draft.hr, draft.wave_id)
    assert run_mail_job(app, SmtpSender(smtp.url)).sent == len(draft.emails)
    return tokens_for(smtp.mails(), draft.emails)


def _reminded(smtp: SmtpServer) -> dict[str, list[str]]:
    got: dict[str, list[str]] = {}
    for mail in smtp.mails():
        if mail.kind == "reminder":
            got.setdefault(mail.to, []).append(mail.token)
    return got


def _later(hours: float):
    return lambda: utcnow() + timedelta(hours=hours)


def test_reminders_reach_exactly_those_who_have_not_sent(
    app: FastAPI, client: TestClient, draft: Draft, smtp: SmtpServer
) -> None:
    tokens = _opened(app, client, draft, smtp)
    instrument = app.state.instruments[("career-safety", 1)].instrument
    for n in (0, 4, 7):  # three send the whole survey
        assert client.post(f"/s/{tokens[n]}", data=as_fields(all_answers(instrument, n))).status_code == 200
    first_page = answers_for(instrument.sections[0].items)
    partial = client.post(f"/s/{tokens[2]}", data=as_fields(first_page, page=1), follow_redirects=False)
    assert partial.status_code == 303  # one saved a page, and has not sent

    answer = client.post(f"/api/v1/waves/{draft.wave_id}/reminders", headers=draft.hr)
    assert answer.status_code == 202
    body = answer.json()
    assert set(body) == {"wave_id", "queued", "message"} and body["queued"] is True
    assert not re.search(r"\d", body["message"].replace("48 hours", ""))  # no count in the words either
    run_mail_job(app, SmtpSender(smtp.url))
    reminded = _reminded(smtp)
    expected = {email: [tokens[n]] for n, email in enumerate(draft.emails) if n not in (0, 4, 7)}
    assert reminded == expected  # each non-respondent once, with their own link; the partial one too

    # Asking again at once queues a round that waits until 48 hours after the last one finished.
    assert client.post(f"/api/v1/waves/{draft.wave_id}/reminders", headers=draft.hr).status_code == 202
    assert client.post(f"/api/v1/waves/{draft.wave_id}/reminders", headers=draft.hr).json() == body
    run_mail_job(app, SmtpSender(smtp.url), now=_later(47))
    assert _reminded(smtp) == expected
    assert client.post(f"/s/{tokens[2]}", data=as_fields(all_answers(instrument, 2))).status_code == 200  # sent now
    run_mail_job(app, SmtpSender(smtp.url), now=_later(49))
    second = {email: tokens[n] for n, email in enumerate(draft.emails) if n not in (0, 2, 4, 7)}
    assert _reminded(smtp) == {**expected, **{e: [t, t] for e, t in second.items()}}

    # Nothing in what HR or a dashboard reads tells who was reminded, or how many.
    dashboard = make_key(app, "dashboard")
    wave = client.get(f"/api/v1/waves/{draft.wave_id}", headers=dashboard).json()
    assert wave["mail"] == {"pending": 0, "sent": 12, "failed": 0, "removed": 0}
    admin = make_key(app, "admin")
    entries = client.get("/api/v1/audit", params={"wave_id": draft.wave_id}, headers=admin).json()["entries"]
    assert [e["detail"] for e in entries if e["action"] == "reminders.requested"] == [{}, {}, {}]


def test_a_round_cut_short_resumes_without_doubles(
    app: FastAPI, client: TestClient, draft: Draft, smtp: SmtpServer, engine: Engine
) -> None:
    """The job dies after the third reminder (as a killed process would, between two messages); the next run goes
    on from where the round's sealed position says, and nobody gets two."""
    tokens = _opened(app, client, draft, smtp)
    assert client.post(f"/api/v1/waves/{draft.wave_id}/reminders", headers=draft.hr).status_code == 202

    class Crash(BaseException):
        pass

    class DiesAfterThree(SmtpSender):
        def send(self, message, label):
            if label.endswith("reminder") and len(_reminded(smtp)) == 3:
                raise Crash
            super().send(message, label)

    with pytest.raises(Crash):
        run_mail_job(app, DiesAfterThree(smtp.url))
    assert len(_reminded(smtp)) == 3
    with engine.connect() as conn:  # how far the round got is sealed: no token hash of anyone in the clear
        [cursor] = conn.execute(text("SELECT sealed_cursor FROM reminder_rounds")).one()
        hashes = [row[0] for row in conn.execute(text("SELECT token_hash FROM invitations"))]
    assert cursor is not None and not any(h.encode() in bytes(cursor) for h in hashes)
    run_mail_job(app, SmtpSender(smtp.url))
    assert _reminded(smtp) == {email: [tokens[n]] for n, email in enumerate(draft.emails)}


def test_only_an_open_wave_is_reminded(app: FastAPI, client: TestClient, draft: Draft, smtp: SmtpServer) -> None:
    assert client.post(f"/api/v1/waves/{draft.wave_id}/reminders", headers=draft.hr).status_code == 409
    _opened(app, client, draft, smtp)
    assert client.post(f"/api/v1/waves/{draft.wave_id}/close", headers=draft.hr).status_code == 202
    assert client.post(f"/api/v1/waves/{draft.wave_id}/reminders", headers=draft.hr).status_code == 409  # closing
    close.run_due(app.state.sessionmaker, app.state.instruments)
    refused = client.post(f"/api/v1/waves/{draft.wave_id}/reminders", headers=draft.hr)
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "conflict"
    assert client.post("/api/v1/waves/999999/reminders", headers=draft.hr).status_code == 404


def test_a_removed_participant_gets_no_mail_and_their_link_stops(
    app: FastAPI, client: TestClient, draft: Draft, smtp: SmtpServer
) -> None:
    tokens = _opened(app, client, draft, smtp)
    instrument = app.state.instruments[("career-safety", 1)].instrument
    assert client.post(f"/s/{tokens[1]}", data=as_fields(all_answers(instrument, 1))).status_code == 200
    dashboard = make_key(app, "dashboard")
    before = client.get(f"/api/v1/waves/{draft.wave_id}/participation", headers=dashboard).json()

    gone = [draft.emails[0].upper(), draft.emails[1]]  # one had answered; addresses match whatever their case
    answer = client.post(
        f"/api/v1/waves/{draft.wave_id}/participants/removals", json={"emails": gone}, headers=draft.hr
    )
    assert answer.status_code == 200 and answer.json() == {"wave_id": draft.wave_id, "removed": 2}
    for token in tokens[:2]:
        assert client.get(f"/s/{token}").status_code == 404
    # Every figure stays as it was: none tells whether they had answered, and the answer given stays counted.
    assert client.get(f"/api/v1/waves/{draft.wave_id}/participation", headers=dashboard).json() == before
    wave = client.get(f"/api/v1/waves/{draft.wave_id}", headers=draft.hr).json()
    assert wave["invited"] == 12 and wave["mail"] == {"pending": 0, "sent": 10, "failed": 0, "removed": 2}
    client.post(f"/api/v1/waves/{draft.wave_id}/reminders", headers=draft.hr)
    run_mail_job(app, SmtpSender(smtp.url))
    assert not set(_reminded(smtp)) & set(draft.emails[:2])

    unknown = client.post(
        f"/api/v1/waves/{draft.wave_id}/participants/removals",
        json={"emails": [draft.emails[2], "nobody@example.com", "not an address"]},
        headers=draft.hr,
    )
    assert unknown.status_code == 422
    assert [d["row"] for d in unknown.json()["error"]["details"]] == [2, 3]
    assert client.get(f"/s/{tokens[2]}").status_code == 200  # all or nobody: row 1 was not removed
    admin = make_key(app, "admin")
    entries = client.get("/api/v1/audit", params={"wave_id": draft.wave_id}, headers=admin).json()["entries"]
    assert [e["detail"] for e in entries if e["action"] == "participants.removed"] == [{"count": 2}]


def test_removal_from_a_draft_takes_the_invitation_away(app: FastAPI, client: TestClient, draft: Draft) -> None:
    answer = client.post(
        f"/api/v1/waves/{draft.wave_id}/participants/removals", json={"emails": draft.emails[:3]}, headers=draft.hr
    )
    assert answer.status_code == 200 and answer.json()["removed"] == 3
    wave = client.get(f"/api/v1/waves/{draft.wave_id}", headers=draft.hr).json()
    assert wave["invited"] == 9 and wave["mail"]["removed"] == 0
