"""Limits hold whether or not a body announces its length, and a refused request stores nothing."""

from __future__ import annotations

from collections.abc import Iterator

from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from service.forms.endpoints import FORM_MAX_BYTES
from service.models import Invitation, Response, Unit
from tests.factories import create_wave, invite, make_key, open_wave, put_tree
from tests.forms.answers import all_answers, as_fields
from tests.mail import mail_links


def _count(engine: Engine, model: type) -> int:
    with Session(engine) as session:
        return session.scalar(select(func.count()).select_from(model)) or 0


def _chunks(prefix: bytes, filler: bytes, total: int) -> Iterator[bytes]:
    """A body sent in chunks without Content-Length, as a client streaming an endless upload would."""
    yield prefix
    sent = len(prefix)
    while sent < total:
        yield filler
        sent += len(filler)


def test_api_bodies_over_the_limit_get_413_without_content_length(
    client: TestClient, app: FastAPI, engine: Engine
) -> None:
    hr = make_key(app, "hr")
    limit = app.state.settings.max_body_bytes
    unit = b'{"key": "u", "name": "n", "parent_key": null},'
    response = client.put(
        "/api/v1/units",
        content=_chunks(b'{"units": [', unit * 1000, limit + 100_000),
        headers={**hr, "content-type": "application/json"},
    )
    assert response.status_code == 413 and response.json()["error"]["code"] == "payload_too_large"
    assert _count(engine, Unit) == 0


def test_participant_limits_store_nothing(client: TestClient, app: FastAPI, engine: Engine) -> None:
    hr = make_key(app, "hr")
    put_tree(client, hr)
    wave = create_wave(client, hr)
    settings = app.state.settings
    settings.max_participants, old = 10, settings.max_participants
    try:
        rows = [
            {"unit_key": "team1", "email": f"p{n}@example.com", "attributes": {"tenure_band": "<1", "location": "A"}}
            for n in range(11)
        ]
        response = client.post(f"/api/v1/waves/{wave['id']}/participants", json={"participants": rows}, headers=hr)
        assert response.status_code == 422
        csv = "unit_key,email,tenure_band,location\n" + "".join(f"team1,p{n}@example.com,<1,A\n" for n in range(11))
        response = client.post(
            f"/api/v1/waves/{wave['id']}/participants",
            content=csv.encode(),
            headers={**hr, "content-type": "text/csv"},
        )
        assert response.status_code == 422
        assert _count(engine, Invitation) == 0
        # At the limit, all are taken.
        response = client.post(f"/api/v1/waves/{wave['id']}/participants", json={"participants": rows[:10]}, headers=hr)
        assert response.status_code == 201 and _count(engine, Invitation) == 10
    finally:
        settings.max_participants = old
    row = b'{"unit_key": "team1", "attributes": {"tenure_band": "<1", "location": "A"}},'
    response = client.post(
        f"/api/v1/waves/{wave['id']}/participants",
        content=_chunks(b'{"participants": [', row * 2000, settings.max_body_bytes + 100_000),
        headers={**hr, "content-type": "application/json"},
    )
    assert response.status_code == 413
    assert _count(engine, Invitation) == 10


def test_form_limits_store_nothing(client: TestClient, app: FastAPI, engine: Engine) -> None:
    hr = make_key(app, "hr")
    put_tree(client, hr)
    wave = create_wave(client, hr)
    emails = invite(client, hr, wave["id"], per_team=1, teams=["team1"])
    open_wave(client, hr, wave["id"])
    [token] = mail_links(app, emails)
    instrument = app.state.instruments[("career-safety", 1)].instrument
    fields = as_fields(all_answers(instrument))
    url = f"/s/{token}"

    streamed = client.post(
        url,
        content=_chunks(b"_lang=en&", b"x=" + b"y" * 8190 + b"&", FORM_MAX_BYTES + 10_000),
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert streamed.status_code == 413

    multi = next(item for item in instrument.items if item.type == "multi")
    single = next(item for item in instrument.items if item.type == "single")
    scaled = next(item for item in instrument.items if item.type in ("likert5", "likert7"))
    text = next(item for item in instrument.items if item.type == "text")
    options = [o.id for o in multi.options]
    for name, value in (
        (multi.id, options + options[:1]),  # more answers than the item has options
        (single.id, [single.options[0].id, single.options[1].id]),  # two answers to a one-answer item
        (scaled.id, ["1", "2"]),
        (text.id, "x" * (text.max_length + 1)),  # longer than the item allows
        (text.id, ["short", "another"]),
    ):
        response = client.post(url, data={**fields, name: value})
        assert response.status_code == 422, (name, value)
    assert _count(engine, Response) == 0
    assert client.post(url, data=fields).status_code == 200
    assert _count(engine, Response) == 1
