"""Storage behind the form: one response per link, under concurrency, and nothing that ties it to an invitation."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from concurrent.futures import ThreadPoolExecutor
from datetime import date

import pytest
from cryptography.exceptions import InvalidTag
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine, inspect, text

from service import links
from service.forms import storage
from tests.conftest import TEST_SECRET
from tests.forms.answers import all_answers, answers_for, as_fields
from tests.forms.conftest import Survey, responses


def _attributes(row: dict) -> dict[str, str]:
    value = row["attributes"]
    return json.loads(value) if isinstance(value, str) else value


def _dump(engine: Engine, table: str) -> list[dict]:
    with engine.connect() as conn:
        return [dict(row._mapping) for row in conn.execute(text(f"SELECT * FROM {table}"))]


def _store(app: FastAPI, token: str, answers: dict, *, complete: bool) -> None:
    """Save through the form's one storage function, in a transaction of its own."""
    secret = app.state.secret
    with app.state.engine.begin() as conn:
        link = storage.open_link(conn, token, secret)
        assert link is not None
        storage.store(conn, link, token=token, secret=secret, answers=answers, complete=complete)


def _stored(app: FastAPI, token: str) -> tuple[dict, bool]:
    with app.state.engine.connect() as conn:
        link = storage.open_link(conn, token, app.state.secret)
        assert link is not None
        return link.answers, link.complete


def test_save_and_load(app: FastAPI, survey: Survey, engine: Engine) -> None:
    token = survey.tokens[0]
    _store(app, token, {"a": 1, "b": "x"}, complete=True)
    [first] = responses(engine)
    assert isinstance(first.answered_on, date)
    _store(app, token, {"a": None, "c": [1]}, complete=False)
    assert _stored(app, token) == ({"b": "x", "c": [1]}, True)  # merged; complete stays complete
    assert _stored(app, survey.tokens[1]) == ({}, False)
    [stored] = responses(engine)
    assert stored.id == first.id
    assert stored.token_mac == links.token_mac(app.state.secret, token)


def test_save_refuses_a_closed_wave(app: FastAPI, form_client: TestClient, survey: Survey, engine: Engine) -> None:
    secret = app.state.secret
    with app.state.engine.connect() as conn:
        link = storage.open_link(conn, survey.tokens[0], secret)
    assert link is not None and link.state == "open"
    assert form_client.post(f"/api/v1/waves/{survey.wave_id}/close", headers=survey.hr).status_code == 202
    with pytest.raises(storage.WaveNotOpen), app.state.engine.begin() as conn:
        storage.store(conn, link, token=survey.tokens[0], secret=secret, answers={"a": 1}, complete=True)
    assert responses(engine) == []


def test_a_closed_link_reads_no_answers(app: FastAPI, form_client: TestClient, survey: Survey) -> None:
    """After the close the link finds its invitation (to say "closed"), never its answers."""
    _store(app, survey.tokens[0], {"a": 1}, complete=True)
    assert form_client.post(f"/api/v1/waves/{survey.wave_id}/close", headers=survey.hr).status_code == 202
    with app.state.engine.connect() as conn:
        link = storage.open_link(conn, survey.tokens[0], app.state.secret)
    assert link is not None and link.state in ("closing", "closed")
    assert link.answers == {} and link.complete is False


def test_submitting_never_touches_invitations(form_client: TestClient, survey: Survey, engine: Engine) -> None:
    before = _dump(engine, "invitations")
    form_client.post(survey.url(), data=as_fields(all_answers(survey.instrument)))
    form_client.post(survey.url(), data=as_fields(answers_for(survey.instrument.sections[0].items, 2), page=1))
    assert _dump(engine, "invitations") == before


@pytest.mark.parametrize("mode", ["whole", "pages"])
def test_concurrent_submissions_of_one_token_store_one_response(
    form_client: TestClient, survey: Survey, engine: Engine, mode: str
) -> None:
    instrument = survey.instrument

    def submit(n: int) -> int:
        if mode == "whole":
            data = as_fields(all_answers(instrument, variant=n))
        else:
            page = 1 + n % len(instrument.sections)
            data = as_fields(answers_for(instrument.sections[page - 1].items, n), page=page, action="back")
        return form_client.post(survey.url(), data=data, follow_redirects=False).status_code

    with ThreadPoolExecutor(max_workers=20) as pool:
        statuses = list(pool.map(submit, range(20)))
    assert set(statuses) <= {200, 303}, statuses
    stored = responses(engine)
    assert len(stored) == 1
    assert stored[0].complete is (mode == "whole")
    if mode == "whole":
        assert stored[0].answers in [all_answers(instrument, variant=n) for n in range(20)]


def test_a_database_dump_cannot_pair_responses_with_invitations(
    app: FastAPI, form_client: TestClient, survey: Survey, engine: Engine
) -> None:
    for n, token in enumerate(survey.tokens):
        response = form_client.post(f"/s/{token}", data=as_fields(all_answers(survey.instrument, variant=n)))
        assert response.status_code == 200
    invitations = _dump(engine, "invitations")
    rows = _dump(engine, "responses")
    assert len(rows) == len(invitations) == len(survey.tokens)

    # The columns: nothing naming an invitation, a participant, a token hash or a time.
    columns = {c["name"] for c in inspect(engine).get_columns("responses")}
    assert columns == {"id", "wave_id", "unit_id", "attributes", "token_mac", "answers", "complete", "answered_on"}
    foreign = {fk["referred_table"] for fk in inspect(engine).get_foreign_keys("responses")}
    assert foreign == {"waves", "units"}

    invitation_values = {str(v) for row in invitations for k, v in row.items() if k in ("id", "token_hash")}
    for row in rows:
        assert re.fullmatch(r"[0-9a-f]{32}", row["id"])  # random, not a sequence
        assert row["id"] not in invitation_values and row["token_mac"] not in invitation_values
        assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", str(row["answered_on"]))  # a date, no time
    assert len({row["id"] for row in rows}) == len(rows)

    # token_mac is a keyed function of the token: from the stored token hashes, with no secret or the wrong
    # one, nothing matches. Only the secret and the token itself (which nobody stores) give it.
    macs = {row["token_mac"] for row in rows}
    for inv in invitations:
        th = inv["token_hash"]
        for guess in (
            hashlib.sha256(th.encode()).hexdigest(),
            hmac.new(b"", th.encode(), hashlib.sha256).hexdigest(),
            hmac.new(b"", b"response:" + th.encode(), hashlib.sha256).hexdigest(),
            hmac.new(b"x" * 48, b"response:" + th.encode(), hashlib.sha256).hexdigest(),
        ):
            assert guess not in macs
    assert {links.token_mac(b"another secret" * 4, t) for t in survey.tokens}.isdisjoint(macs)
    assert {links.token_mac(TEST_SECRET.encode(), t) for t in survey.tokens} == macs  # what the secret adds

    # What responses share with invitations is only the wave and the unit: the invitation's attributes are sealed
    # under the token, all of one length, so a response can't be paired with the one invitation of its unit that
    # has the same attribute values.
    inv_columns = {c["name"] for c in inspect(engine).get_columns("invitations")}
    assert columns & inv_columns == {"id", "wave_id", "unit_id"}
    sealed = {inv["token_hash"]: bytes(inv["sealed_attributes"]) for inv in invitations}
    assert len({len(blob) for blob in sealed.values()}) == 1  # one length: the size says nothing either
    stored = {row["token_mac"]: _attributes(row) for row in rows}
    # (values of 3+ bytes: a 1-byte value turns up in random bytes by chance)
    values = {value for attributes in stored.values() for value in attributes.values() if len(value) >= 3}
    assert values and not any(value.encode() in blob for value in values for blob in sealed.values())
    first, second = survey.tokens[:2]
    opened = links.unseal(first, sealed[links.token_hash(first)])
    assert opened == stored[links.token_mac(TEST_SECRET.encode(), first)]
    with pytest.raises(InvalidTag):  # another token opens nothing
        links.unseal(second, sealed[links.token_hash(first)])

    # Until the wave closes, each invitation also holds its contact (email, language, token) for the mail job,
    # sealed under the service secret, all of one length: no token or address in the clear, nothing to pair by.
    boxes = [bytes(inv["sealed_contact"]) for inv in invitations]
    assert len({len(box) for box in boxes}) == 1
    assert not any(t.encode() in box for t in survey.tokens for box in boxes)
    assert not any(b"@example.com" in box for box in boxes)
    assert not any(inv["email_mac"] in macs for inv in invitations)


def test_a_request_holds_one_connection_at_a_time(
    app: FastAPI, form_client: TestClient, survey: Survey, engine: Engine
) -> None:
    """Reads and the write of one request share a connection: with more requests than pooled connections, a
    request that waited for a second connection while holding one could wait for ever."""
    from service.db import make_engine

    single = make_engine(engine.url.render_as_string(hide_password=False), pool_size=1, max_overflow=0, pool_timeout=3)
    app.state.engine = single
    try:
        instrument = survey.instrument
        first_page = answers_for(instrument.sections[0].items, variant=2)
        assert form_client.post(survey.url(), data=as_fields(all_answers(instrument))).status_code == 200
        page = form_client.post(survey.url(), data=as_fields(first_page, page=1), follow_redirects=False)
        assert page.status_code == 303  # a merge: a write transaction after the reads
        assert form_client.get(survey.url()).status_code == 200
        [stored] = responses(engine)
        assert stored.complete and stored.answers == {**all_answers(instrument), **first_page}
    finally:
        app.state.engine = engine
        single.dispose()
