"""The HR pages in a real Chromium on the demo: hr, dashboard and manager walk them (hr by keyboard alone), hidden
cells show no figure, a manager cannot reach another unit, axe-core finds no serious or critical violation on any
page, and the heatmap and a unit page are photographed at phone and laptop sizes.

``PEIL_SCREENSHOTS=docs .venv/bin/pytest tests/hr/test_browser.py -k screenshots`` refreshes the README's.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.forms.test_browser import CHROMIUM, CHROMIUM_ARGS
from tests.hr.conftest import MANAGED, Demo

pytestmark = pytest.mark.browser

PHONE = {"width": 390, "height": 844}
LAPTOP = {"width": 1280, "height": 800}
REASONS = {
    "nl": {"minder dan 5 mensen", "verborgen om een andere groep te beschermen", "geen antwoorden"},
    "en": {"fewer than 5 people", "hidden to protect another group", "no answers"},
}


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        message = f"{CHROMIUM} is missing (install Debian's chromium: `make browser`)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield instance
        finally:
            instance.close()


def _api(demo: Demo, path: str) -> Any:
    headers = {"Authorization": f"Bearer {demo.keys['hr']}"}
    return httpx.get(f"{demo.base}/api/v1{path}", headers=headers, timeout=10).json()


def _hidden_team(demo: Demo, under: str | None = None) -> str:
    """A team whose total the demo's table hides (optionally one below ``under``)."""
    rows = _api(demo, f"/waves/{demo.wave_id}/heatmap")["units"]
    parents = {r["unit"]: r["parent"] for r in rows}

    def below(unit: str) -> bool:
        while unit is not None:
            if unit == under:
                return True
            unit = parents[unit]
        return under is None

    return next(r["unit"] for r in rows if r["suppressed"] and r["unit"].startswith("team") and below(r["unit"]))


def _console(page: Any) -> list[str]:
    problems: list[str] = []
    page.on("console", lambda msg: problems.append(msg.text) if msg.type == "error" else None)
    page.on("pageerror", lambda exc: problems.append(str(exc)))
    return problems


def _sign_in(context: Any, demo: Demo, role: str, lang: str = "nl") -> Any:
    page = context.new_page()
    page.goto(f"{demo.base}/hr/login?lang={lang}")
    page.fill("#key", demo.keys[role])
    with page.expect_navigation():
        page.get_by_role("button", name="Aanmelden" if lang == "nl" else "Sign in").click()
    assert page.url.endswith("/hr/waves")
    return page


def _hidden_cells_show_no_figure(page: Any, lang: str) -> int:
    texts = page.eval_on_selector_all("td.hidden-cell", "els => els.map(e => e.innerText.trim())")
    for value in texts:
        assert value in REASONS[lang], value  # a reason in words, never a figure
    return len(texts)


def _focus_shows(page: Any) -> None:
    outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert outline not in ("", "none"), "the focused element shows no focus"


def _tab_to(page: Any, selector: str, limit: int = 80) -> None:
    """Press Tab until the element matching ``selector`` has the focus (as a keyboard user would)."""
    for _ in range(limit):
        page.keyboard.press("Tab")
        if page.evaluate("sel => document.activeElement && document.activeElement.matches(sel)", selector):
            _focus_shows(page)
            return
    raise AssertionError(f"Tab never reached {selector}")


def test_hr_walks_the_demo_by_keyboard(browser: Any, demo_server: Demo) -> None:
    demo, wave = demo_server, demo_server.wave_id
    context = browser.new_context(locale="nl-NL")
    page = context.new_page()
    console = _console(page)
    page.goto(f"{demo.base}/hr/waves")  # not signed in: the form, and back here after
    assert "/hr/login" in page.url and page.locator("html").get_attribute("lang") == "nl"
    _tab_to(page, "#key")
    page.keyboard.type(demo.keys["hr"])
    with page.expect_navigation():
        page.keyboard.press("Enter")
    assert page.url.endswith("/hr/waves") and demo.keys["hr"] not in page.content()
    assert page.get_by_role("heading", name="Metingen").is_visible()

    _tab_to(page, f'a[href="/hr/waves/{wave}"]')
    with page.expect_navigation():
        page.keyboard.press("Enter")
    assert page.get_by_role("heading", name="Overzicht per team").is_visible()
    assert page.locator("tr.row-reference").first.inner_text().startswith("−")
    assert _hidden_cells_show_no_figure(page, "nl") == 0  # departments and up are all shown on the demo

    # Expand a department by keyboard: its teams appear, some hidden, each with its reason and no figure.
    _tab_to(page, 'a.toggle[aria-expanded="false"]')
    before = page.locator("tbody tr").count()
    with page.expect_navigation():
        page.keyboard.press("Enter")
    assert page.locator("tbody tr").count() > before
    assert page.locator('a.toggle[aria-expanded="true"]').count() == 6  # organisation, 4 divisions, 1 department
    page.goto(f"{demo.base}/hr/waves/{wave}?open=*")
    assert _hidden_cells_show_no_figure(page, "nl") > 0

    # The cut selector, by keyboard.
    _tab_to(page, "#by")
    page.keyboard.press("ArrowDown")
    _tab_to(page, ".cut-form button")
    with page.expect_navigation():
        page.keyboard.press("Enter")
    assert "by=tenure_band" in page.url and page.locator("tr.row-cut").count() > 0
    _hidden_cells_show_no_figure(page, "nl")

    # A unit, its chart's text alternative and the figures behind it (a <details> opened by keyboard).
    _tab_to(page, f'a[href="/hr/waves/{wave}/units/div-1"]')
    with page.expect_navigation():
        page.keyboard.press("Enter")
    assert page.get_by_role("heading", name="Operations", exact=True).is_visible()
    assert page.get_by_role("img").first.get_attribute("aria-label")
    _tab_to(page, "details.data-details summary")
    page.keyboard.press("Enter")
    assert page.locator("details.data-details[open]").count() == 1
    page.goto(f"{demo.base}/hr/waves/{wave}/units/{_hidden_team(demo)}")
    assert page.locator(".hidden-note").first.inner_text().startswith("De resultaten van deze eenheid zijn verborgen")
    assert page.locator(".big-figure").count() == 0

    page.goto(f"{demo.base}/hr/waves/{wave}/flags")
    assert page.locator("li.flag").count() > 0 and "Psychologische veiligheid: gemiddeld" in page.content()

    # Language and sign-out are forms: by keyboard too; signing out ends the session.
    _tab_to(page, 'button[lang="en"]')
    with page.expect_navigation():
        page.keyboard.press("Enter")
    assert page.locator("html").get_attribute("lang") == "en" and "/flags" in page.url
    _tab_to(page, "header form[action$='/hr/logout'] button")
    with page.expect_navigation():
        page.keyboard.press("Enter")
    assert "/hr/login?bye=1" in page.url
    page.goto(f"{demo.base}/hr/waves")
    assert "/hr/login" in page.url
    assert console == []
    context.close()


def test_dashboard_and_manager_see_what_they_may(browser: Any, demo_server: Demo) -> None:
    demo, wave = demo_server, demo_server.wave_id
    context = browser.new_context(locale="en-GB")
    page = _sign_in(context, demo, "dashboard", "en")
    page.goto(f"{demo.base}/hr/waves/{wave}")
    assert page.locator(".settings-box").count() == 0  # the wave's settings are HR's
    page.goto(f"{demo.base}/hr/waves/{wave}/units/div-1")
    assert page.get_by_role("heading", name="Free-text answers").count() == 0  # so are comments
    context.close()

    context = browser.new_context(locale="en-GB")
    page = _sign_in(context, demo, "manager", "en")
    console = _console(page)
    assert f"manager of {MANAGED}" in page.inner_text("header")
    page.goto(f"{demo.base}/hr/waves/{wave}?open=*")
    names = page.eval_on_selector_all("tbody th[scope=row]", "els => els.map(e => e.innerText.trim())")
    assert names[0].endswith("(reference)")
    part = {r["unit"] for r in _api(demo, f"/waves/{wave}/heatmap")["units"] if _in(demo, r["unit"], MANAGED)}
    assert len(names) == 1 + len(part)
    assert _hidden_cells_show_no_figure(page, "en") > 0
    hrefs = page.eval_on_selector_all("tbody a[href*='/units/']", "els => els.map(e => e.getAttribute('href'))")
    assert {h.rsplit("/", 1)[1] for h in hrefs} == part
    for other in ("div-1", "team-001", "demo"):
        response = page.goto(f"{demo.base}/hr/waves/{wave}/units/{other}")
        assert response is not None and response.status == 404
        assert page.get_by_role("heading", name="Not found").is_visible()
    response = page.goto(f"{demo.base}/hr/waves/{wave}/units/{_hidden_team(demo, MANAGED)}")
    assert response is not None and response.status == 200
    assert console == [] or all("404" in c for c in console)
    context.close()


def _in(demo: Demo, unit: str, under: str) -> bool:
    parents = {r["unit"]: r["parent"] for r in _api(demo, f"/waves/{demo.wave_id}/heatmap")["units"]}
    key: str | None = unit
    while key is not None:
        if key == under:
            return True
        key = parents[key]
    return False


def test_every_page_passes_axe(browser: Any, demo_server: Demo) -> None:
    from axe_playwright_python.sync_playwright import Axe

    demo, wave = demo_server, demo_server.wave_id
    axe = Axe()
    hidden = _hidden_team(demo, MANAGED)
    pages = [
        "/hr/waves",
        f"/hr/waves/{wave}",
        f"/hr/waves/{wave}?open=*&by=location",
        f"/hr/waves/{wave}/units/{MANAGED}",
        f"/hr/waves/{wave}/units/{hidden}",
        f"/hr/waves/{wave}/flags",
        f"/hr/waves/{wave}/units/nowhere",
    ]
    found: dict[str, list[str]] = {}
    lesser: set[str] = set()  # moderate and minor findings, printed for the record
    for role, lang in (("hr", "nl"), ("manager", "en")):
        context = browser.new_context(locale="nl-NL" if lang == "nl" else "en-GB")
        login = context.new_page()
        login.goto(f"{demo.base}/hr/login?lang={lang}")
        found[f"{role} /hr/login"] = _serious(axe.run(login), lesser)
        login.fill("#key", "peil_wrong")
        login.get_by_role("button", name="Aanmelden" if lang == "nl" else "Sign in").click()
        found[f"{role} /hr/login (refused)"] = _serious(axe.run(login), lesser)
        page = _sign_in(context, demo, role, lang)
        for path in pages:
            page.goto(demo.base + path)
            found[f"{role} {path}"] = _serious(axe.run(page), lesser)
        context.close()
    print("axe-core, serious or critical violations per page:", {k: len(v) for k, v in found.items()})
    print("axe-core, moderate or minor:", sorted(lesser) or "none")
    assert {k: v for k, v in found.items() if v} == {}


def _serious(results: Any, lesser: set[str]) -> list[str]:
    lesser.update(f"{v['id']} ({v['impact']})" for v in results.response["violations"])
    return [
        f"{v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes']][:3]}"
        for v in results.response["violations"]
        if v["impact"] in ("serious", "critical")
    ]


def test_screenshots_at_phone_and_laptop_sizes(browser: Any, demo_server: Demo, tmp_path: Path) -> None:
    demo, wave = demo_server, demo_server.wave_id
    shots = []
    for size_name, viewport in (("phone", PHONE), ("laptop", LAPTOP)):
        context = browser.new_context(viewport=viewport, device_scale_factor=1, locale="en-GB")
        page = _sign_in(context, demo, "hr", "en")
        # The heatmap with one department of the managed division open: colours, hidden teams, their reasons.
        heatmap = f"/hr/waves/{wave}?open=demo&open={MANAGED}&open={MANAGED}-dep-1"
        for page_name, path in (("heatmap", heatmap), ("unit", f"/hr/waves/{wave}/units/{MANAGED}")):
            page.goto(demo.base + path)
            width = page.evaluate("[document.documentElement.scrollWidth, document.documentElement.clientWidth]")
            assert width[0] <= width[1], f"{page_name} scrolls sideways on a {size_name}: {width}"
            shot = tmp_path / f"hr-{page_name}-{size_name}.png"
            page.screenshot(path=str(shot), full_page=page_name == "heatmap")
            assert shot.stat().st_size > 10_000
            shots.append(shot)
        context.close()
    target = os.environ.get("PEIL_SCREENSHOTS")
    if target:  # the two the README shows
        for shot in shots:
            if shot.name in ("hr-heatmap-laptop.png", "hr-unit-phone.png"):
                shutil.copy(shot, Path(target) / shot.name)
