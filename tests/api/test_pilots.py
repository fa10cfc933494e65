"""Pilots over the API: declaring them (checked against the tree), and their effect on an outcome or a construct,
read from published cells only, with every way the data can fail to tell."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import numpy as np
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select

from scoring import build_table
from scoring.spec import WaveData
from service.exports import columns
from service.instruments.loader import to_spec
from service.models import AuditEntry, Wave
from service.models.base import utcnow
from service.results.data import org_tree
from service.results.service import encode, store
from service.units.service import load_tree
from tests.api.test_outcomes import COUNTS
from tests.factories import make_key, put_tree

COMPARISON_TEAMS = ("team3", "team4", "team5", "team6", "team7")


@pytest.fixture
def hr(app: FastAPI, client: TestClient) -> dict[str, str]:
    key = make_key(app, "hr")
    put_tree(client, key)
    return key


def declare(client: TestClient, hr: dict[str, str], **body: Any) -> Any:
    body = {"name": "Open vacancies", "units": ["dep1"], "starts_on": "2026-07-01", **body}
    return client.post("/api/v1/pilots", json=body, headers=hr)


def test_declare_list_read_and_remove(app: FastAPI, client: TestClient, hr: dict[str, str], db) -> None:
    created = declare(client, hr, units=["dep1", "team1"])
    assert created.status_code == 201, created.text
    pilot = created.json()
    assert pilot["units"] == ["dep1"]  # team1 lies inside dep1
    assert pilot["comparison_units"] is None and pilot["starts_on"] == "2026-07-01"
    dashboard = make_key(app, "dashboard")
    assert client.get("/api/v1/pilots", headers=dashboard).json()["pilots"] == [pilot]
    assert client.get(f"/api/v1/pilots/{pilot['id']}", headers=dashboard).json() == pilot
    assert client.delete(f"/api/v1/pilots/{pilot['id']}", headers=dashboard).status_code == 403
    assert declare(client, dashboard).status_code == 403
    assert client.delete(f"/api/v1/pilots/{pilot['id']}", headers=hr).status_code == 204
    assert client.get(f"/api/v1/pilots/{pilot['id']}", headers=hr).status_code == 404
    actions = [e.action for e in db.scalars(select(AuditEntry).order_by(AuditEntry.id))]
    assert actions[-2:] == ["pilot.created", "pilot.deleted"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"units": ["nowhere"]}, "unknown units: nowhere"),
        ({"comparison_units": ["team1"]}, "overlap the pilot: team1"),
        ({"comparison_units": ["div1"]}, "overlap the pilot: div1"),
        ({"units": ["org"]}, "whole organisation"),
        ({"units": []}, "units"),
        ({"comparison_units": []}, "comparison_units is empty"),
        ({"starts_on": "July"}, "starts_on"),
    ],
)
def test_a_declaration_that_cannot_be_measured_is_refused(
    client: TestClient, hr: dict[str, str], body: dict[str, Any], message: str
) -> None:
    refused = declare(client, hr, **body)
    assert refused.status_code == 422, refused.text
    assert message in refused.json()["error"]["message"]


def test_units_in_two_organisations_need_their_comparison(client: TestClient, hr: dict[str, str]) -> None:
    other = [{"key": "other", "name": "Other org"}, {"key": "other-team", "name": "T", "parent_key": "other"}]
    put_tree(client, hr, other)
    refused = declare(client, hr, units=["dep1", "other-team"])
    assert refused.status_code == 422 and "more than one organisation" in refused.json()["error"]["message"]
    given = declare(client, hr, units=["dep1", "other-team"], comparison_units=["dep2", "dep3"])
    assert given.status_code == 201 and given.json()["comparison_units"] == ["dep2", "dep3"]


# --- outcomes ------------------------------------------------------------------------------------------------------


def quarter(pilot_moves: int) -> dict[str, tuple[int, ...]]:
    """Per team: start, end, leavers, moves in, moves out, promotions, months waited; the pilot's teams (team1,
    team2) move ``pilot_moves`` people out, the others 3."""
    teams = {f"team{t}": (100, 100, 5, 2, 3, 4, 48) for t in range(1, 8)}
    for team in ("team1", "team2"):
        teams[team] = (100, 100, 5, 2, pilot_moves, 4, 48)
    return teams


def upload(client: TestClient, hr: dict[str, str], periods: dict[str, dict[str, tuple[int, ...]]]) -> None:
    body = [
        {"unit_key": team, "period": period, **dict(zip(COUNTS, counts, strict=True))}
        for period, teams in periods.items()
        for team, counts in teams.items()
    ]
    assert client.put("/api/v1/outcomes", json={"outcomes": body}, headers=hr).status_code == 200


def effect(client: TestClient, hr: dict[str, str], pilot: int, **query: str) -> Any:
    return client.get(f"/api/v1/pilots/{pilot}/effect", params=query, headers=hr)


def test_the_effect_on_internal_mobility(client: TestClient, hr: dict[str, str], db) -> None:
    upload(client, hr, {"2026-Q1": quarter(3), "2026-Q2": quarter(3), "2026-Q3": quarter(15), "2026-Q4": quarter(17)})
    pilot = declare(client, hr).json()["id"]
    found = effect(client, hr, pilot, outcome="internal_mobility")
    assert found.status_code == 200, found.text
    out = found.json()
    # pilot: 12 moves over 400 person-periods before, 64 over 400 after; the rest: 3 per team and quarter
    pilot_before, pilot_after, rest = 12 / 400, 64 / 400, 30 / 1000
    assert out["estimate"]["estimate"] == pytest.approx((pilot_after - pilot_before) - (rest - rest))
    assert out["groups"]["pilot_before"] == {"n": 400.0, "mean": pytest.approx(pilot_before), "sd": pytest.approx(
        (pilot_before * (1 - pilot_before)) ** 0.5)}  # fmt: skip
    se = (sum(p * (1 - p) / n for p, n in ((pilot_before, 400), (pilot_after, 400), (rest, 1000), (rest, 1000)))) ** 0.5
    assert out["estimate"]["se"] == pytest.approx(se)
    assert out["estimate"]["df"] is None  # a normal interval for rates
    assert out["verdict"] == "increase" and out["reasons"] == []
    assert "rose +13.0 pp" in out["message_en"] and "steeg" in out["message_nl"]
    assert [(p["period"], p["side"]) for p in out["points"]] == [
        ("2026-Q1", "before"),
        ("2026-Q2", "before"),
        ("2026-Q3", "after"),
        ("2026-Q4", "after"),
    ]
    assert out["parallel"] is True and out["pre_trend"]["estimate"] == pytest.approx(0.0)
    retention = effect(client, hr, pilot, outcome="retention").json()
    assert retention["estimate"]["estimate"] == pytest.approx(0.0)
    assert retention["verdict"] == "no_clear_effect"
    reads = db.scalars(select(AuditEntry).where(AuditEntry.action == "results.read").order_by(AuditEntry.id)).all()
    assert [e.detail for e in reads][-2:] == [
        {"view": "pilot_effect", "pilot_id": pilot, "measure": "internal_mobility"},
        {"view": "pilot_effect", "pilot_id": pilot, "measure": "retention"},
    ]


def test_outcomes_that_cannot_tell(client: TestClient, hr: dict[str, str]) -> None:
    upload(client, hr, {"2026-Q1": quarter(3), "2026-Q2": quarter(3)})
    pilot = declare(client, hr).json()["id"]
    early = effect(client, hr, pilot, outcome="internal_mobility").json()
    assert (early["verdict"], early["reasons"], early["estimate"]) == ("cannot_tell", ["too_few_waves"], None)
    assert "before 2026-07-01 and one after" in early["message_en"]
    teams = quarter(3)
    teams["team7"] = (3, 3, 1, 0, 0, 0, 0)  # team7 too small to show
    upload(client, hr, {"2026-Q3": teams})
    small = declare(client, hr, units=["team7"]).json()["id"]
    hidden = effect(client, hr, small, outcome="retention").json()
    assert (hidden["verdict"], hidden["reasons"], hidden["estimate"], hidden["groups"]) == (
        "cannot_tell",
        ["groups_too_small"],
        None,
        None,
    )
    assert [p["pilot"] for p in hidden["points"] if p["period"] == "2026-Q3"] == [None]
    waits = effect(client, hr, pilot, outcome="time_to_promotion").json()
    assert (waits["verdict"], waits["reasons"], waits["useful"]) == ("cannot_tell", ["no_spread"], None)


@pytest.mark.parametrize(
    "query", [{}, {"construct": "development", "outcome": "retention"}, {"outcome": "happiness"}, {"construct": "x"}]
)
def test_the_measure_must_be_one_known_one(client: TestClient, hr: dict[str, str], query: dict[str, str]) -> None:
    pilot = declare(client, hr).json()["id"]
    assert effect(client, hr, pilot, **query).status_code == 422
    assert effect(client, hr, 999, outcome="retention").status_code == 404


# --- constructs ----------------------------------------------------------------------------------------------------


def _closed_wave(app: FastAPI, db, name: str, opens: datetime, closes: datetime, lift: float, seed: int) -> int:
    """A closed career-pulse wave whose table is built by the engine from synthetic answers: 15 respondents per
    team (team7: nobody), the pilot's teams (team1, team2) ``lift`` higher on development."""
    loaded = app.state.instruments[("career-pulse", 1)].instrument
    spec = to_spec(loaded)
    wave = Wave(
        name=name,
        instrument="career-pulse",
        version=1,
        opens_at=opens,
        closes_at=closes,
        min_group_size=5,
        attributes=[],
        attribute_values={},
        state="closed",
        closed_at=closes,
    )
    db.add(wave)
    db.flush()
    tree = load_tree(db)
    index = tree.index()
    unit = np.repeat([index[f"team{t}"] for t in range(1, 8)], [15, 15, 15, 15, 15, 15, 0])
    rng = np.random.default_rng(seed)
    answers = np.full((unit.size, len(spec.items)), np.nan)
    pilot = np.isin(unit, [index["team1"], index["team2"]])
    for j, item in enumerate(spec.items):
        if item.type in ("likert5", "likert7"):
            high = 5 if item.type == "likert5" else 7
            level = 3.0 + (lift * pilot if item.construct == "development" else 0.0)
            answers[:, j] = np.clip(np.rint(rng.normal(level, 1.0, unit.size)), 1, high)
        elif item.type == "nps":
            answers[:, j] = rng.integers(0, 11, unit.size)
    data = WaveData(
        wave_id=wave.id,
        instrument=spec,
        tree=org_tree(tree),
        min_group_size=5,
        unit=unit,
        attributes=(),
        answers=answers,
        multi={},
        multi_answered={},
        comments={},
        invited=np.bincount(unit, minlength=len(tree.keys)),
        invited_attributes={},
    )
    table, built_at = build_table(data).to_dict(), utcnow()
    store(db, wave.id, encode(table), columns.of(table, built_at), built_at)
    db.commit()
    return wave.id


def _cell(client: TestClient, hr: dict[str, str], wave: int, unit: str) -> dict[str, Any]:
    total = client.get(f"/api/v1/waves/{wave}/results", params={"unit": unit}, headers=hr).json()["units"][0]["total"]
    assert not total["suppressed"], (wave, unit)
    return next(c for c in total["constructs"] if c["construct"] == "development")


def test_the_effect_on_a_construct_from_published_cells(app: FastAPI, client: TestClient, hr: dict[str, str], db):
    day = lambda m, d: datetime(2026, m, d, 9, tzinfo=UTC)  # noqa: E731
    before = _closed_wave(app, db, "May pulse", day(5, 4), day(5, 18), 0.0, 1)
    during = _closed_wave(app, db, "Summer pulse", day(6, 25), day(7, 9), 0.5, 2)  # straddles the start: left out
    after = _closed_wave(app, db, "September pulse", day(9, 7), day(9, 21), 0.9, 3)
    pilot = declare(client, hr).json()["id"]
    out = effect(client, hr, pilot, construct="development").json()
    assert [p["wave_id"] for p in out["points"]] == [before, after] and during not in [
        p["wave_id"] for p in out["points"]
    ]

    def rest(wave: int) -> tuple[float, float]:
        org, dep1 = _cell(client, hr, wave, "org"), _cell(client, hr, wave, "dep1")
        n = org["n"] - dep1["n"]
        return dep1["mean"], (org["n"] * org["mean"] - dep1["n"] * dep1["mean"]) / n

    (p0, c0), (p1, c1) = rest(before), rest(after)
    assert out["estimate"]["estimate"] == pytest.approx((p1 - p0) - (c1 - c0))
    assert out["groups"]["comparison_before"]["n"] == 90 - 30  # org minus dep1: team3 to team6
    assert out["useful"] == pytest.approx(0.4)  # a tenth of the 1-5 scale
    assert out["verdict"] == "increase" and out["estimate"]["df"] > 30
    assert out["parallel"] is None  # one wave before: no trend to check
    # a pilot in team7 (nobody answered: its cell is hidden) gets no estimate at all
    small = declare(client, hr, units=["team7"]).json()["id"]
    hidden = effect(client, hr, small, construct="development").json()
    assert (hidden["verdict"], hidden["reasons"], hidden["estimate"]) == ("cannot_tell", ["groups_too_small"], None)
