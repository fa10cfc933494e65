"""Schemathesis against the live OpenAPI schema: every route, valid keys, no 5xx, every answer as documented.

The app runs in-process on its own migrated database, SQLite and then PostgreSQL, holding a small org, a draft
wave, an open wave with links and answers, and a closed wave. The schema is read from the app object (outside
development `/openapi.json` answers only to a key); requests go to the backend's own app in-process. Each
generated request carries a key of a role the route admits (admin for keys and audit, hr elsewhere); GET routes
are also called with the dashboard key, which must get a documented answer too (403 where it is not
admitted). Examples per route are few, to stay fast.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, settings
from schemathesis.checks import positive_data_acceptance

from service.app import create_app
from service.config import Settings
from tests.conftest import TEST_SECRET, migrated_database
from tests.factories import close_wave, create_wave, invite, make_key, open_wave, put_tree
from tests.forms.answers import all_answers, as_fields
from tests.mail import mail_links

ADMIN_PREFIXES = ("/api/v1/keys", "/api/v1/audit")
# Schema-valid is not always acceptable: a window in the past, an unknown instrument or construct, a cycle in
# the org tree are refused with 422 by rules no JSON schema can state. Everything else is checked.
BUSINESS_RULES = [positive_data_acceptance]


# The schema is what the app publishes, read at import (schemathesis reads its routes at collection) from an
# app whose database is never opened; each backend's app is built by the fixture.
_SCHEMA_DATA = Path(tempfile.mkdtemp(prefix="peil-fuzz-api-"))
_SCHEMA_APP = create_app(
    Settings(env="test", database_url="sqlite://", secret_key=TEST_SECRET, data_dir=_SCHEMA_DATA),  # type: ignore[arg-type]
    scheduler=False,
)
schema = schemathesis.openapi.from_dict(_SCHEMA_APP.openapi())
shutil.rmtree(_SCHEMA_DATA, ignore_errors=True)


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def loaded(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[FastAPI, dict[str, dict[str, str]]]]:
    folder = tmp_path_factory.mktemp("fuzz-api")
    with migrated_database(request.param, folder) as url:
        app = create_app(
            Settings(env="test", database_url=url, secret_key=TEST_SECRET, data_dir=folder),  # type: ignore[arg-type]
            scheduler=False,
        )
        with TestClient(app) as client:
            keys = {role: make_key(app, role, f"{role}-fuzz") for role in ("hr", "dashboard", "admin")}
            _populate(app, client, keys["hr"])
            yield app, keys
        app.state.engine.dispose()


def _populate(app: FastAPI, client: TestClient, hr: dict[str, str]) -> None:
    """A small org, a draft wave, an open wave with answers and a closed one."""
    put_tree(client, hr)
    create_wave(client, hr, name="Draft")
    instrument = app.state.instruments[("career-safety", 1)].instrument
    for name, close in (("Open", False), ("Closed", True)):
        wave = create_wave(client, hr, name=name)
        emails = invite(client, hr, wave["id"], per_team=5, teams=["team1", "team2", "team3"])
        open_wave(client, hr, wave["id"])
        tokens = mail_links(app, emails)
        for n, token in enumerate(tokens):
            client.post(f"/s/{token}", data=as_fields(all_answers(instrument, n)))
        if close:
            close_wave(client, app, hr, wave["id"])


@schema.parametrize()
@settings(
    max_examples=12,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.function_scoped_fixture],
)
def test_every_route_answers_as_documented(case: Any, loaded: tuple[FastAPI, dict[str, dict[str, str]]]) -> None:
    app, keys = loaded
    role = "admin" if case.path.startswith(ADMIN_PREFIXES) else "hr"
    case.call_and_validate(headers=keys[role], excluded_checks=BUSINESS_RULES, app=app)
    if case.method.upper() == "GET":
        case.call_and_validate(headers=keys["dashboard"], excluded_checks=BUSINESS_RULES, app=app)
