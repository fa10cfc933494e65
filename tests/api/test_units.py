"""PUT /units and GET /units: the org tree, refused whole when it is not a tree."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.factories import make_key, put_tree, small_tree


def test_put_and_get_tree(client: TestClient, app) -> None:
    hr = make_key(app, "hr")
    put_tree(client, hr)
    units = client.get("/api/v1/units", headers=make_key(app, "dashboard")).json()["units"]
    assert len(units) == len(small_tree())
    seen: set[str] = set()
    for unit in units:  # parents come before children
        assert unit["parent_key"] is None or unit["parent_key"] in seen
        seen.add(unit["key"])
    # upsert: rename one, move one, add one
    changes = [
        {"key": "team1", "name": "Team One", "parent_key": "dep2"},
        {"key": "team8", "name": "Team 8", "parent_key": "dep3"},
    ]
    response = client.put("/api/v1/units", json={"units": changes}, headers=hr)
    assert response.json() == {"created": 1, "updated": 1, "total": len(small_tree()) + 1}
    by_key = {u["key"]: u for u in client.get("/api/v1/units", headers=hr).json()["units"]}
    assert by_key["team1"] == {"key": "team1", "name": "Team One", "parent_key": "dep2"}


def _refused(client: TestClient, hr: dict[str, str], units: list[dict]) -> dict:
    response = client.put("/api/v1/units", json={"units": units}, headers=hr)
    assert response.status_code == 422, response.text
    return response.json()["error"]


def test_unknown_parent_cycle_and_duplicate_are_refused_naming_keys(client: TestClient, app) -> None:
    hr = make_key(app, "hr")
    put_tree(client, hr)
    error = _refused(client, hr, [{"key": "x", "name": "X", "parent_key": "nowhere"}])
    assert "nowhere" in error["message"] and error["details"][0]["key"] == "x"
    error = _refused(client, hr, [{"key": "org", "name": "Org", "parent_key": "team3"}])
    assert {"org", "div1", "dep2", "team3"} <= {d["key"] for d in error["details"]}
    error = _refused(client, hr, [{"key": "a", "name": "A"}, {"key": "a", "name": "A again"}])
    assert "a" in error["message"]
    self_parent = _refused(client, hr, [{"key": "team2", "name": "T", "parent_key": "team2"}])
    assert "team2" in self_parent["message"]
    # nothing was written by any refused request
    units = client.get("/api/v1/units", headers=hr).json()["units"]
    assert len(units) == len(small_tree())
    assert {u["key"]: u["parent_key"] for u in units}["org"] is None


def test_bad_shapes_get_422_not_500(client: TestClient, app) -> None:
    hr = make_key(app, "hr")
    for body in (
        {},
        {"units": "x"},
        {"units": [{"key": ""}]},
        {"units": [{"key": "a", "name": "A", "extra": 1}]},
        [1, 2],
        {"units": [{"key": "a" * 101, "name": "A"}]},
    ):
        response = client.put("/api/v1/units", json=body, headers=hr)
        assert response.status_code == 422
        assert set(response.json()["error"]) >= {"code", "message"}
    response = client.put("/api/v1/units", content=b"{not json", headers={**hr, "content-type": "application/json"})
    assert response.status_code == 422
