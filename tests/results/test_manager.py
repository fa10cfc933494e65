"""A manager key reads the results of its unit and everything below it, and nothing else: another unit, comments,
participants and waves' configuration answer 404, as if they did not exist; the organisation's row is the one
exception, as the reference line of the manager's heatmap."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from service.cli import app as cli
from tests.factories import make_key
from tests.results.conftest import Wave
from tests.results.test_results import CSV

PART = ["div1", "dep1", "dep2", "team1", "team2", "team3", "team4"]  # div1 and everything below it


def test_manager_reads_its_part_only(app: FastAPI, client: TestClient, closed: Wave) -> None:
    manager = make_key(app, "manager", unit="div1")
    results = client.get(closed.url("results"), headers=manager)
    assert results.status_code == 200
    assert [u["unit"] for u in results.json()["units"]] == ["div1"]  # its own unit by default
    by = client.get(closed.url("results?unit=team3&by=location"), headers=manager).json()
    assert by["units"][0]["unit"] == "team3" and len(by["units"][0]["cuts"]) == 2
    as_dashboard = client.get(closed.url("results?unit=team3"), headers=closed.dashboard).json()
    as_manager = client.get(closed.url("results?unit=team3"), headers=manager).json()
    # the whole table's publication counts are HR's and the dashboards', not a manager's
    assert as_dashboard.pop("publication")["totals"]["eligible"] >= 1 and as_manager.pop("publication") is None
    assert as_manager == as_dashboard

    for outside in ("div2", "dep3", "team5", "org"):
        refused = client.get(closed.url(f"results?unit={outside}"), headers=manager)
        unknown = client.get(closed.url("results?unit=no-such-unit"), headers=manager)
        assert refused.status_code == 404, outside
        assert refused.json()["error"]["message"] == unknown.json()["error"]["message"].replace("no-such-unit", outside)

    heatmap = client.get(closed.url("heatmap"), headers=manager).json()
    whole = client.get(closed.url("heatmap"), headers=closed.dashboard).json()
    assert heatmap["units"] == [row for row in whole["units"] if row["unit"] in {"org", *PART}]
    assert heatmap["units"][0]["unit"] == "org"  # the organisation first, as the reference line
    rows = client.get(closed.url("heatmap"), headers={**manager, **CSV}).text.splitlines()[1:]
    assert {row.split(",")[0] for row in rows} == {"org", *PART}

    flags = client.get(closed.url("flags"), headers=manager).json()["flags"]
    every = client.get(closed.url("flags"), headers=closed.dashboard).json()["flags"]
    assert flags == [f for f in every if f["unit"] in PART]

    participation = client.get(closed.url("participation"), headers=manager).json()["units"]
    assert sorted(row["unit_key"] for row in participation) == sorted(PART)

    trend = client.get("/api/v1/units/team2/trend?construct=psych_safety", headers=manager)
    assert trend.status_code == 200 and trend.json()["points"][0]["wave_id"] == closed.id
    for outside in ("team5", "org"):
        assert client.get(f"/api/v1/units/{outside}/trend?construct=psych_safety", headers=manager).status_code == 404


def test_manager_gets_404_for_what_is_not_results(app: FastAPI, client: TestClient, closed: Wave) -> None:
    manager = make_key(app, "manager", unit="div1")
    for path in (
        closed.url("comments?unit=div1"),
        f"/api/v1/waves/{closed.id}",
        "/api/v1/waves",
        "/api/v1/units",
        "/api/v1/instruments",
        "/api/v1/exports",
        "/api/v1/keys",
    ):
        response = client.get(path, headers=manager)
        assert response.status_code == 404, path
        assert response.json() == client.get("/api/v1/no-such-route", headers=manager).json()
    posted = client.post(closed.url("participants"), headers=manager, json={"participants": []})
    assert posted.status_code == 404


def test_manager_keys_need_a_unit(app: FastAPI, client: TestClient, closed: Wave, peil: CliRunner) -> None:
    admin = make_key(app, "admin")
    created = client.post("/api/v1/keys", headers=admin, json={"role": "manager", "name": "Ann", "unit": "dep3"})
    assert created.status_code == 201 and created.json()["unit"] == "dep3"
    manager = {"Authorization": f"Bearer {created.json()['key']}"}
    assert [u["unit"] for u in client.get(closed.url("results"), headers=manager).json()["units"]] == ["dep3"]
    for body in (
        {"role": "manager", "name": "no unit"},
        {"role": "manager", "name": "unknown unit", "unit": "nowhere"},
        {"role": "hr", "name": "hr with a unit", "unit": "dep3"},
    ):
        assert client.post("/api/v1/keys", headers=admin, json=body).status_code == 422, body
    listed = client.get("/api/v1/keys", headers=admin).json()["keys"]
    assert {k["name"]: k["unit"] for k in listed if k["role"] in ("admin", "manager")} == {
        "admin-test": None,
        "Ann": "dep3",
    }

    made = peil.invoke(cli, ["keys", "create", "--role", "manager", "--unit", "dep1", "--name", "Bo"])
    assert made.exit_code == 0, made.output
    assert "(manager, unit dep1, Bo)" in made.output
    key = made.output.strip().splitlines()[-1]
    results = client.get(closed.url("results"), headers={"Authorization": f"Bearer {key}"})
    assert [u["unit"] for u in results.json()["units"]] == ["dep1"]
    assert "manager:dep1\tBo" in peil.invoke(cli, ["keys", "list"]).output
    for args in (["--role", "manager", "--name", "x"], ["--role", "manager", "--unit", "nowhere", "--name", "x"]):
        refused = peil.invoke(cli, ["keys", "create", *args])
        assert refused.exit_code == 2 and "unit" in refused.output
