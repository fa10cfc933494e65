"""A closed career-safety wave built over the API: org tree, invitations, answers posted through the web form
(as a browser would), closed by HR; and the `peil` command on the same database."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from service.config import Settings, get_settings
from service.instruments.schema import Instrument
from tests.conftest import TEST_SECRET
from tests.factories import close_wave, create_wave, invite, make_key, open_wave, put_tree
from tests.forms.answers import all_answers, as_fields
from tests.mail import mail_links

TEAMS = [f"team{t}" for t in range(1, 8)]
PER_TEAM = 10
ANSWERING = {"team7": 2}  # team7: only two answers, a small group the guard must hide; all others answer fully
TEAM_OF = {
    "team1": "dep1",
    "team2": "dep1",
    "team3": "dep2",
    "team4": "dep2",
    "team5": "dep3",
    "team6": "dep3",
    "team7": "dep3",
}


@dataclass
class Wave:
    """A wave and what was put into it: who answered what, per team (to check the API against by hand)."""

    id: int
    instrument: Instrument
    hr: dict[str, str]
    dashboard: dict[str, str]
    answers: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # team -> complete answers
    attributes: dict[str, list[dict[str, str]]] = field(default_factory=dict)  # team -> their attributes

    def url(self, what: str) -> str:
        return f"/api/v1/waves/{self.id}/{what}"


def answered_wave(app: FastAPI, client: TestClient, hr: dict[str, str], dashboard: dict[str, str], **body: Any) -> Wave:
    """An open wave whose invitees answered through the form: variant n for the n-th respondent."""
    created = create_wave(client, hr, **body)
    emails = invite(client, hr, created["id"], per_team=PER_TEAM, teams=TEAMS)
    open_wave(client, hr, created["id"])
    tokens = mail_links(app, emails)
    instrument = app.state.instruments[(created["instrument"], created["version"])].instrument
    wave = Wave(created["id"], instrument, hr, dashboard)
    variant = 0
    for t, team in enumerate(TEAMS):
        for i in range(ANSWERING.get(team, PER_TEAM)):
            answers = all_answers(instrument, variant)
            variant += 3
            posted = client.post(f"/s/{tokens[t * PER_TEAM + i]}", data=as_fields(answers))
            assert posted.status_code == 200, posted.text
            wave.answers.setdefault(team, []).append(answers)
            # the factories' attributes: invitee i of a team
            wave.attributes.setdefault(team, []).append(
                {"tenure_band": ["<1", "1-3", "3+"][i % 3], "location": ["A", "B"][i % 2]}
            )
    return wave


def close(app: FastAPI, client: TestClient, wave: Wave) -> None:
    close_wave(client, app, wave.hr, wave.id)


@pytest.fixture
def keys(app: FastAPI, client: TestClient) -> tuple[dict[str, str], dict[str, str]]:
    hr = make_key(app, "hr")
    put_tree(client, hr)
    return hr, make_key(app, "dashboard")


@pytest.fixture
def open_survey(app: FastAPI, client: TestClient, keys: tuple[dict[str, str], dict[str, str]]) -> Wave:
    """An open career-safety wave with answers."""
    return answered_wave(app, client, *keys, min_group_size=3)


@pytest.fixture
def closed(app: FastAPI, client: TestClient, open_survey: Wave) -> Wave:
    """The same wave, closed by HR through the API, and its close job run (which builds and stores its table)."""
    close(app, client, open_survey)
    return open_survey


@pytest.fixture
def peil(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[CliRunner]:
    """The `peil` command on the test database."""
    monkeypatch.setenv("PEIL_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("PEIL_SECRET_KEY", TEST_SECRET)
    monkeypatch.setenv("PEIL_ENV", "test")
    get_settings.cache_clear()
    yield CliRunner()
    get_settings.cache_clear()
