"""Schemathesis against the live OpenAPI schema: every route, valid keys, no 5xx, every answer as documented.

The app runs in-process on its own migrated SQLite database, holding a small org, a draft wave, an open wave
with links and answers, and a closed wave. Each generated request carries a key of a role the route admits
(admin for keys and audit, hr elsewhere); GET routes are also called with the dashboard key, which must get
a documented answer too (403 where it is not admitted). Examples per route are few, to stay fast.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from alembic import command
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, settings
from schemathesis.checks import positive_data_acceptance

from service.app import create_app
from service.config import Settings
from tests.conftest import TEST_SECRET, alembic_config
from tests.factories import close_wave, create_wave, invite, make_key, open_wave, put_tree
from tests.forms.answers import all_answers, as_fields

ADMIN_PREFIXES = ("/api/v1/keys", "/api/v1/audit")
# Schema-valid is not always acceptable: a window in the past, an unknown instrument or construct, a cycle in
# the org tree are refused with 422 by rules no JSON schema can state. Everything else is checked.
BUSINESS_RULES = [positive_data_acceptance]


# The app exists at import (schemathesis reads its routes at collection); its database is built by the fixture.
_TMP = Path(tempfile.mkdtemp(prefix="peil-fuzz-api-"))
_URL = f"sqlite:///{_TMP / 'peil.db'}"
APP = create_app(
    Settings(env="test", database_url=_URL, secret_key=TEST_SECRET, data_dir=_TMP),  # type: ignore[arg-type]
    scheduler=False,
)
schema = schemathesis.openapi.from_dict(APP.openapi())  # what /openapi.json serves, read without a database
schema.app = APP  # requests go to the app in-process


@pytest.fixture(scope="module")
def loaded() -> Iterator[tuple[FastAPI, dict[str, dict[str, str]]]]:
    command.upgrade(alembic_config(_URL), "head")
    app = APP
    with TestClient(app) as client:
        keys = {role: make_key(app, role, f"{role}-fuzz") for role in ("hr", "dashboard", "admin")}
        hr = keys["hr"]
        put_tree(client, hr)
        create_wave(client, hr, name="Draft")
        instrument = app.state.instruments[("career-safety", 1)].instrument
        for name, close in (("Open", False), ("Closed", True)):
            wave = create_wave(client, hr, name=name)
            tokens = invite(client, hr, wave["id"], per_team=5, teams=["team1", "team2", "team3"])
            open_wave(client, hr, wave["id"])
            for n, token in enumerate(tokens):
                client.post(f"/s/{token}", data=as_fields(all_answers(instrument, n)))
            if close:
                close_wave(client, app, hr, wave["id"])
        yield app, keys
    shutil.rmtree(_TMP, ignore_errors=True)


@pytest.fixture(scope="module")
def keys(loaded: tuple[FastAPI, dict[str, dict[str, str]]]) -> dict[str, dict[str, str]]:
    return loaded[1]


@schema.parametrize()
@settings(
    max_examples=12,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.function_scoped_fixture],
)
def test_every_route_answers_as_documented(case: Any, keys: dict[str, dict[str, str]]) -> None:
    role = "admin" if case.path.startswith(ADMIN_PREFIXES) else "hr"
    case.call_and_validate(headers=keys[role], excluded_checks=BUSINESS_RULES)
    if case.method.upper() == "GET":
        case.call_and_validate(headers=keys["dashboard"], excluded_checks=BUSINESS_RULES)
