"""A wave closing while answers arrive: each post is stored whole before the close or refused with the
closed-wave page; nothing is stored after the close; participation counts exactly the confirmed surveys."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine

from tests.forms.answers import all_answers, answers_for, as_fields
from tests.resilience.live import LiveServer, form, hr_key, mac, setup_wave, stored, wait_closed
from tests.resilience.test_exactly_once import _instrument

pytestmark = pytest.mark.live

LINKS = 240
CLOSE_AFTER = 50  # confirmed surveys before HR closes the wave


def test_closing_under_load_stores_whole_answers_or_refuses(server: LiveServer, fresh_engine: Engine) -> None:
    setup = setup_wave(server, hr_key(fresh_engine), invitations=LINKS)
    instrument = _instrument()
    sections = instrument.sections
    whole = {n: all_answers(instrument, variant=n) for n in range(0, LINKS, 2)}  # even links: one post
    paged = set(range(1, LINKS, 2))  # odd links: page by page, as the browser does

    lock = threading.Lock()
    finished = 0
    close_due = threading.Event()
    statuses: list[int] = []
    closed_pages: list[str] = []
    accepted_pages: dict[int, list[int]] = {n: [] for n in paged}
    thanked: set[int] = set()
    snapshot: dict[str, Any] = {}

    def note(status: int, text: str) -> None:
        nonlocal finished
        with lock:
            statuses.append(status)
            if status == 410:
                closed_pages.append(text)
            finished += status == 200
            if finished >= CLOSE_AFTER:
                close_due.set()

    def one(client: httpx.Client, n: int) -> None:
        url = f"{server.base}/s/{setup.tokens[n]}"
        if n in whole:
            response = client.post(url, data=form(whole[n]))
            note(response.status_code, response.text)
            if response.status_code == 200:
                with lock:
                    thanked.add(n)
            return
        for page, section in enumerate(sections, start=1):
            data = as_fields(answers_for(section.items, n), page=page, action="next", lang="en")
            response = client.post(url, data=data, follow_redirects=False)
            note(response.status_code, response.text)
            if response.status_code not in (200, 303):
                return
            with lock:
                accepted_pages[n].append(page)
                if response.status_code == 200:
                    thanked.add(n)

    def close_midway() -> None:
        close_due.wait(timeout=60)
        closed = httpx.post(f"{server.base}/api/v1/waves/{setup.wave_id}/close", headers=setup.hr, timeout=60)
        assert closed.status_code == 202, closed.text
        snapshot.update(stored(fresh_engine, setup.wave_id))  # what the wave holds the moment it has closed

    closer = threading.Thread(target=close_midway)
    closer.start()
    local = threading.local()
    clients: list[httpx.Client] = []

    def run(n: int) -> None:
        if not hasattr(local, "client"):
            local.client = httpx.Client(timeout=30)
            clients.append(local.client)
        one(local.client, n)

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(run, range(LINKS)))
    closer.join(timeout=60)
    for client in clients:
        client.close()
    assert snapshot, "the close must have happened"

    assert set(statuses) <= {200, 303, 410}, sorted(set(statuses))
    assert closed_pages and all("This survey has closed" in text for text in closed_pages)
    assert thanked and len(thanked) < LINKS

    rows = stored(fresh_engine, setup.wave_id)
    assert rows.keys() == snapshot.keys()  # nothing stored after the close
    assert all(rows[k].answers == snapshot[k].answers and rows[k].complete == snapshot[k].complete for k in rows)
    for n, token in enumerate(setup.tokens):
        row = rows.get(mac(token))
        if n in whole:
            if n in thanked:
                assert row is not None and row.complete and row.answers == whole[n]
            else:
                assert row is None  # refused: not a single answer of it kept
            continue
        pages = accepted_pages[n]
        if not pages:
            assert row is None
            continue
        # Exactly the pages that were confirmed, each whole; complete only if the last page was.
        expected: dict[str, Any] = {}
        for page in pages:
            expected.update(answers_for(sections[page - 1].items, n))
        assert row is not None and row.answers == expected
        assert row.complete is (n in thanked)

    wait_closed(server.base, setup.hr, setup.wave_id)
    participation = httpx.get(
        f"{server.base}/api/v1/waves/{setup.wave_id}/participation", headers=setup.hr, timeout=30
    ).json()
    assert participation["state"] == "closed"
    [org] = [u for u in participation["units"] if u["unit_key"] == "org"]
    assert org["responded"] == len(thanked) == sum(r.complete for r in rows.values())
