"""Fixtures for the web form: an HR key and org tree, an open wave of career-safety with a few links."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, select

from service.forms.throttle import LinkMisses
from service.instruments.schema import Instrument
from service.invitations import contact
from service.models import Invitation, Response, Wave
from tests.factories import create_wave, invite, make_key, open_wave, put_tree
from tests.mail import mail_links


@dataclass
class Survey:
    wave_id: int
    tokens: list[str]
    instrument: Instrument
    hr: dict[str, str]

    def url(self, n: int = 0) -> str:
        return f"/s/{self.tokens[n]}"


@pytest.fixture
def form_client(app: FastAPI, client: TestClient) -> Iterator[TestClient]:
    """The test client, with the link-miss counts of earlier tests forgotten."""
    saved = app.state.link_misses
    app.state.link_misses = LinkMisses(saved.limit, saved.window)
    try:
        yield client
    finally:
        app.state.link_misses = saved


@pytest.fixture
def hr(app: FastAPI, form_client: TestClient) -> dict[str, str]:
    headers = make_key(app, "hr")
    put_tree(form_client, headers)
    return headers


def _survey(app: FastAPI, client: TestClient, hr: dict[str, str], *, opened: bool, **overrides: Any) -> Survey:
    wave = create_wave(client, hr, **overrides)
    emails = invite(client, hr, wave["id"], per_team=2, teams=["team1", "team2"])
    if opened:
        open_wave(client, hr, wave["id"])
        tokens = mail_links(app, emails)
    else:
        tokens = sealed_tokens(app, wave["id"])
    instrument = app.state.instruments[(wave["instrument"], wave["version"])].instrument
    return Survey(wave["id"], tokens, instrument, hr)


@pytest.fixture
def survey(app: FastAPI, form_client: TestClient, hr: dict[str, str]) -> Survey:
    """An open career-safety wave with four links."""
    return _survey(app, form_client, hr, opened=True)


@pytest.fixture
def draft_survey(app: FastAPI, form_client: TestClient, hr: dict[str, str]) -> Survey:
    """A wave whose window opens tomorrow, not opened by HR."""
    return _survey(app, form_client, hr, opened=False)


def sealed_tokens(app: FastAPI, wave_id: int) -> list[str]:
    """The links of a draft wave's participants, which no mail has carried yet (a draft wave mails nothing), read
    from Peil's sealed store with the service secret, to test what such a link shows."""
    with app.state.sessionmaker() as session:
        sealed = session.scalars(select(Invitation.sealed_contact).where(Invitation.wave_id == wave_id))
        return [contact.unseal(app.state.secret, box).token for box in sealed if box is not None]


def counts(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        return {
            model.__tablename__: conn.scalar(select(func.count()).select_from(model)) or 0
            for model in (Response, Invitation, Wave)
        }


def responses(engine: Engine) -> list[Response]:
    from sqlalchemy.orm import Session

    with Session(engine) as session:
        return list(session.scalars(select(Response)))


def checked(html: str, item_id: str, value: Any) -> bool:
    """True when the choice ``value`` of ``item_id`` is checked in the page."""
    pattern = rf'<input [^>]*id="{re.escape(f"{item_id}-{value}")}"[^>]*>'
    match = re.search(pattern, html)
    return bool(match) and " checked" in match.group(0)
