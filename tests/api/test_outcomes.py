"""PUT/GET /api/v1/outcomes: counts in (JSON or CSV), guarded KPIs out, bad uploads refused whole with row numbers."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from service.models import AuditEntry, OutcomeCount, OutcomePeriod, Wave
from tests.factories import make_key, put_tree

COUNTS = ("headcount_start", "headcount_end", "leavers", "moves_in", "moves_out", "promotions", "months_waited")
TEAMS = {  # per team: start, end, leavers, moves in, moves out, promotions, months waited
    "team1": (20, 22, 2, 1, 1, 5, 60.0),
    "team2": (18, 18, 3, 0, 2, 5, 40.0),
    "team3": (25, 24, 1, 2, 0, 6, 90.0),
    "team4": (15, 16, 0, 1, 1, 0, 0.0),
    "team5": (30, 28, 4, 0, 3, 7, 70.0),
    "team6": (12, 12, 1, 1, 0, 1, 20.0),
    "team7": (3, 3, 1, 0, 0, 0, 0.0),  # too small to show on its own
}


def rows(period: str = "2026-Q1", teams: dict[str, tuple[Any, ...]] = TEAMS) -> list[dict[str, Any]]:
    return [{"unit_key": team, "period": period, **dict(zip(COUNTS, c, strict=True))} for team, c in teams.items()]


def csv_body(period: str = "2026-Q1") -> str:
    lines = [",".join(("unit_key", "period", *COUNTS))]
    lines += [",".join(map(str, (team, period, *c))) for team, c in TEAMS.items()]
    return "\n".join(lines) + "\n"


@pytest.fixture
def hr(app: FastAPI, client: TestClient) -> dict[str, str]:
    key = make_key(app, "hr")
    put_tree(client, key)
    return key


def put(client: TestClient, hr: dict[str, str], body: list[dict[str, Any]]) -> Any:
    return client.put("/api/v1/outcomes", json={"outcomes": body}, headers=hr)


def units(client: TestClient, headers: dict[str, str], **query: Any) -> dict[str, dict[str, Any]]:
    response = client.get("/api/v1/outcomes", params=query, headers=headers)
    assert response.status_code == 200, response.text
    (period,) = response.json()["periods"]
    return {u["unit"]: u for u in period["units"]}


def test_upload_and_read_the_kpis_worked_by_hand(app: FastAPI, client: TestClient, hr: dict[str, str], db) -> None:
    uploaded = put(client, hr, rows())
    assert uploaded.status_code == 200, uploaded.text
    assert uploaded.json() == {"rows": 7, "periods": [{"period": "2026-Q1", "units": 7, "replaced": False}]}
    out = client.get("/api/v1/outcomes", headers=make_key(app, "dashboard")).json()
    (period,) = out["periods"]
    assert (period["period"], period["kind"], period["starts_on"], period["ends_on"]) == (
        "2026-Q1",
        "quarter",
        "2026-01-01",
        "2026-03-31",
    )
    found = {u["unit"]: u for u in period["units"]}
    # dep1 = team1 + team2: headcount 38 -> 40 (mean 39), 5 leavers, 3 moves out, 10 promotions waiting 100 months
    dep1 = found["dep1"]
    assert (dep1["headcount_start"], dep1["headcount_end"], dep1["mean_headcount"]) == (38, 40, 39.0)
    assert (dep1["leavers"], dep1["moves_in"], dep1["moves_out"], dep1["promotions"]) == (5, 1, 3, 10)
    assert dep1["retention"] == pytest.approx(1 - 5 / 39)
    assert dep1["internal_mobility"] == pytest.approx(3 / 39)
    assert dep1["time_to_promotion"] == pytest.approx(10.0)
    org = found["org"]
    assert org["mean_headcount"] == pytest.approx((123 + 123) / 2)
    assert org["retention"] == pytest.approx(1 - 12 / 123)
    # team7 (3 people) is hidden, and so is one of what would give it away: dep3 - team5 - team6
    assert found["team7"]["suppressed"] and found["team7"]["reason"] == "primary"
    assert found["team7"]["retention"] is None and found["team7"]["leavers"] is None
    assert any(found[u]["suppressed"] for u in ("dep3", "team5", "team6"))
    # team6 has 1 promotion: its time to promotion is hidden while its rates show
    assert found["team6"]["suppressed"] or found["team6"]["time_to_promotion"] is None
    assert db.scalar(select(func.count()).select_from(OutcomeCount)) == 7
    entry = db.scalars(select(AuditEntry).where(AuditEntry.action == "outcomes.uploaded")).one()
    assert entry.detail == {"rows": 7, "periods": ["2026-Q1"]}
    read = db.scalars(select(AuditEntry).where(AuditEntry.action == "results.read")).one()  # who read, not what
    assert (read.key_name, read.wave_id) == ("dashboard-test", None)
    assert read.detail == {"view": "outcomes", "unit": None, "period": None}


def test_csv_in_and_out(app: FastAPI, client: TestClient, hr: dict[str, str]) -> None:
    uploaded = client.put("/api/v1/outcomes", content=csv_body("2026-03"), headers={**hr, "content-type": "text/csv"})
    assert uploaded.status_code == 200, uploaded.text
    answer = client.get("/api/v1/outcomes", params={"unit": "dep1"}, headers={**hr, "accept": "text/csv"})
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/csv")
    lines = answer.text.splitlines()
    assert lines[0].startswith("period,unit,parent,suppressed,reason,headcount_start,headcount_end,mean_headcount")
    assert lines[1].startswith("2026-03,dep1,div1,false,,38,40,39.0,5,1,3,10,")
    hidden = client.get("/api/v1/outcomes", params={"unit": "team7"}, headers={**hr, "accept": "text/csv"})
    assert hidden.text.splitlines()[1].startswith("2026-03,team7,dep3,true,primary,,,,")


def test_uploading_a_period_again_replaces_it(client: TestClient, hr: dict[str, str], db) -> None:
    assert put(client, hr, rows()).status_code == 200
    assert put(client, hr, rows("2026-Q2")).status_code == 200
    smaller = {team: c for team, c in TEAMS.items() if team in ("team1", "team2", "team3")}
    again = put(client, hr, rows("2026-Q1", smaller))
    assert again.json()["periods"] == [{"period": "2026-Q1", "units": 3, "replaced": True}]
    q1 = units(client, hr, period="2026-Q1")
    assert q1["div2"]["suppressed"] and q1["div2"]["reason"] == "empty"  # nobody counted there any more
    assert q1["org"]["headcount_start"] == 63
    counts = dict(db.execute(select(OutcomeCount.period, func.count()).group_by(OutcomeCount.period)).all())
    assert counts == {"2026-Q1": 3, "2026-Q2": 7}


@pytest.mark.parametrize(
    ("change", "row", "field", "reason"),
    [
        ({"leavers": -1}, 2, "leavers", "must not be negative"),
        ({"leavers": 23}, 1, "leavers", "23 leavers is more than the headcount (22)"),
        ({"moves_out": 30}, 1, "moves_out", "30 moves out is more than the headcount (22)"),
        ({"unit_key": "nowhere"}, 1, "unit_key", "unknown unit 'nowhere'"),
        ({"period": "2026-13"}, 1, "period", "'2026-13' is not a period"),
        ({"period": "2026-Q5"}, 1, "period", "'2026-Q5' is not a period"),
        ({"headcount_start": "many"}, 1, "headcount_start", "valid integer"),
        ({"months_waited": 5.0, "promotions": 0}, 1, "months_waited", "nobody was promoted"),
    ],
)
def test_a_bad_row_refuses_the_whole_upload(
    client: TestClient, hr: dict[str, str], db, change: dict[str, Any], row: int, field: str, reason: str
) -> None:
    body = rows()
    index = row - 1
    body[index] = {**body[index], **change}
    refused = put(client, hr, body)
    assert refused.status_code == 422, refused.text
    error = refused.json()["error"]
    assert error["code"] == "invalid" and "nothing was stored" in error["message"]
    assert any(d["row"] == row and d["field"] == field and reason in d["reason"] for d in error["details"]), error
    assert db.scalar(select(func.count()).select_from(OutcomeCount)) == 0
    assert db.scalar(select(func.count()).select_from(OutcomePeriod)) == 0


def test_every_problem_is_named_with_its_row(client: TestClient, hr: dict[str, str]) -> None:
    body = rows()
    body[0] = {**body[0], "leavers": 99}
    body[3] = {**body[3], "unit_key": "ghost"}
    body.append(dict(body[1]))  # team2 twice for the same period: rows 2 and 8
    details = put(client, hr, body).json()["error"]["details"]
    named = [(d["row"], d["field"]) for d in details]
    assert named == [(1, "leavers"), (2, "unit_key"), (4, "unit_key"), (8, "unit_key")]


@pytest.mark.parametrize(
    ("body", "content_type", "message"),
    [
        (b"{not json", "application/json", "not valid JSON"),
        (b'{"rows": []}', "application/json", '{"outcomes": [...]}'),
        (b'{"outcomes": []}', "application/json", "no rows"),
        (b"unit,period\nteam1,2026-Q1\n", "text/csv", "header"),
        (b"unit_key,period,headcount_start\nteam1,2026-Q1,3,4\n", "text/csv", "more fields"),
        (b"\xff\xfe", "text/csv", "not UTF-8"),
    ],
)
def test_malformed_bodies_are_refused(
    client: TestClient, hr: dict[str, str], db, body: bytes, content_type: str, message: str
) -> None:
    refused = client.put("/api/v1/outcomes", content=body, headers={**hr, "content-type": content_type})
    assert refused.status_code == 422, refused.text
    assert message in refused.json()["error"]["message"]
    assert db.scalar(select(func.count()).select_from(OutcomeCount)) == 0


def test_a_csv_row_missing_a_count_names_it(client: TestClient, hr: dict[str, str]) -> None:
    body = csv_body().replace("team3,2026-Q1,25,", "team3,2026-Q1,,")
    refused = client.put("/api/v1/outcomes", content=body, headers={**hr, "content-type": "text/csv"})
    assert refused.status_code == 422
    assert {"row": 3, "field": "headcount_start", "reason": "Field required"} in refused.json()["error"]["details"]


def test_who_may_do_what(app: FastAPI, client: TestClient, hr: dict[str, str]) -> None:
    dashboard = make_key(app, "dashboard")
    assert put(client, dashboard, rows()).status_code == 403
    assert client.get("/api/v1/outcomes").status_code == 401
    assert client.get("/api/v1/outcomes", headers=dashboard).json() == {"periods": []}


def test_reading_by_unit_period_and_wave(app: FastAPI, client: TestClient, hr: dict[str, str], db) -> None:
    for period in ("2026-01", "2026-02", "2026-Q1", "2026-Q2"):
        assert put(client, hr, rows(period)).status_code == 200
    everything = client.get("/api/v1/outcomes", headers=hr).json()["periods"]
    assert [p["period"] for p in everything] == ["2026-01", "2026-Q1", "2026-02", "2026-Q2"]  # by first day
    one = client.get("/api/v1/outcomes", params={"unit": "dep1", "period": "2026-02"}, headers=hr).json()
    assert [(p["period"], [u["unit"] for u in p["units"]]) for p in one["periods"]] == [("2026-02", ["dep1"])]
    # a wave in February 2026 sits beside the outcomes of February and of the first quarter
    wave = Wave(
        name="February pulse",
        instrument="career-pulse",
        version=1,
        opens_at=datetime(2026, 2, 2, 8, tzinfo=UTC),
        closes_at=datetime(2026, 2, 16, 17, tzinfo=UTC),
        min_group_size=5,
        attributes=[],
        attribute_values={},
        state="closed",
    )
    db.add(wave)
    db.commit()
    beside = client.get("/api/v1/outcomes", params={"wave": wave.id, "unit": "org"}, headers=hr).json()
    assert [p["period"] for p in beside["periods"]] == ["2026-Q1", "2026-02"]
    assert client.get("/api/v1/outcomes", params={"unit": "nowhere"}, headers=hr).status_code == 404
    assert client.get("/api/v1/outcomes", params={"period": "2025-Q4"}, headers=hr).status_code == 404
    assert client.get("/api/v1/outcomes", params={"period": "Q4-2025"}, headers=hr).status_code == 422
    assert client.get("/api/v1/outcomes", params={"wave": 999}, headers=hr).status_code == 404
