"""GET /waves/{id}/drivers on a wave answered through the web form: correlations worked out here from the posted
answers, only for published cells of 30 and more, and focus areas that follow their rule."""

from __future__ import annotations

import csv
import io

from fastapi import FastAPI
from fastapi.testclient import TestClient
from scipy import stats as sps
from sqlalchemy import select

from service.models import AuditEntry
from tests.factories import make_key
from tests.results.conftest import Wave
from tests.results.test_results import construct_scores, respondents


def test_drivers_of_the_organisation_from_the_answers(client: TestClient, closed: Wave) -> None:
    answer = client.get(closed.url("drivers"), headers=closed.dashboard)
    assert answer.status_code == 200, answer.text
    out = answer.json()
    assert (out["min_n"], out["strong"]) == (30, 0.3)
    shown = {u["unit"]: u for u in out["units"]}
    assert "org" in shown and all(u["available"] for u in out["units"])
    org = shown["org"]
    people = respondents(closed, "org")
    pairs = {(r["outcome"], r["construct"]) for r in org["relations"]}
    # eNPS against every construct but itself; intention to stay against every construct but the one it is in
    constructs = {c.id for c in closed.instrument.constructs}
    assert pairs == {("enps", c) for c in constructs - {"enps"}} | {
        ("intention_to_stay", c) for c in constructs - {"enps", "career_ambition"}
    }
    for relation in org["relations"]:
        x = construct_scores(closed.instrument, relation["construct"], people)
        y = [p["enps"] if relation["outcome"] == "enps" else p["ca_future_here"] for p in people]
        assert relation["n"] == len(people) >= 30
        if len(set(x)) == 1 or len(set(y)) == 1:  # no spread: no correlation (the form's answers repeat in cycles)
            assert relation["r"] is None and relation["ci_low"] is None
            continue
        expected = sps.pearsonr(x, y)
        low, high = expected.confidence_interval(0.95)
        assert abs(relation["r"] - expected.statistic) < 1e-9
        assert abs(relation["ci_low"] - low) < 1e-6 and abs(relation["ci_high"] - high) < 1e-6
    for area in org["focus_areas"]:  # the rule: strong, interval above 0, below the organisation's own mean
        assert area["r"] >= 0.3 and area["ci_low"] > 0 and area["gap"] < 0
    assert [a["rank"] for a in org["focus_areas"]] == list(range(1, len(org["focus_areas"]) + 1))


def test_units_without_drivers_say_why(app: FastAPI, client: TestClient, closed: Wave) -> None:
    def unit(key: str) -> dict:
        answer = client.get(closed.url("drivers"), params={"unit": key}, headers=closed.hr)
        assert answer.status_code == 200, answer.text
        (found,) = answer.json()["units"]
        return found

    team1 = unit("team1")  # 10 respondents
    assert (team1["available"], team1["reason"], team1["relations"]) == (False, "too_few", [])
    team7 = unit("team7")  # 2 respondents: hidden
    assert (team7["available"], team7["reason"]) == (False, "primary")
    assert client.get(closed.url("drivers"), params={"unit": "nowhere"}, headers=closed.hr).status_code == 404
    with app.state.sessionmaker() as session:
        reads = session.scalars(select(AuditEntry).where(AuditEntry.action == "results.read")).all()
    assert [(e.wave_id, e.detail) for e in reads] == [
        (closed.id, {"view": "drivers", "unit": "team1"}),
        (closed.id, {"view": "drivers", "unit": "team7"}),
    ]  # the refused read (unknown unit) did not happen


def test_drivers_as_csv(client: TestClient, closed: Wave) -> None:
    answer = client.get(
        closed.url("drivers"), params={"unit": "org"}, headers={**closed.dashboard, "accept": "text/csv"}
    )
    rows = list(csv.DictReader(io.StringIO(answer.text)))
    assert rows and {r["unit"] for r in rows} == {"org"}
    focus = [r for r in rows if r["focus_rank"]]
    assert all(float(r["gap"]) < 0 for r in focus)
    json_out = client.get(closed.url("drivers"), params={"unit": "org"}, headers=closed.dashboard).json()
    assert len(rows) == len(json_out["units"][0]["relations"])


def test_an_open_wave_has_no_drivers(app: FastAPI, client: TestClient, open_survey: Wave) -> None:
    assert client.get(open_survey.url("drivers"), headers=make_key(app, "dashboard")).status_code == 409


def test_a_manager_reads_the_drivers_of_its_part_only(app: FastAPI, client: TestClient, closed: Wave) -> None:
    manager = make_key(app, "manager", unit="div1")
    everything = client.get(closed.url("drivers"), headers=closed.dashboard).json()
    assert "org" in {u["unit"] for u in everything["units"]}
    mine = client.get(closed.url("drivers"), headers=manager).json()
    part = {"div1", "dep1", "dep2", "team1", "team2", "team3", "team4"}
    assert mine["units"] == [u for u in everything["units"] if u["unit"] in part]
    assert client.get(closed.url("drivers"), params={"unit": "org"}, headers=manager).status_code == 404
    team = client.get(closed.url("drivers"), params={"unit": "team1"}, headers=manager).json()["units"]
    assert [(u["unit"], u["reason"]) for u in team] == [("team1", "too_few")]
    assert client.get("/api/v1/outcomes", headers=manager).status_code == 404  # outcomes: hr and dashboard only
