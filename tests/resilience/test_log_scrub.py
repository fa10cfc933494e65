"""No log line holds an answer, a comment, a token or a key, even when the database fails in the middle of a
save: a live `peil serve` whose database refuses the answers, on SQLite and PostgreSQL, and its whole log read."""

from __future__ import annotations

import secrets

import httpx
import pytest
from sqlalchemy import Engine, text

from tests.forms.answers import all_answers
from tests.resilience.live import LiveServer, form, hr_key, setup_wave
from tests.resilience.test_exactly_once import _instrument

pytestmark = pytest.mark.live


def _refuse_answers(engine: Engine) -> None:
    """Make every insert of a response fail inside the database; on PostgreSQL the error's own text repeats
    the row's answers, as a constraint's "Failing row contains (...)" would."""
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(
                text(
                    "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                    "RAISE EXCEPTION 'refused: %', NEW.answers USING DETAIL = NEW.answers::text; END $$"
                )
            )
            conn.execute(
                text("CREATE TRIGGER refuse BEFORE INSERT ON responses FOR EACH ROW EXECUTE FUNCTION refuse()")
            )
        else:
            conn.execute(
                text("CREATE TRIGGER refuse BEFORE INSERT ON responses BEGIN SELECT RAISE(ABORT, 'refused'); END")
            )


def test_database_error_mid_save_logs_no_answer(server: LiveServer, fresh_engine: Engine) -> None:
    hr = hr_key(fresh_engine)
    setup = setup_wave(server.base, hr, invitations=3)
    key = hr["Authorization"].removeprefix("Bearer ")
    instrument = _instrument()
    comment = f"Mijn manager luistert nooit {secrets.token_hex(8)}"
    answers = {
        item.id: (comment if item.type == "text" else value)
        for item, value in zip(instrument.items, all_answers(instrument, 3).values(), strict=True)
    }
    assert comment in answers.values()
    _refuse_answers(fresh_engine)

    for token in setup.tokens:
        saved = httpx.post(f"{server.base}/s/{token}", data=form(answers), timeout=10)
        assert saved.status_code == 500, saved.text
        assert saved.json() == {"error": {"code": "internal", "message": "internal error"}}
    server.stop()

    log = server.logs()
    assert "database error" in log  # the failure is logged: its kind and where, not what was saved
    secrets_seen = [comment, key, *setup.tokens]
    secrets_seen += [str(v) for v in answers.values() if isinstance(v, str) and len(v) > 3]
    leaked = [s for s in secrets_seen if s in log]
    assert not leaked, f"the log holds {leaked[:3]}:\n{log[-3000:]}"
    assert "[parameters:" not in log and "refused: {" not in log
