"""Link-miss throttling: one address that keeps trying unknown links slows down, then gets 429; others do not."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from service.forms.throttle import LinkMisses
from tests.forms.conftest import Survey


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_counts_per_address_in_a_sliding_window() -> None:
    clock = FakeClock()
    misses = LinkMisses(limit=6, window=60, clock=clock)
    delays = []
    for _ in range(6):
        verdict = misses.check("a")
        assert verdict.retry_after == 0
        delays.append(verdict.delay)
        misses.miss("a")
        clock.now += 1
    assert delays[:4] == [0, 0, 0, 0] and 0 < delays[4] < delays[5] <= 2  # slower from half the limit on
    refused = misses.check("a")
    assert refused.retry_after == 60 - 6  # until the first miss (6 seconds ago) leaves the window
    assert misses.check("b").retry_after == 0 and misses.check("b").delay == 0
    clock.now += refused.retry_after
    assert misses.check("a").retry_after == 0  # one slot free again
    clock.now += 60
    assert misses.check("a").delay == 0  # all forgotten


@pytest.fixture
def strict(app: FastAPI, form_client: TestClient) -> Iterator[LinkMisses]:
    saved = app.state.link_misses
    app.state.link_misses = LinkMisses(limit=4, window=60)
    try:
        yield app.state.link_misses
    finally:
        app.state.link_misses = saved


def test_unknown_links_lead_to_429_for_that_address_only(
    app: FastAPI, form_client: TestClient, survey: Survey, strict: LinkMisses
) -> None:
    for n in range(4):
        assert form_client.get(f"/s/guess-{n}").status_code == 404
    refused = form_client.get("/s/guess-5", headers={"accept-language": "en"})
    assert refused.status_code == 429
    assert int(refused.headers["retry-after"]) > 0 and "Please wait" in refused.text
    assert form_client.post("/s/guess-6").status_code == 429
    assert form_client.get(survey.url()).status_code == 429  # even a real link, from this address, for now
    with TestClient(app, client=("203.0.113.7", 4000)) as elsewhere:
        assert elsewhere.get("/s/guess-1").status_code == 404
        assert elsewhere.get(survey.url()).status_code == 200
