"""Fixtures for the HR pages: signing in through the form (as a browser does), and the demo under uvicorn.

``demo_server``: ``peil demo`` loaded into a temporary SQLite database built by Alembic, served by uvicorn in a
background thread on a free port, with an hr, a dashboard and a manager key (for one division) handed out.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import uvicorn
from alembic import command
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select

from service.app import create_app
from service.config import Settings
from service.db import transaction
from service.demo import run as demo
from service.forms.throttle import LinkMisses
from service.keys import repository
from service.models import Wave
from tests.conftest import TEST_SECRET, alembic_config
from tests.factories import make_key, put_tree
from tests.forms.test_browser import _free_port
from tests.results.conftest import Wave as ResultsWave
from tests.results.conftest import answered_wave, close

MANAGED = "div-3"  # the demo division a manager key reads in these tests


def form_token(html: str) -> str:
    found = re.search(r'name="_csrf" value="([^"]+)"', html)
    assert found, "the page has no form token"
    return found.group(1)


def sign_in(client: TestClient, key: str, *, lang: str = "nl", next_page: str = "/hr/waves") -> Any:
    """Sign in through the form: fetch it (its token and cookie), post the key. Returns the POST's response."""
    form = client.get("/hr/login")
    assert form.status_code == 200, form.text
    return client.post(
        "/hr/login",
        data={"key": key, "_csrf": form_token(form.text), "next": next_page, "lang": lang},
        follow_redirects=False,
    )


def new_key(app: FastAPI, role: str, unit: str | None = None) -> str:
    with transaction(app.state.sessionmaker) as session:
        _row, key = repository.create(session, role=role, name=f"{role} on the pages", unit=unit)
    return key


@pytest.fixture
def pages(app: FastAPI, client: TestClient) -> Iterator[TestClient]:
    """The test client with the failed sign-ins of earlier tests forgotten."""
    saved = app.state.login_misses
    app.state.login_misses = LinkMisses(saved.limit, saved.window)
    try:
        yield client
    finally:
        app.state.login_misses = saved


@dataclass
class Demo:
    base: str
    app: Any
    wave_id: int
    keys: dict[str, str]  # role -> key


@pytest.fixture(scope="session")
def demo_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    tmp = tmp_path_factory.mktemp("hr-demo")
    url = f"sqlite:///{tmp / 'peil.db'}"
    command.upgrade(alembic_config(url), "head")
    settings = Settings(env="test", database_url=url, secret_key=TEST_SECRET, data_dir=tmp)  # type: ignore[arg-type]
    for _line in demo(settings):
        pass
    app = create_app(settings, scheduler=False)
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, access_log=False))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            pytest.fail("uvicorn did not start")
        time.sleep(0.05)
    try:
        with app.state.sessionmaker() as session:
            wave_id = session.scalar(select(Wave.id).where(Wave.state == "closed", Wave.instrument == "career-safety"))
        assert wave_id is not None
        keys = {role: new_key(app, role) for role in ("hr", "dashboard")}
        keys["manager"] = new_key(app, "manager", MANAGED)
        yield Demo(f"http://127.0.0.1:{port}", app, wave_id, keys)
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@dataclass
class Closed:
    """A closed wave of the results tests (tests.results.conftest) and keys to sign in with."""

    wave: ResultsWave
    keys: dict[str, str]  # role -> key; the manager reads div1

    def page(self, what: str = "") -> str:
        return f"/hr/waves/{self.wave.id}{what}"


@pytest.fixture
def closed_wave(app: FastAPI, pages: TestClient) -> Closed:
    hr = make_key(app, "hr")
    put_tree(pages, hr)
    wave = answered_wave(app, pages, hr, make_key(app, "dashboard"), min_group_size=3)
    close(app, pages, wave)
    keys = {role: new_key(app, role) for role in ("hr", "dashboard")}
    keys["manager"] = new_key(app, "manager", "div1")
    return Closed(wave, keys)
