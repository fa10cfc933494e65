"""SIGKILL mid-load: every post that got its thank-you page is stored exactly once, and every post that got no
answer is stored exactly once when the person tries again after the restart. On SQLite and PostgreSQL."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import Engine

from tests.forms.answers import all_answers
from tests.resilience.live import LiveServer, form, hr_key, mac, setup_wave, stored
from tests.resilience.load import NO_ANSWER, Load, Outcome
from tests.resilience.test_exactly_once import _instrument

pytestmark = pytest.mark.live

LINKS = 400
KILL_AFTER = 120  # thank-you pages before the kill


def test_sigkill_mid_load_loses_and_doubles_nothing(server: LiveServer, fresh_engine: Engine) -> None:
    setup = setup_wave(server, hr_key(fresh_engine), invitations=LINKS)
    instrument = _instrument()
    answers = {n: all_answers(instrument, variant=n) for n in range(LINKS)}
    load = Load(server.base, setup.tokens, lambda n: form(answers[n]), threads=8, timeout=10)

    killed = threading.Event()
    thanked = 0
    lock = threading.Lock()

    def kill_midway(outcome: Outcome) -> None:
        nonlocal thanked
        with lock:
            thanked += outcome.status == 200
            due = thanked >= KILL_AFTER and not killed.is_set()
            if due:
                killed.set()
        if due:
            server.kill()

    load.run(range(LINKS), on_each=kill_midway)
    assert killed.is_set()
    statuses = {o.status for o in load.history}
    assert statuses <= {200, NO_ANSWER}, statuses  # a dying server gives no answer, never a 500
    succeeded = load.numbers_with(lambda o: o.status == 200)
    unanswered = load.numbers_with(lambda o: o.status != 200)
    assert len(succeeded) >= KILL_AFTER and unanswered, "the kill must fall in the middle of the load"

    # Everything confirmed before the kill is there, whole, once.
    rows = stored(fresh_engine, setup.wave_id)
    for n in succeeded:
        row = rows[mac(setup.tokens[n])]
        assert row.complete and row.answers == answers[n]

    server.start()  # same database, same port
    load.run(unanswered)  # the people who saw no thank-you page press the button again
    assert load.numbers_with(lambda o: o.status != 200) == []

    rows = stored(fresh_engine, setup.wave_id)
    assert len(rows) == LINKS
    assert set(rows) == {mac(t) for t in setup.tokens}
    for n, token in enumerate(setup.tokens):
        row = rows[mac(token)]
        assert row.complete and row.answers == answers[n]
