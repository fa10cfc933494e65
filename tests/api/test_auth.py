"""Every API route with every role: no key 401, a wrong key 401, a revoked key 401, the wrong role 403 (for a
manager key 404: outside its unit's results nothing exists for it)."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from service.db import transaction
from service.keys import repository
from tests.factories import make_key

# (method, path) -> roles allowed. Must name every /api/v1 route: a new route has to be added here.
MATRIX: dict[tuple[str, str], set[str]] = {
    ("GET", "/api/v1/instruments"): {"hr", "dashboard"},
    ("GET", "/api/v1/instruments/{slug}/{version}"): {"hr", "dashboard"},
    ("PUT", "/api/v1/units"): {"hr"},
    ("GET", "/api/v1/units"): {"hr", "dashboard"},
    ("POST", "/api/v1/waves"): {"hr"},
    ("GET", "/api/v1/waves"): {"hr", "dashboard"},
    ("GET", "/api/v1/waves/{wave_id}"): {"hr", "dashboard"},
    ("PATCH", "/api/v1/waves/{wave_id}"): {"hr"},
    ("POST", "/api/v1/waves/{wave_id}/open"): {"hr"},
    ("POST", "/api/v1/waves/{wave_id}/close"): {"hr"},
    ("POST", "/api/v1/waves/{wave_id}/participants"): {"hr"},
    ("GET", "/api/v1/waves/{wave_id}/participation"): {"hr", "dashboard", "manager"},
    ("GET", "/api/v1/waves/{wave_id}/results"): {"hr", "dashboard", "manager"},
    ("GET", "/api/v1/waves/{wave_id}/heatmap"): {"hr", "dashboard", "manager"},
    ("GET", "/api/v1/waves/{wave_id}/flags"): {"hr", "dashboard", "manager"},
    ("GET", "/api/v1/waves/{wave_id}/comments"): {"hr"},
    ("GET", "/api/v1/waves/{wave_id}/drivers"): {"hr", "dashboard", "manager"},
    ("GET", "/api/v1/units/{unit_key}/trend"): {"hr", "dashboard", "manager"},
    ("PUT", "/api/v1/outcomes"): {"hr"},
    ("GET", "/api/v1/outcomes"): {"hr", "dashboard"},
    ("POST", "/api/v1/pilots"): {"hr"},
    ("GET", "/api/v1/pilots"): {"hr", "dashboard"},
    ("GET", "/api/v1/pilots/{pilot_id}"): {"hr", "dashboard"},
    ("DELETE", "/api/v1/pilots/{pilot_id}"): {"hr"},
    ("GET", "/api/v1/pilots/{pilot_id}/effect"): {"hr", "dashboard"},
    ("GET", "/api/v1/keys"): {"admin"},
    ("POST", "/api/v1/keys"): {"admin"},
    ("DELETE", "/api/v1/keys/{key_id}"): {"admin"},
    ("GET", "/api/v1/audit"): {"admin"},
    ("GET", "/api/v1/exports"): {"hr"},
    ("POST", "/api/v1/exports"): {"hr"},
}
ROLES = ("hr", "dashboard", "admin", "manager")


def api_routes(app) -> set[tuple[str, str]]:
    """Every (method, path) under /api/, read from the OpenAPI schema the app publishes."""
    return {
        (method.upper(), path)
        for path, operations in app.openapi()["paths"].items()
        if path.startswith("/api/")
        for method in operations
    }


def test_matrix_names_every_route(app) -> None:
    assert api_routes(app) == set(MATRIX)


def _call(client: TestClient, method: str, path: str, headers: dict[str, str]) -> int:
    url = path.format(
        slug="career-safety", version=1, wave_id=999999, key_id=999999, unit_key="no-such-unit", pilot_id=999999
    )
    return client.request(method, url, headers=headers, json={}).status_code


def wrong(status: int, admitted: bool, refused: int = 403) -> str | None:
    """What is wrong with ``status`` for a role that is (or is not) ``admitted``; None when it is right.

    An admitted role must get an answer of the route's own (a 404 for the made-up ids is fine), never a 401 or
    403, and never a 5xx: a crash is a failure, not an admission. Any other role gets exactly ``refused``: 403,
    or 404 for a manager key (outside its part nothing exists for it)."""
    if not admitted:
        return None if status == refused else f"admitted with {status}"
    if status in (401, 403):
        return f"refused with {status}"
    return f"failed with {status}" if status >= 500 else None


def test_a_server_error_is_a_failure_not_an_admission() -> None:
    assert wrong(500, admitted=True) == "failed with 500" and wrong(503, admitted=True) == "failed with 503"
    assert wrong(404, admitted=True) is None and wrong(403, admitted=True) == "refused with 403"
    assert wrong(500, admitted=False) == "admitted with 500" and wrong(403, admitted=False) is None


@pytest.mark.parametrize(("method", "path"), sorted(MATRIX))
def test_route_refuses_and_admits(client: TestClient, app, method: str, path: str) -> None:
    assert _call(client, method, path, {}) == 401
    assert _call(client, method, path, {"Authorization": "Bearer peil_not-a-real-key"}) == 401
    assert _call(client, method, path, {"Authorization": "Basic abc"}) == 401
    for role in ROLES:
        status = _call(client, method, path, make_key(app, role))
        refused = 404 if role == "manager" else 403
        problem = wrong(status, admitted=role in MATRIX[(method, path)], refused=refused)
        assert problem is None, f"{role} on {method} {path}: {problem}"


def test_revoked_key_is_refused_and_use_is_recorded(client: TestClient, app) -> None:
    with transaction(app.state.sessionmaker) as session:
        row, key = repository.create(session, role="hr", name="to revoke")
        key_id = row.id
    headers = {"Authorization": f"Bearer {key}"}
    assert client.get("/api/v1/units", headers=headers).status_code == 200
    with app.state.sessionmaker() as session:
        assert repository.list_all(session)[0].last_used_at is not None
    with transaction(app.state.sessionmaker) as session:
        repository.revoke(session, key_id)
    response = client.get("/api/v1/units", headers=headers)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthorized"


def test_only_the_hash_is_stored(client: TestClient, app) -> None:
    headers = make_key(app, "admin")
    created = client.post("/api/v1/keys", json={"role": "dashboard", "name": "wall screen"}, headers=headers)
    assert created.status_code == 201
    key = created.json()["key"]
    with app.state.sessionmaker() as session:
        stored = [(k.key_hash, k.name) for k in repository.list_all(session)]
    assert all(key not in h for h, _ in stored)
    assert (repository.hash_key(key), "wall screen") in stored
    listed = client.get("/api/v1/keys", headers=headers).json()["keys"]
    assert all("key" not in k for k in listed)
