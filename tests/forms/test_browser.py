"""The survey form in a real Chromium: Dutch by keyboard, English with a skipped required question, a phone.

The app runs under uvicorn in a background thread on a free port, on a temporary SQLite database built by
Alembic; HR's side (tree, wave, links, opening) goes through the JSON API with httpx.
"""

from __future__ import annotations

import os
import re
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from alembic import command
from sqlalchemy import select
from sqlalchemy.orm import Session

from service import links
from service.app import create_app
from service.config import Settings
from service.forms.i18n import WORDS
from service.instruments.schema import Instrument, Item
from service.models import Invitation, Response
from tests.conftest import TEST_SECRET, alembic_config
from tests.factories import make_key, small_tree, wave_body
from tests.forms.answers import answers_for
from tests.mail import mail_links

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]


@dataclass
class Live:
    base: str
    app: Any
    tokens: list[str]
    instrument: Instrument


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def chromium_path() -> str:
    if not CHROMIUM.exists():
        message = f"{CHROMIUM} is missing (install Debian's chromium: `make browser`)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return str(CHROMIUM)


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    tmp = tmp_path_factory.mktemp("browser")
    url = f"sqlite:///{tmp / 'peil.db'}"
    command.upgrade(alembic_config(url), "head")
    settings = Settings(env="test", database_url=url, secret_key=TEST_SECRET, data_dir=tmp)  # type: ignore[arg-type]
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
    base = f"http://127.0.0.1:{port}"
    try:
        hr = make_key(app, "hr")
        with httpx.Client(base_url=base, headers=hr, timeout=10) as api:
            assert api.put("/api/v1/units", json={"units": small_tree()}).status_code == 200
            wave = api.post("/api/v1/waves", json=wave_body()).json()
            rows = [
                {
                    "unit_key": "team1",
                    "email": f"p{n}@example.com",
                    "attributes": {"tenure_band": "1-3", "location": "A"},
                }
                for n in range(3)
            ]
            created = api.post(f"/api/v1/waves/{wave['id']}/participants", json={"participants": rows})
            assert created.status_code == 201, created.text
            assert api.post(f"/api/v1/waves/{wave['id']}/open").status_code == 200
        tokens = mail_links(app, [row["email"] for row in rows])
        instrument = app.state.instruments[("career-safety", 1)].instrument
        yield Live(base, app, tokens, instrument)
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture(scope="module")
def browser(chromium_path: str) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS)
        try:
            yield instance
        finally:
            instance.close()


def _answer(page: Any, item: Item, value: Any, *, keyboard: bool) -> None:
    """Answer one question the way a person would: Space on a focused choice, or typing."""
    if item.type == "text":
        field = page.locator(f"#{item.id}--text")
        field.fill("")
        field.focus()
        page.keyboard.type(str(value))
        return
    values = value if isinstance(value, list) else [value]
    for v in values:
        choice = page.locator(f"#{item.id}-{v}")
        if keyboard:
            choice.focus()
            page.keyboard.press("Space")
        else:
            group = page.get_by_role("group", name=item.text.get(page.locator("html").get_attribute("lang")))
            group.get_by_label(_label(page, f"{item.id}-{v}"), exact=True).check()
        assert choice.is_checked()


def _first_input(item: Item) -> str:
    if item.type == "text":
        return f"{item.id}--text"
    first = {"likert5": "1", "likert7": "1", "nps": "0"}.get(item.type) or item.options[0].id
    return f"{item.id}-{first}"


def _label(page: Any, input_id: str) -> str:
    return str(page.locator(f'label[for="{input_id}"]').inner_text()).strip()


def _watch_console(page: Any) -> list[str]:
    """Console errors (a CSP violation, a missing resource), except the 422 of a page re-shown on purpose."""
    problems: list[str] = []

    def on_console(msg: Any) -> None:
        if msg.type == "error" and "status of 422" not in msg.text:
            problems.append(msg.text)

    page.on("console", on_console)
    page.on("pageerror", lambda exc: problems.append(str(exc)))
    return problems


def _stored(live: Live) -> tuple[list[Response], list[Invitation]]:
    with Session(live.app.state.engine) as session:
        return list(session.scalars(select(Response))), list(session.scalars(select(Invitation)))


def test_survey_in_a_browser(live: Live, browser: Any, tmp_path: Path) -> None:
    instrument = live.instrument
    sections = instrument.sections
    expected: dict[str, dict[str, Any]] = {}

    # 1. Dutch (from the browser's language), by keyboard: Space on choices, Enter on "Volgende".
    context = browser.new_context(locale="nl-NL")
    page = context.new_page()
    console = _watch_console(page)
    page.goto(f"{live.base}/s/{live.tokens[0]}")
    assert page.locator("html").get_attribute("lang") == "nl"
    assert (
        page.locator("#privacy").is_visible()
        and WORDS["nl"]["privacy_text"][:40] in page.locator("#privacy").inner_text()
    )
    answers: dict[str, Any] = {}
    for number, section in enumerate(sections, start=1):
        assert page.get_by_role("heading", name=section.title.nl).is_visible()
        assert page.locator("progress").get_attribute("value") == str(number)
        page_answers = answers_for(section.items, variant=number)
        for item in section.items:
            _answer(page, item, page_answers[item.id], keyboard=True)
        answers.update(page_answers)
        button = page.get_by_role("button", name="Versturen" if number == len(sections) else "Volgende")
        button.focus()
        outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
        assert outline != "none"  # focus is visible
        with page.expect_navigation():
            page.keyboard.press("Enter")
    assert page.get_by_role("heading", name="Bedankt!").is_visible()
    expected[live.tokens[0]] = answers
    # Back to the link: change one answer on page 1, Back and Next keep what was stored.
    page.goto(f"{live.base}/s/{live.tokens[0]}?page=1")
    first = sections[0].items[0]
    assert page.locator(f"#{first.id}-{answers[first.id]}").is_checked() if first.type != "text" else True
    assert console == []
    context.close()

    # 2. English, skipping a required question: the error summary names it, the field is marked, then fixed.
    required = next(item for item in instrument.items if item.required)
    context = browser.new_context(locale="nl-NL")
    page = context.new_page()
    console = _watch_console(page)
    page.goto(f"{live.base}/s/{live.tokens[1]}?lang=en")
    assert page.locator("html").get_attribute("lang") == "en"
    answers = {}
    for number, section in enumerate(sections, start=1):
        page_answers = answers_for(section.items, variant=number + 5)
        for item in section.items:
            if item is not required:
                _answer(page, item, page_answers[item.id], keyboard=False)
        if required in section.items:
            with page.expect_navigation():
                page.get_by_role("button", name="Next" if number < len(sections) else "Send").click()
            summary = page.locator(".error-summary")
            assert summary.is_visible()
            assert "Please answer this question; it is required." in summary.inner_text()
            assert page.title().startswith("Error: ")
            error = page.locator(f"#{required.id}--error")
            assert error.is_visible()
            described = page.locator(f"#{required.id}--question").get_attribute("aria-describedby") or ""
            assert f"{required.id}--error" in described.split()
            summary.get_by_role("link").first.click()
            assert page.url.endswith("#" + _first_input(required))
            _answer(page, required, page_answers[required.id], keyboard=True)
        answers.update(page_answers)
        with page.expect_navigation():
            page.get_by_role("button", name="Send" if number == len(sections) else "Next").click()
        if number < len(sections):
            # (a fragment followed from the error summary may stay on the URL; it names nothing on later pages)
            assert re.search(rf"\?page={number + 1}&lang=en(#.*)?$", page.url)
    assert page.get_by_role("heading", name="Thank you!").is_visible()
    expected[live.tokens[1]] = answers
    assert console == []
    context.close()

    # 3. A phone: no sideways scrolling on any page; a screenshot for people to look at.
    context = browser.new_context(viewport={"width": 390, "height": 844}, device_scale_factor=2, is_mobile=True)
    page = context.new_page()
    for number in range(1, len(sections) + 1):
        page.goto(f"{live.base}/s/{live.tokens[2]}?page={number}&lang=nl")
        overflow = page.evaluate("[document.documentElement.scrollWidth, document.documentElement.clientWidth]")
        assert overflow[0] <= overflow[1], f"page {number} scrolls sideways: {overflow}"
        page.screenshot(path=str(tmp_path / f"phone-page-{number}.png"), full_page=True)
    # Touch targets: every choice is at least 44 CSS pixels high.
    heights = page.eval_on_selector_all(".choice", "els => els.map(e => e.getBoundingClientRect().height)")
    assert heights and min(heights) >= 44
    context.close()
    assert (tmp_path / "phone-page-1.png").stat().st_size > 0

    # 4. What the database holds: the answers, complete, and nothing that pairs a response with an invitation.
    stored, invitations = _stored(live)
    assert len(stored) == 2  # the third link only looked
    secret = live.app.state.secret
    by_mac = {row.token_mac: row for row in stored}
    for token, answers in expected.items():
        row = by_mac[links.token_mac(secret, token)]
        assert row.answers == answers and row.complete is True
    invitation_ids = {str(inv.id) for inv in invitations} | {inv.token_hash for inv in invitations}
    for row in stored:
        assert re.fullmatch(r"[0-9a-f]{32}", row.id) and row.id not in invitation_ids
        assert row.token_mac not in invitation_ids
        assert not hasattr(row, "invitation_id") and not hasattr(row, "created_at")
