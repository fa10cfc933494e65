"""Nothing doubled: one link posted 50 times at once, a post abandoned by its client and retried, the last one wins.

Against a real `peil serve --workers 2`, on SQLite and PostgreSQL: two processes race for the same row.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from sqlalchemy import Engine

from service.config import REPO_ROOT
from service.instruments.loader import load_definitions
from service.instruments.schema import Instrument
from tests.forms.answers import all_answers
from tests.resilience.live import LiveServer, form, hr_key, mac, setup_wave, stored, wait_closed

pytestmark = pytest.mark.live

CONCURRENT = 50


def _instrument() -> Instrument:
    """career-safety as the service loads it, to make valid answers."""
    return load_definitions(REPO_ROOT / "survey_definitions")[("career-safety", 1)].instrument


def test_fifty_concurrent_posts_of_one_link_store_one_response(server: LiveServer, fresh_engine: Engine) -> None:
    setup = setup_wave(server, hr_key(fresh_engine), invitations=7)
    instrument = _instrument()
    token = setup.tokens[0]
    variants = [all_answers(instrument, variant=n) for n in range(CONCURRENT)]

    def post(n: int) -> int:
        with httpx.Client(base_url=server.base, timeout=60) as client:
            return client.post(f"/s/{token}", data=form(variants[n])).status_code

    with ThreadPoolExecutor(max_workers=CONCURRENT) as pool:
        statuses = list(pool.map(post, range(CONCURRENT)))
    assert statuses == [200] * CONCURRENT
    rows = stored(fresh_engine, setup.wave_id)
    assert list(rows) == [mac(token)]
    [row] = rows.values()
    assert row.complete is True
    assert row.answers in variants  # one whole post won; no mix of two posts


def test_a_post_abandoned_by_its_client_and_retried_is_stored_once(server: LiveServer, fresh_engine: Engine) -> None:
    setup = setup_wave(server, hr_key(fresh_engine), invitations=7)
    instrument = _instrument()
    first, retry = all_answers(instrument, variant=1), all_answers(instrument, variant=2)
    abandoned = 0
    for token in setup.tokens:
        # The client gives up before any answer can arrive (a phone losing its signal); the server may or
        # may not have stored it. Then the person presses the button again.
        try:
            httpx.post(f"{server.base}/s/{token}", data=form(first), timeout=httpx.Timeout(5, read=0.0001))
        except httpx.TimeoutException:
            abandoned += 1
        again = httpx.post(f"{server.base}/s/{token}", data=form(retry), timeout=30)
        assert again.status_code == 200, again.text
    assert abandoned > 0  # the timeout really cut at least one post short
    rows = stored(fresh_engine, setup.wave_id)
    assert set(rows) == {mac(t) for t in setup.tokens}
    # One row per link, complete, holding one of the two posts whole. Which one is not for us to promise: the
    # abandoned post may still be running in the other worker when the retry arrives, and commit after it.
    assert all(r.complete and r.answers in (first, retry) for r in rows.values())


def test_the_last_complete_post_before_the_close_wins(server: LiveServer, fresh_engine: Engine) -> None:
    setup = setup_wave(server, hr_key(fresh_engine), invitations=7)
    instrument = _instrument()
    token = setup.tokens[3]
    url = f"{server.base}/s/{token}"
    for variant in (1, 2, 3):
        assert httpx.post(url, data=form(all_answers(instrument, variant=variant)), timeout=30).status_code == 200
    closed = httpx.post(f"{server.base}/api/v1/waves/{setup.wave_id}/close", headers=setup.hr, timeout=60)
    assert closed.status_code == 202, closed.text
    late = httpx.post(url, data=form(all_answers(instrument, variant=4)), timeout=30)
    assert late.status_code == 410 and "closed" in late.text.lower()
    wait_closed(server.base, setup.hr, setup.wave_id)  # the server's close worker, woken by the close
    [row] = stored(fresh_engine, setup.wave_id).values()
    assert row.answers == all_answers(instrument, variant=3) and row.complete
    assert row.answered_on is None  # dropped by the close (rule 5)
