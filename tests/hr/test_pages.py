"""The HR pages over a wave answered and closed through the API: each figure on a page is the API's own figure
in the reader's language; a hidden cell shows its reason and no number; a manager sees their part only."""

from __future__ import annotations

import gzip
import html
import json
import re
from typing import Any

from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from service.exports import columns
from service.keys import repository
from service.models import AuditEntry, WaveResult
from service.models.base import utcnow
from service.results.service import encode, store
from tests.factories import create_wave, invite, open_wave
from tests.hr.conftest import Closed, sign_in

REASONS_NL = {
    "primary": "minder dan 3 mensen",
    "complementary": "verborgen om een andere groep te beschermen",
    "range": "verborgen om een andere groep te beschermen",
    "empty": "geen antwoorden",
}
PART = {"div1", "dep1", "dep2", "team1", "team2", "team3", "team4"}


def text(fragment: str) -> str:
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", fragment)).split())


def heatmap_rows(page: str) -> dict[str, list[tuple[str, str]]]:
    """Unit name -> its cells as (class, text), read from the heatmap page's table."""
    rows = {}
    for row in re.findall(r'<tr id="(?:row|cut)-[^"]+"[^>]*>(.*?)</tr>', page, flags=re.S):
        head = re.search(r'<th scope="row"[^>]*>(.*?)</th>', row, flags=re.S)
        assert head is not None
        name = text(re.sub(r'<a class="toggle".*?</a>', "", head.group(1), flags=re.S))
        cells = re.findall(r'<td class="cell ([^"]*)">(.*?)</td>', row, flags=re.S)
        rows[name] = [(css, text(content)) for css, content in cells]
    return rows


def nl(value: float) -> str:
    return f"{value:.1f}".replace(".", ",")


def api(client: TestClient, app: FastAPI, closed: Closed, what: str, role: str = "hr") -> Any:
    headers = {"Authorization": f"Bearer {closed.keys[role]}"}
    return client.get(f"/api/v1/waves/{closed.wave.id}/{what}", headers=headers)


def test_heatmap_shows_the_stored_figures_and_hidden_cells_say_why(
    app: FastAPI, pages: TestClient, closed_wave: Closed
) -> None:
    sign_in(pages, closed_wave.keys["dashboard"])
    page = pages.get(closed_wave.page("?open=*"))
    assert page.status_code == 200
    rows = heatmap_rows(page.text)
    heat = api(pages, app, closed_wave, "heatmap").json()
    names = {"org": "Organisation (referentie)", **{f"div{d}": f"Division {d}" for d in (1, 2)}}
    names |= {f"dep{d}": f"Department {d}" for d in (1, 2, 3)} | {f"team{t}": f"Team{t}" for t in range(1, 8)}
    assert list(rows) == [names[row["unit"]] for row in heat["units"]]  # every unit, parents first
    hidden = 0
    for row in heat["units"]:
        shown = rows[names[row["unit"]]]
        for (css, content), cell in zip(shown, row["constructs"], strict=True):
            if cell["suppressed"]:
                hidden += 1
                assert css == "hidden-cell" and content == REASONS_NL[cell["reason"]]
                assert not re.search(r"\d", content.replace("3 mensen", ""))  # a reason, never a figure
            else:
                assert content.startswith(nl(cell["mean"])) and f"n = {cell['n']}" in content
    assert hidden  # team7 answered twice: hidden
    totals = heat["publication"]["totals"]  # what the guard published of the groups of k or more, in words
    assert f"{totals['published']} van {totals['eligible']} groepen van 3 of meer getoond" in page.text
    settings = "Minimale groepsgrootte"
    assert settings not in page.text  # the wave's settings are for HR


def test_heatmap_cuts_and_csv(app: FastAPI, pages: TestClient, closed_wave: Closed) -> None:
    sign_in(pages, closed_wave.keys["hr"])
    page = pages.get(closed_wave.page("?by=location"))
    assert 'option value="location" selected' in page.text and "Minimale groepsgrootte: 3" in page.text
    rows = heatmap_rows(page.text)
    assert "location: A" in rows and "location: B" in rows
    csv = pages.get(closed_wave.page("/heatmap.csv"))
    assert csv.status_code == 200 and csv.headers["content-type"].startswith("text/csv")
    with_api = pages.get(
        f"/api/v1/waves/{closed_wave.wave.id}/heatmap",
        headers={"Authorization": f"Bearer {closed_wave.keys['hr']}", "accept": "text/csv"},
    )
    assert csv.text == with_api.text  # the page's table is the API's
    cut = pages.get(closed_wave.page("/heatmap.csv?by=location")).text.splitlines()
    assert cut[0] == "unit,parent,attribute,value,construct,n,mean,favourable,suppressed,reason"
    assert any(line.startswith("team1,dep1,location,A,psych_safety,") for line in cut)


def test_unit_page_and_flags_page(app: FastAPI, pages: TestClient, closed_wave: Closed) -> None:
    sign_in(pages, closed_wave.keys["hr"], lang="en")
    unit = pages.get(closed_wave.page("/units/dep1"))
    assert unit.status_code == 200
    results = api(pages, app, closed_wave, "results?unit=dep1").json()
    total = results["units"][0]["total"]
    safety = next(c for c in total["constructs"] if c["construct"] == "psych_safety")
    assert f"{safety['mean']:.2f}" in unit.text and f"n = {safety['n']}" in unit.text
    assert "Psychological safety" in unit.text and "<svg" in unit.text and 'role="img"' in unit.text
    assert "Free-text answers" in unit.text  # HR reads comments (rule 6 decides which)
    hidden = pages.get(closed_wave.page("/units/team7"))
    assert "This unit&#39;s results are hidden: fewer than 3 people." in hidden.text
    assert 'class="big-figure"' not in hidden.text

    flags = pages.get(closed_wave.page("/flags"))
    assert flags.status_code == 200
    every = api(pages, app, closed_wave, "flags").json()["flags"]
    for flag in every:
        assert html.escape(flag["message_en"], quote=True) in flags.text
    severities = re.findall(r'class="flag severity-(\w+)"', flags.text)
    assert severities == sorted(severities, key=lambda s: s != "high")

    sign_in(pages, closed_wave.keys["dashboard"])
    assert "Open antwoorden" not in pages.get(closed_wave.page("/units/dep1")).text  # comments are HR's


def test_manager_sees_their_part_and_the_organisation_as_reference(
    app: FastAPI, pages: TestClient, closed_wave: Closed
) -> None:
    sign_in(pages, closed_wave.keys["manager"])
    page = pages.get(closed_wave.page("?open=*"))
    rows = heatmap_rows(page.text)
    assert next(iter(rows)) == "Organisation (referentie)"
    assert len(rows) == 1 + len(PART)
    assert "Division 2" not in rows and "Team5" not in page.text
    assert f'href="/hr/waves/{closed_wave.wave.id}/units/org"' not in page.text
    for unit in ("team5", "div2", "org", "nowhere"):
        refused = pages.get(closed_wave.page(f"/units/{unit}"))
        assert refused.status_code == 404 and "Niet gevonden" in refused.text, unit
    assert pages.get(closed_wave.page("/units/team3")).status_code == 200
    lines = pages.get(closed_wave.page("/heatmap.csv?by=location")).text.splitlines()[1:]
    assert {line.split(",")[0] for line in lines} == {"org"} | PART
    assert not any(line.startswith("org,") and ",location," in line for line in lines)
    flags = pages.get(closed_wave.page("/flags")).text
    mine = [f for f in api(pages, app, closed_wave, "flags").json()["flags"] if f["unit"] in PART]
    assert len(re.findall(r'class="flag severity-', flags)) == len(mine)
    waves = pages.get("/hr/waves").text
    assert "Instellingen" not in waves and "Resultaten van" in waves


def test_a_figure_withheld_inside_a_published_cell_is_shown_as_withheld(
    app: FastAPI, pages: TestClient, closed_wave: Closed
) -> None:
    with Session(app.state.engine) as session:
        row = session.get(WaveResult, closed_wave.wave.id)
        assert row is not None
        table = json.loads(gzip.decompress(row.table))
        cell = next(c for c in table["cells"] if c["unit"] == "dep1" and c["attribute"] is None)
        assert not cell["suppressed"]
        figures = next(f for f in cell["constructs"] if f["construct"] == "development")
        figures.update(mean=None, sd=None, ci_low=None, ci_high=None, favourable=None, index=None)
        built_at = utcnow()
        store(session, closed_wave.wave.id, encode(table), columns.of(table, built_at), built_at)
        session.commit()
    sign_in(pages, closed_wave.keys["hr"])
    rows = heatmap_rows(pages.get(closed_wave.page()).text)
    heat = api(pages, app, closed_wave, "heatmap").json()
    position = [c["construct"] for c in heat["units"][0]["constructs"]].index("development")
    css, content = rows["Department 1"][position]
    assert css == "hidden-cell" and content == "niet getoond om deelnemers te beschermen"
    unit = pages.get(closed_wave.page("/units/dep1")).text
    section = unit.split('id="c-development"')[1].split("</section>")[0]
    assert "niet getoond om deelnemers te beschermen" in section and "big-figure" not in section


def test_pages_of_waves_without_results(app: FastAPI, pages: TestClient, closed_wave: Closed) -> None:
    opened = create_wave(pages, closed_wave.wave.hr, name="Pulse")
    invite(pages, closed_wave.wave.hr, opened["id"], per_team=6)
    open_wave(pages, closed_wave.wave.hr, opened["id"])
    sign_in(pages, closed_wave.keys["hr"])
    waves = pages.get("/hr/waves").text
    assert "Pulse" in waves and "nog niet" in waves
    assert "0% van 42 uitgenodigden (naar beneden afgerond op 5%)" in waves  # open: a rate in steps, no count
    assert "89% (62 van 70)" in waves  # closed: as the stored table published it
    not_yet = pages.get(f"/hr/waves/{opened['id']}")
    assert not_yet.status_code == 409 and "Nog geen resultaten" in not_yet.text
    assert not_yet.headers["content-type"].startswith("text/html")
    for path in ("/hr/waves/999999", "/hr/waves/abc", "/hr/waves/999999/flags", "/hr/nothing"):
        missing = pages.get(path)
        assert missing.status_code == 404, path


def test_the_tree_opens_and_folds_by_links(app: FastAPI, pages: TestClient, closed_wave: Closed) -> None:
    sign_in(pages, closed_wave.keys["hr"])
    default = heatmap_rows(pages.get(closed_wave.page()).text)
    assert "Department 1" in default and "Team1" not in default  # the top two levels open
    page = pages.get(closed_wave.page("?open=*&fold=div1")).text
    rows = heatmap_rows(page)
    assert "Division 1" in rows and "Department 1" not in rows and "Team5" in rows
    toggle = re.search(r'<a class="toggle" href="([^"]+)" aria-expanded="false"><span aria-hidden="true">\+', page)
    assert toggle is not None and html.unescape(toggle.group(1)).startswith("?open=*#row-")  # unfolds div1 again
    assert list(heatmap_rows(pages.get(closed_wave.page("?open=")).text)) == ["Organisation (referentie)"]


def test_page_reads_are_audited_like_the_apis(app: FastAPI, pages: TestClient, closed_wave: Closed) -> None:
    sign_in(pages, closed_wave.keys["hr"])
    with Session(app.state.engine) as session:
        key = repository.find_active(session, closed_wave.keys["hr"])
        assert key is not None
        before = session.scalar(select(func.max(AuditEntry.id))) or 0
    for path in ("?by=location", "/units/dep1", "/flags", "/heatmap.csv"):
        assert pages.get(closed_wave.page(path)).status_code == 200, path
    with Session(app.state.engine) as session:
        entries = session.scalars(select(AuditEntry).where(AuditEntry.id > before).order_by(AuditEntry.id)).all()
    assert [(e.action, e.by_key_id, e.wave_id, e.detail) for e in entries] == [
        ("results.read", key.id, closed_wave.wave.id, {"view": "heatmap", "by": "location", "via": "pages"}),
        ("results.read", key.id, closed_wave.wave.id, {"view": "results", "unit": "dep1", "via": "pages"}),
        ("comments.read", key.id, closed_wave.wave.id, {"unit": "dep1", "via": "pages"}),
        ("results.read", key.id, closed_wave.wave.id, {"view": "flags", "via": "pages"}),
        ("results.read", key.id, closed_wave.wave.id, {"view": "heatmap", "by": None, "via": "pages"}),
    ]
