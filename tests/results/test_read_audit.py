"""Reads of results and comments are audited: which key (by id) read which view of which wave, never what it
read."""

from __future__ import annotations

import json

from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select

from service.keys import repository
from service.models import AuditEntry
from tests.factories import make_key
from tests.results.conftest import Wave

CSV = {"accept": "text/csv"}


def _key_id(app: FastAPI, headers: dict[str, str]) -> int:
    with app.state.sessionmaker() as session:
        row = repository.find_active(session, headers["Authorization"].removeprefix("Bearer "))
        assert row is not None
        return row.id


def test_reads_are_audited_by_key_id_without_content(client: TestClient, app: FastAPI, closed: Wave) -> None:
    with app.state.sessionmaker() as session:
        before = len(session.scalars(select(AuditEntry)).all())
    reads = [
        (closed.dashboard, closed.url("results"), {"unit": "dep1", "by": "location"}),
        (closed.dashboard, closed.url("heatmap"), {}),
        ({**closed.dashboard, **CSV}, closed.url("flags"), {}),
        (closed.dashboard, "/api/v1/units/dep1/trend", {"construct": "psych_safety"}),
        (closed.hr, closed.url("comments"), {"unit": "team1"}),
    ]
    comments = ""
    for headers, url, params in reads:
        answer = client.get(url, params=params, headers=headers)
        assert answer.status_code == 200, answer.text
        comments = answer.text if "comments" in url else comments
    assert "Antwoord" in comments  # the comments were shown, so they must not reach the audit log
    assert client.get(closed.url("results"), params={"unit": "nope"}, headers=closed.hr).status_code == 404

    dashboard, hr = _key_id(app, closed.dashboard), _key_id(app, closed.hr)
    with app.state.sessionmaker() as session:
        entries = session.scalars(select(AuditEntry).order_by(AuditEntry.id)).all()[before:]
    assert [(e.action, e.by_key_id, e.wave_id, e.detail.get("view")) for e in entries] == [
        ("results.read", dashboard, closed.id, "results"),
        ("results.read", dashboard, closed.id, "heatmap"),
        ("results.read", dashboard, closed.id, "flags"),
        ("results.read", dashboard, None, "trend"),
        ("comments.read", hr, closed.id, None),
    ]  # the refused read (unknown unit) did not happen, so it is not there
    assert entries[0].detail == {"view": "results", "unit": "dep1", "by": "location"}
    assert entries[4].detail == {"unit": "team1"}
    admin = make_key(app, "admin")
    log = client.get("/api/v1/audit", headers=admin).json()["entries"]
    assert log[0]["action"] == "comments.read" and log[0]["by_key_id"] == hr
    assert "Antwoord" not in json.dumps(log)
