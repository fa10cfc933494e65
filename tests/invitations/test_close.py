"""Closing a wave erases its participants' sealed emails and tokens; after it no mail goes out, and a link shows
the closed page with none of the answers it had given."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text

from service.invitations.sender import SmtpSender
from service.waves import close
from tests.factories import close_wave, open_wave
from tests.forms.answers import all_answers, as_fields
from tests.forms.conftest import checked
from tests.invitations.conftest import Draft
from tests.mail import SmtpServer, run_mail_job, tokens_for


def _contacts(engine: Engine, wave_id: int) -> list[tuple[object, object]]:
    with engine.connect() as conn:
        query = text("SELECT sealed_contact, email_mac FROM invitations WHERE wave_id = :w")
        return [tuple(row) for row in conn.execute(query, {"w": wave_id})]


def test_closing_erases_emails_and_tokens_and_the_link_shows_no_answers(
    app: FastAPI, client: TestClient, draft: Draft, smtp: SmtpServer, engine: Engine
) -> None:
    open_wave(client, draft.hr, draft.wave_id)
    run_mail_job(app, SmtpSender(smtp.url))
    tokens = tokens_for(smtp.mails(), draft.emails)
    instrument = app.state.instruments[("career-safety", 1)].instrument
    answers = all_answers(instrument, 5)
    assert client.post(f"/s/{tokens[0]}", data=as_fields(answers)).status_code == 200
    # While the wave is open, the link shows its owner's own answers.
    page = client.get(f"/s/{tokens[0]}?page=1").text
    first = instrument.sections[0].items[0]
    assert checked(page, first.id, answers[first.id])
    assert all(box is not None and mac is not None for box, mac in _contacts(engine, draft.wave_id))
    client.post(f"/api/v1/waves/{draft.wave_id}/reminders", headers=draft.hr)

    closing = client.post(f"/api/v1/waves/{draft.wave_id}/close", headers=draft.hr)
    assert closing.status_code == 202 and closing.json()["state"] == "closing"
    assert run_mail_job(app, SmtpSender(smtp.url)).sent == 0  # a closing wave gets no mail, its round neither
    assert client.get(f"/s/{tokens[0]}").status_code == 410
    assert [c.wave_id for c in close.run_due(app.state.sessionmaker, app.state.instruments)] == [draft.wave_id]
    assert _contacts(engine, draft.wave_id) == [(None, None)] * 12
    with engine.connect() as conn:  # the reminder round that had not run yet is over, its position gone
        assert conn.execute(text("SELECT count(*) FROM reminder_rounds WHERE finished_at IS NULL")).scalar() == 0
    sent = len(smtp.received)
    assert run_mail_job(app, SmtpSender(smtp.url)).sent == 0 and len(smtp.received) == sent

    for path in (f"/s/{tokens[0]}", f"/s/{tokens[0]}?page=1", f"/s/{tokens[0]}?page=done&lang=en"):
        closed = client.get(path)
        assert closed.status_code == 410 and "<form" not in closed.text and " checked" not in closed.text
        texts = [value for value in answers.values() if isinstance(value, str) and len(value) > 8]
        assert texts and not any(value in closed.text for value in texts)


def test_invitations_not_yet_sent_at_close_are_never_sent(
    app: FastAPI, client: TestClient, draft: Draft, smtp: SmtpServer, engine: Engine
) -> None:
    open_wave(client, draft.hr, draft.wave_id)
    close_wave(client, app, draft.hr, draft.wave_id)
    assert run_mail_job(app, SmtpSender(smtp.url)).sent == 0 and smtp.received == []
    assert _contacts(engine, draft.wave_id) == [(None, None)] * 12
