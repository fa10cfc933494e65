"""A closed wave with real answers, built through the API and the form, and export targets to point at."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from service.config import Settings
from service.exports.service import run_export
from service.models import ExportRun
from tests.conftest import PG_ADMIN_URL, _postgres_available
from tests.factories import close_wave, create_wave, make_key, open_wave, put_tree, small_tree
from tests.forms.answers import answer_for, as_fields
from tests.mail import mail_links

SECRET_TEXT = "GEHEIM-antwoord"  # every free-text answer starts with this: it must never reach an export


@dataclass
class Respondent:
    token: str
    team: str
    answers: dict[str, Any]


@dataclass
class ClosedWave:
    id: int
    hr: dict[str, str]
    respondents: list[Respondent]
    parents: dict[str, str | None]

    def division_of(self, unit: str) -> str:
        while self.parents[unit] not in (None, "org"):
            unit = self.parents[unit]  # type: ignore[assignment]
        return unit


def close_wave_with_answers(
    client: TestClient,
    app: FastAPI,
    hr: dict[str, str],
    *,
    seed: int,
    per_team: int = 10,
    name: str = "Autumn",
    attributes: tuple[str, ...] = ("location",),
) -> ClosedWave:
    """A wave of career-safety with ``per_team`` invitations per team, everyone answering at random, closed."""
    rng = np.random.default_rng(seed)
    wave = create_wave(client, hr, name=name, attributes=list(attributes))
    teams = [f"team{t}" for t in range(1, 8)]
    values = {"tenure_band": ["<1", "1-3", "3+"], "location": ["A", "B"]}
    rows = [
        {
            "unit_key": team,
            "email": f"w{wave['id']}-{team}-{i}@example.com",
            "attributes": {a: values[a][i % len(values[a])] for a in attributes},
        }
        for team in teams
        for i in range(per_team)
    ]
    invited = client.post(f"/api/v1/waves/{wave['id']}/participants", json={"participants": rows}, headers=hr)
    assert invited.status_code == 201, invited.text
    open_wave(client, hr, wave["id"])
    tokens = mail_links(app, [row["email"] for row in rows])
    instrument = app.state.instruments[("career-safety", 1)].instrument
    respondents = []
    for n, token in enumerate(tokens):
        answers = {item.id: answer_for(item, int(rng.integers(0, 1000))) for item in instrument.items}
        for item in instrument.items:
            if item.type == "text":
                answers[item.id] = f"{SECRET_TEXT} {n} {item.id}"
        response = client.post(f"/s/{token}", data=as_fields(answers))
        assert response.status_code == 200, response.text
        respondents.append(Respondent(token, teams[n // per_team], answers))
    close_wave(client, app, hr, wave["id"])
    parents = {u["key"]: u["parent_key"] for u in small_tree()}
    return ClosedWave(wave["id"], hr, respondents, parents)


@pytest.fixture
def hr(app: FastAPI, client: TestClient) -> dict[str, str]:
    headers = make_key(app, "hr", "export-hr")
    put_tree(client, headers)
    return headers


@pytest.fixture
def closed_wave(client: TestClient, app: FastAPI, hr: dict[str, str]) -> ClosedWave:
    return close_wave_with_answers(client, app, hr, seed=11)


@pytest.fixture
def file_settings(settings: Settings, tmp_path: Path) -> Settings:
    return settings.model_copy(update={"export_target": f"file://{tmp_path / 'export'}"})


@pytest.fixture
def pg_schema() -> Iterator[tuple[str, str]]:
    """A fresh schema in the PostgreSQL database ``test``: (target URL, schema); dropped afterwards."""
    problem = _postgres_available()
    if problem is not None:
        pytest.skip(problem)
    schema = f"peil_analytics_{secrets.token_hex(3)}"
    url = PG_ADMIN_URL.replace("postgresql://", "postgresql+psycopg://")
    yield f"{url}?schema={schema}", schema
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def export(app: FastAPI, settings: Settings, **kwargs: Any) -> ExportRun:
    kwargs.setdefault("trigger", "cli")
    kwargs.setdefault("actor", "test")
    return run_export(app.state.sessionmaker, settings, **kwargs)
