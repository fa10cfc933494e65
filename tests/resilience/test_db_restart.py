"""PostgreSQL restarting under load: clients get 503 with Retry-After (never a 500), and the service, left
running, serves again once the database is back. The test runs its own PostgreSQL, so nothing else notices.

The web form says so with a page (in the language the respondent asked for, else in Dutch and English);
the API with its JSON error."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from alembic import command
from sqlalchemy import Engine

from tests.conftest import alembic_config
from tests.forms.answers import all_answers
from tests.resilience.live import LiveServer, engine_for, form, hr_key, mac, setup_wave, stored
from tests.resilience.load import NO_ANSWER, Load, Outcome
from tests.resilience.own_postgres import OwnPostgres, launch, remove
from tests.resilience.test_exactly_once import _instrument

pytestmark = [pytest.mark.live, pytest.mark.postgres]

LINKS = 300
STOP_AFTER = 60  # thank-you pages before the database goes down
DOWN_FOR = 1.5  # seconds the database stays down while the load goes on


@pytest.fixture(scope="module")
def own_postgres() -> Iterator[OwnPostgres]:
    instance = launch()
    if isinstance(instance, str):
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI requires a PostgreSQL of our own: {instance}")
        pytest.skip(instance)
    try:
        yield instance
    finally:
        remove(instance)


@pytest.fixture
def own_engine(own_postgres: OwnPostgres) -> Iterator[tuple[str, Engine]]:
    url = own_postgres.create_database(f"peil_{os.getpid()}_{time.monotonic_ns()}")
    command.upgrade(alembic_config(url), "head")
    engine = engine_for(url)
    yield url, engine
    engine.dispose()


def test_database_restart_under_load_gives_503_then_recovers(
    own_postgres: OwnPostgres, own_engine: tuple[str, Engine], tmp_path: Path
) -> None:
    url, engine = own_engine
    server = LiveServer(url, tmp_path)
    server.start()
    try:
        setup = setup_wave(server, hr_key(engine), invitations=LINKS)
        instrument = _instrument()
        answers = {n: all_answers(instrument, variant=n) for n in range(LINKS)}
        load = Load(server.base, setup.tokens, lambda n: form(answers[n]), threads=6, timeout=20)

        thanked = 0
        lock = threading.Lock()
        due = threading.Event()

        def count(outcome: Outcome) -> None:
            nonlocal thanked
            with lock:
                thanked += outcome.status == 200
                if thanked >= STOP_AFTER:
                    due.set()

        while_down: dict[str, httpx.Response] = {}

        def restart_database() -> None:
            due.wait(timeout=60)
            own_postgres.stop("immediate")  # a crash: connections cut mid-transaction
            started = time.monotonic()
            with httpx.Client(base_url=server.base, timeout=10) as probe:
                while_down["form"] = probe.get(f"/s/{setup.tokens[0]}")  # no language asked for
                while_down["form_nl"] = probe.get(f"/s/{setup.tokens[0]}", headers={"accept-language": "nl"})
                while_down["api"] = probe.get(f"/api/v1/waves/{setup.wave_id}/participation", headers=setup.hr)
            time.sleep(max(0.0, DOWN_FOR - (time.monotonic() - started)))
            own_postgres.start()

        restarter = threading.Thread(target=restart_database)
        restarter.start()
        load.run(range(LINKS), on_each=count)
        restarter.join(timeout=60)
        assert not restarter.is_alive()

        statuses = [o.status for o in load.history]
        assert set(statuses) <= {200, 503}, (sorted(set(statuses)), server.logs()[-3000:])
        refused = [o for o in load.history if o.status == 503]
        assert refused, "the load must have met the database while it was down"
        assert all(o.retry_after and int(o.retry_after) > 0 for o in refused)
        assert NO_ANSWER not in statuses
        # The form's refusals are pages in the language of the post (English here), not JSON.
        assert all(o.content_type.startswith("text/html") for o in refused), {o.content_type for o in refused}
        assert all("Briefly unavailable" in o.text and "Even niet" not in o.text for o in refused)

        form_page, form_nl, api = while_down["form"], while_down["form_nl"], while_down["api"]
        for page in (form_page, form_nl):
            assert page.status_code == 503 and page.headers["content-type"].startswith("text/html")
            assert int(page.headers["retry-after"]) > 0 and "<form" not in page.text
        assert "Even niet bereikbaar" in form_page.text and "Briefly unavailable" in form_page.text
        assert '<html lang="nl">' in form_page.text and '<div lang="en">' in form_page.text
        assert "Even niet bereikbaar" in form_nl.text and "Briefly unavailable" not in form_nl.text
        assert api.status_code == 503 and int(api.headers["retry-after"]) > 0
        assert api.json()["error"]["code"] == "unavailable"

        # The same service process, never restarted, takes the retries once the database is back.
        assert server.process is not None and server.process.poll() is None
        assert server.starts == 1
        for _attempt in range(20):
            waiting = load.numbers_with(lambda o: o.status != 200)
            if not waiting:
                break
            load.run(waiting)
            time.sleep(0.2)
        assert load.numbers_with(lambda o: o.status != 200) == []
        assert httpx.get(f"{server.base}/healthz", timeout=5).status_code == 200

        rows = stored(engine, setup.wave_id)
        assert set(rows) == {mac(t) for t in setup.tokens}
        for n, token in enumerate(setup.tokens):
            assert rows[mac(token)].complete and rows[mac(token)].answers == answers[n]
    finally:
        server.stop()
