"""The mail job against a real SMTP server: each participant gets exactly one invitation with a working link,
also when the sender is SIGKILLed halfway; an unreachable server delays mail and loses none; refusals are
retried or counted, without addresses; STARTTLS, implicit TLS and login; the throttle."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from datetime import timedelta

from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select

from service import links
from service.invitations.delivery import Throttle
from service.invitations.sender import SmtpSender
from service.models import Invitation, Response
from service.models.base import utcnow
from tests.conftest import TEST_SECRET
from tests.factories import open_wave
from tests.forms.answers import all_answers, as_fields
from tests.invitations.conftest import Draft
from tests.mail import SmtpServer, free_port, run_mail_job, tokens_for


def _later(seconds: float):
    return lambda: utcnow() + timedelta(seconds=seconds)


def test_each_participant_gets_one_invitation_with_a_working_link(
    app: FastAPI, client: TestClient, draft: Draft, smtp: SmtpServer, engine: Engine
) -> None:
    open_wave(client, draft.hr, draft.wave_id)  # opening sends nothing itself: the job does
    assert smtp.received == []
    done = run_mail_job(app, SmtpSender(smtp.url))
    assert done.sent == 12 and done.failed == 0
    assert run_mail_job(app, SmtpSender(smtp.url)).sent == 0  # nothing is sent twice
    tokens = tokens_for(smtp.mails(), draft.emails)
    assert [r.recipients for r in smtp.received] == [[m.to] for m in smtp.mails()]
    assert {r.sender for r in smtp.received} == {"noreply@testserver"}

    # Each link works: it opens the form, and an answer sent through it is stored under that link.
    instrument = app.state.instruments[("career-safety", 1)].instrument
    for n, token in enumerate(tokens):
        assert client.get(f"/s/{token}?lang=en").status_code == 200
    assert client.post(f"/s/{tokens[3]}", data=as_fields(all_answers(instrument, 3))).status_code == 200
    with app.state.sessionmaker() as session:
        [stored] = session.scalars(select(Response)).all()
        assert stored.token_mac == links.token_mac(app.state.secret, tokens[3]) and stored.complete
    wave = client.get(f"/api/v1/waves/{draft.wave_id}", headers=draft.hr).json()
    assert wave["mail"] == {"pending": 0, "sent": 12, "failed": 0, "removed": 0}


KILLED_SENDER = """
import sys
from datetime import timedelta
from service.config import Settings
from service.db import make_engine, make_sessionmaker
from service.instruments.loader import load_definitions
from service.invitations.delivery import deliver
settings = Settings(env="test", database_url=sys.argv[1], secret_key=sys.argv[2], mail_url=sys.argv[3],
                    base_url="http://testserver", mail_rate=50)
factory = make_sessionmaker(make_engine(settings.database_url))
print(deliver(factory, settings, settings.secret(), load_definitions(settings.definitions_dir),
              lease=timedelta(seconds=1)), flush=True)
"""


def test_a_sender_killed_halfway_resumes_without_doubles_or_gaps(
    app: FastAPI, client: TestClient, draft: Draft, settings, tmp_path
) -> None:
    """A real process sends; SIGKILL reaches it while the server holds the 5th message (which it then refuses,
    as a server does when its client is gone). A new run sends the rest: every participant exactly once."""
    open_wave(client, draft.hr, draft.wave_id)
    process: dict[str, subprocess.Popen[bytes]] = {}

    def kill_at_fifth(n: int) -> str | None:
        if n == 5 and process["sender"].poll() is None:
            os.kill(process["sender"].pid, signal.SIGKILL)
            process["sender"].wait(timeout=10)
            return "451 4.3.0 connection lost"
        return None

    with SmtpServer(on_data=kill_at_fifth) as smtp:
        log = (tmp_path / "sender.log").open("wb")
        process["sender"] = subprocess.Popen(
            [sys.executable, "-c", KILLED_SENDER, settings.database_url, TEST_SECRET, smtp.url],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={k: v for k, v in os.environ.items() if not k.startswith("PEIL_")},
        )
        assert process["sender"].wait(timeout=60) == -signal.SIGKILL, (tmp_path / "sender.log").read_text()
        assert len(smtp.received) == 4
        with app.state.sessionmaker() as session:  # what the killed sender had recorded: the four accepted
            states = sorted(session.scalars(select(Invitation.state).where(Invitation.wave_id == draft.wave_id)))
        assert states == ["pending"] * 8 + ["sent"] * 4
        # Its lease (1 s) lapses; the next run takes over and sends the other eight.
        done = run_mail_job(app, SmtpSender(smtp.url), now=_later(2))
        assert done.sent == 8
        tokens_for(smtp.mails(), draft.emails)  # exactly one invitation each


def test_an_unreachable_server_delays_mail_and_loses_none(
    app: FastAPI, client: TestClient, draft: Draft, caplog
) -> None:
    open_wave(client, draft.hr, draft.wave_id)
    port = free_port()  # nothing listens here yet: connection refused
    url = f"smtp://127.0.0.1:{port}"
    with caplog.at_level(logging.WARNING, logger="peil"):
        down = run_mail_job(app, SmtpSender(url))
    assert down.sent == 0 and down.paused is not None
    assert "ConnectionRefusedError" in caplog.text
    wave = client.get(f"/api/v1/waves/{draft.wave_id}", headers=draft.hr).json()
    assert wave["mail"] == {"pending": 12, "sent": 0, "failed": 0, "removed": 0}  # waiting, none given up
    # A second outage in a row waits twice as long.
    again = run_mail_job(app, SmtpSender(url), now=_later(down.paused.total_seconds() + 1))
    assert again.paused == 2 * down.paused

    with SmtpServer(port=port) as smtp:
        assert run_mail_job(app, SmtpSender(url)).sent == 0  # still within the back-off: nobody tries
        done = run_mail_job(app, SmtpSender(url), now=_later(down.paused.total_seconds() * 3 + 1))
        assert done.sent == 12
        tokens_for(smtp.mails(), draft.emails)
    assert client.get(f"/api/v1/waves/{draft.wave_id}", headers=draft.hr).json()["mail"]["sent"] == 12


def test_refusals_are_retried_or_counted_without_addresses(
    app: FastAPI, client: TestClient, draft: Draft, caplog
) -> None:
    bounced, greylisted = draft.emails[0], draft.emails[1]
    seen: dict[str, int] = {}

    def refuse(address: str) -> str | None:
        seen[address] = seen.get(address, 0) + 1
        if address == bounced:
            return f"550 5.1.1 <{address}>: no such user"
        if address == greylisted and seen[address] == 1:
            return f"451 4.7.1 <{address}>: greylisted, try again later"
        return None

    open_wave(client, draft.hr, draft.wave_id)
    with SmtpServer(refuse=refuse) as smtp, caplog.at_level(logging.DEBUG):
        first = run_mail_job(app, SmtpSender(smtp.url))
        assert (first.sent, first.failed) == (10, 1)
        answer = client.get(f"/api/v1/waves/{draft.wave_id}", headers=draft.hr)
        assert answer.json()["mail"] == {"pending": 1, "sent": 10, "failed": 1, "removed": 0}
        second = run_mail_job(app, SmtpSender(smtp.url), now=_later(120))  # the greylisting's retry is due
        assert (second.sent, second.failed) == (1, 0)
        assert {m.to for m in smtp.mails()} == set(draft.emails) - {bounced}
        assert seen[bounced] == 1  # a 5xx is final
    answer = client.get(f"/api/v1/waves/{draft.wave_id}", headers=draft.hr)
    assert answer.json()["mail"] == {"pending": 0, "sent": 11, "failed": 1, "removed": 0}
    ours = "\n".join(r.getMessage() for r in caplog.records if r.name != "mail.log")  # not the test's SMTP server
    everything = answer.text + json.dumps(client.get("/api/v1/waves", headers=draft.hr).json()) + ours
    assert not any(email in everything for email in draft.emails)
    assert "refused for good (SMTP 550)" in ours


def test_temporary_refusals_end_in_failure_after_a_while(app: FastAPI, client: TestClient, draft: Draft) -> None:
    from service.invitations.delivery import MAX_RETRIES

    always = draft.emails[0]
    open_wave(client, draft.hr, draft.wave_id)
    with SmtpServer(refuse=lambda a: "452 4.2.2 mailbox full" if a == always else None) as smtp:
        for attempt in range(MAX_RETRIES):
            run_mail_job(app, SmtpSender(smtp.url), now=_later(attempt * 3600))
        assert always not in {m.to for m in smtp.mails()}
    assert client.get(f"/api/v1/waves/{draft.wave_id}", headers=draft.hr).json()["mail"]["failed"] == 1


def test_two_workers_never_send_the_same_message(app: FastAPI, client: TestClient, draft: Draft) -> None:
    from concurrent.futures import ThreadPoolExecutor

    open_wave(client, draft.hr, draft.wave_id)
    with SmtpServer() as smtp, ThreadPoolExecutor(max_workers=4) as pool:
        passes = list(pool.map(lambda _n: run_mail_job(app, SmtpSender(smtp.url)), range(4)))
        for _ in range(20):  # the busy ones found the lock held; whoever runs later finds nothing left
            if sum(p.sent for p in passes) == 12:
                break
            passes.append(run_mail_job(app, SmtpSender(smtp.url)))
        tokens_for(smtp.mails(), draft.emails)
    assert sum(p.sent for p in passes) == 12


def test_the_throttle_spaces_messages() -> None:
    clock = [0.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        clock[0] += seconds

    throttle = Throttle(5.0, clock=lambda: clock[0], sleep=sleep)
    for _ in range(11):
        throttle.wait()
        clock[0] += 0.05  # the message itself
    assert abs(sum(slept) + 11 * 0.05 - 10 / 5.0 - 0.05) < 1e-9  # 11 messages at 5 a second: 2 s from first to last
    assert all(abs(s - 0.15) < 1e-9 for s in slept)


def test_the_job_waits_between_messages(app: FastAPI, client: TestClient, draft: Draft, smtp: SmtpServer) -> None:
    open_wave(client, draft.hr, draft.wave_id)
    app.state.settings.mail_rate, old = 4.0, app.state.settings.mail_rate
    slept: list[float] = []
    try:
        started = time.monotonic()
        done = run_mail_job(app, SmtpSender(smtp.url), sleep=slept.append)
        elapsed = time.monotonic() - started
    finally:
        app.state.settings.mail_rate = old
    assert done.sent == 12
    # Each message waited for what remained of its quarter second: asked-for sleep and time spent add up to it.
    assert sum(slept) + elapsed >= 11 / 4.0 - 1e-6
