"""Typed factories for keys, units, waves and participants, over the HTTP API (as HR would); links come by mail
(``tests.mail``)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select

from service.db import transaction
from service.keys import repository
from service.models import Unit

LONE_UNIT = "lone-unit"  # a manager key's unit where a test has no org tree of its own


def make_key(app: FastAPI, role: str, name: str | None = None, unit: str | None = None) -> dict[str, str]:
    """Authorization headers for a new key of ``role``. A manager key reads ``unit``; without one, a unit of its
    own (``LONE_UNIT``, created if absent)."""
    with transaction(app.state.sessionmaker) as session:
        if role == "manager" and unit is None:
            unit = LONE_UNIT
            if session.scalar(select(Unit.id).where(Unit.key == unit)) is None:
                session.add(Unit(key=unit, name="Lone unit"))
                session.flush()
        _row, key = repository.create(session, role=role, name=name or f"{role}-test", unit=unit)
    return {"Authorization": f"Bearer {key}"}


def small_tree() -> list[dict[str, Any]]:
    """org -> two divisions -> departments -> teams (7 teams)."""
    units = [{"key": "org", "name": "Organisation", "parent_key": None}]
    units += [{"key": f"div{d}", "name": f"Division {d}", "parent_key": "org"} for d in (1, 2)]
    units += [
        {"key": "dep1", "name": "Department 1", "parent_key": "div1"},
        {"key": "dep2", "name": "Department 2", "parent_key": "div1"},
        {"key": "dep3", "name": "Department 3", "parent_key": "div2"},
    ]
    teams = {
        "team1": "dep1",
        "team2": "dep1",
        "team3": "dep2",
        "team4": "dep2",
        "team5": "dep3",
        "team6": "dep3",
        "team7": "dep3",
    }
    units += [{"key": k, "name": k.title(), "parent_key": p} for k, p in teams.items()]
    return units


def put_tree(client: TestClient, hr: dict[str, str], units: list[dict[str, Any]] | None = None) -> None:
    response = client.put("/api/v1/units", json={"units": units or small_tree()}, headers=hr)
    assert response.status_code == 200, response.text


def wave_body(**overrides: Any) -> dict[str, Any]:
    now = datetime.now(UTC)
    body: dict[str, Any] = {
        "name": "Autumn 2026",
        "instrument": "career-safety",
        "version": 1,
        "opens_at": (now + timedelta(days=1)).isoformat(),
        "closes_at": (now + timedelta(days=15)).isoformat(),
        "attributes": ["tenure_band", "location"],
    }
    body.update(overrides)
    return body


def create_wave(client: TestClient, hr: dict[str, str], **overrides: Any) -> dict[str, Any]:
    response = client.post("/api/v1/waves", json=wave_body(**overrides), headers=hr)
    assert response.status_code == 201, response.text
    wave: dict[str, Any] = response.json()
    return wave


def participants(wave_id: int, per_team: int = 6, teams: list[str] | None = None) -> list[dict[str, Any]]:
    """``per_team`` participants in each team, with addresses unique to the wave and varied attributes."""
    return [
        {
            "unit_key": team,
            "email": f"w{wave_id}-{team}-{i}@example.com",
            "attributes": {"tenure_band": ["<1", "1-3", "3+"][i % 3], "location": ["A", "B"][i % 2]},
        }
        for team in (teams or [f"team{t}" for t in range(1, 8)])
        for i in range(per_team)
    ]


def invite(
    client: TestClient, hr: dict[str, str], wave_id: int, per_team: int = 6, teams: list[str] | None = None
) -> list[str]:
    """Invite ``per_team`` people into each team of a draft wave; returns their addresses, in upload order."""
    rows = participants(wave_id, per_team, teams)
    response = client.post(f"/api/v1/waves/{wave_id}/participants", json={"participants": rows}, headers=hr)
    assert response.status_code == 201, response.text
    assert "/s/" not in response.text
    return [row["email"] for row in rows]


def open_wave(client: TestClient, hr: dict[str, str], wave_id: int) -> None:
    response = client.post(f"/api/v1/waves/{wave_id}/open", headers=hr)
    assert response.status_code == 200, response.text


def close_wave(client: TestClient, app: FastAPI, hr: dict[str, str], wave_id: int) -> dict[str, Any]:
    """HR closes the wave (202, closing at once), then the close job runs, as the worker in `peil serve` would;
    returns the wave as the API shows it then (closed)."""
    from service.waves import close

    started = client.post(f"/api/v1/waves/{wave_id}/close", headers=hr)
    assert started.status_code == 202 and started.json()["state"] == "closing", started.text
    assert [c.wave_id for c in close.run_due(app.state.sessionmaker, app.state.instruments)] == [wave_id]
    closed: dict[str, Any] = client.get(f"/api/v1/waves/{wave_id}", headers=hr).json()
    assert closed["state"] == "closed", closed
    return closed
