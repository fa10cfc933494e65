"""Scoped waves: a wave limited to a subtree (a pilot department) takes only its participants, and its table is
rooted at the scope unit."""

from __future__ import annotations

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from tests.factories import close_wave, create_wave, invite, make_key, open_wave, participants, put_tree, wave_body
from tests.forms.answers import all_answers, as_fields
from tests.mail import mail_links

DIV1_TEAMS = ["team1", "team2", "team3", "team4"]  # small_tree(): div1 -> dep1 (team1, team2), dep2 (team3, team4)


@pytest.fixture
def hr(client: TestClient, app: FastAPI) -> dict[str, str]:
    headers = make_key(app, "hr")
    put_tree(client, headers)
    return headers


def test_a_wave_takes_a_scope_and_shows_it(client: TestClient, hr: dict[str, str]) -> None:
    wave = create_wave(client, hr, scope="div1")
    assert wave["scope"] == "div1" and wave["kind"] == "single"
    assert client.get(f"/api/v1/waves/{wave['id']}", headers=hr).json()["scope"] == "div1"
    assert create_wave(client, hr)["scope"] is None  # the default: the whole organisation


def test_an_unknown_scope_unit_is_refused(client: TestClient, hr: dict[str, str]) -> None:
    response = client.post("/api/v1/waves", json=wave_body(scope="nowhere"), headers=hr)
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert "nowhere" in error["message"] and error["details"] == [{"field": "scope", "reason": "unknown unit"}]
    assert client.get("/api/v1/waves", headers=hr).json()["waves"] == []


def test_participants_outside_the_scope_are_refused_whole(client: TestClient, hr: dict[str, str]) -> None:
    wave = create_wave(client, hr, scope="dep1")
    rows = participants(wave["id"], per_team=2, teams=["team1", "team3", "team2", "team5"])
    response = client.post(f"/api/v1/waves/{wave['id']}/participants", json={"participants": rows}, headers=hr)
    assert response.status_code == 422, response.text
    details = response.json()["error"]["details"]
    assert [(d["row"], d["field"]) for d in details] == [(row, "unit_key") for row in (3, 4, 7, 8)]
    assert "outside the scope" in details[0]["reason"]
    assert client.get(f"/api/v1/waves/{wave['id']}", headers=hr).json()["invited"] == 0  # nothing stored
    inside = participants(wave["id"], per_team=2, teams=["team1", "team2"])
    accepted = client.post(f"/api/v1/waves/{wave['id']}/participants", json={"participants": inside}, headers=hr)
    assert accepted.status_code == 201 and accepted.json()["created"] == 4


def test_the_results_of_a_scoped_wave_are_rooted_at_its_scope(client: TestClient, app: FastAPI, hr) -> None:
    wave = create_wave(client, hr, scope="div1", min_group_size=3)
    emails = invite(client, hr, wave["id"], per_team=4, teams=DIV1_TEAMS)
    open_wave(client, hr, wave["id"])
    instrument = app.state.instruments[("career-safety", 1)].instrument
    for n, token in enumerate(mail_links(app, emails)):
        assert client.post(f"/s/{token}", data=as_fields(all_answers(instrument, n))).status_code == 200
    close_wave(client, app, hr, wave["id"])

    dashboard = make_key(app, "dashboard")
    results = client.get(f"/api/v1/waves/{wave['id']}/results", headers=dashboard)
    assert results.status_code == 200, results.text
    root = results.json()["units"][0]
    assert root["unit"] == "div1" and root["total"]["n"] == 16 and not root["total"]["suppressed"]
    heatmap = client.get(f"/api/v1/waves/{wave['id']}/heatmap", headers=dashboard).json()
    assert [row["unit"] for row in heatmap["units"]] == ["div1", "dep1", "team1", "team2", "dep2", "team3", "team4"]
    outside = client.get(f"/api/v1/waves/{wave['id']}/results", params={"unit": "org"}, headers=dashboard)
    assert outside.status_code == 404, outside.text
    participation = client.get(f"/api/v1/waves/{wave['id']}/participation", headers=dashboard).json()
    assert participation["units"][0]["unit_key"] == "div1" and participation["units"][0]["invited"] == 16
