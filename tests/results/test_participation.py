"""Participation while a wave is open (rule 3): in steps of 5 percentage points, no counts, the same figures
for an hour whoever asks and however often, and only for units with at least min_group_size invitations."""

from __future__ import annotations

import csv
import io
from datetime import timedelta

from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import update

from service.db import transaction
from service.models import ParticipationSnapshot
from tests.factories import close_wave, create_wave, invite, open_wave
from tests.forms.answers import all_answers, as_fields
from tests.mail import mail_links

PER_TEAM = 12


def _answer(client: TestClient, app: FastAPI, tokens: list[str]) -> None:
    instrument = app.state.instruments[("career-safety", 1)].instrument
    for n, token in enumerate(tokens):
        assert client.post(f"/s/{token}", data=as_fields(all_answers(instrument, n))).status_code == 200


def _shown(client: TestClient, wave_id: int, headers: dict[str, str]) -> tuple[dict, dict[str, dict]]:
    body = client.get(f"/api/v1/waves/{wave_id}/participation", headers=headers).json()
    return body, {row["unit_key"]: row for row in body["units"]}


def _age_snapshot(app: FastAPI, wave_id: int, by: timedelta) -> None:
    with transaction(app.state.sessionmaker) as session:
        snapshot = session.get(ParticipationSnapshot, wave_id)
        assert snapshot is not None
        session.execute(
            update(ParticipationSnapshot)
            .where(ParticipationSnapshot.wave_id == wave_id)
            .values(computed_at=snapshot.computed_at - by)
        )


def test_open_wave_participation_in_steps_refreshed_hourly(
    client: TestClient, app: FastAPI, keys: tuple[dict[str, str], dict[str, str]]
) -> None:
    hr, dashboard = keys
    wave = create_wave(client, hr)  # min_group_size 5
    emails = invite(client, hr, wave["id"], per_team=PER_TEAM, teams=["team1", "team2", "team3"])
    emails += invite(client, hr, wave["id"], per_team=4, teams=["team4"])  # fewer invitations than the minimum
    open_wave(client, hr, wave["id"])
    tokens = mail_links(app, emails)
    team1, team2, team3 = (tokens[t * PER_TEAM : (t + 1) * PER_TEAM] for t in range(3))
    small = tokens[3 * PER_TEAM :]
    _answer(client, app, team1[:5] + team2[:7] + team3[:6] + small[:4])

    body, rows = _shown(client, wave["id"], dashboard)
    assert body["state"] == "open" and body["rate_step"] == 0.05 and body["as_of"]
    assert rows["team1"]["rate"] == 0.40 and rows["team2"]["rate"] == 0.55  # 5/12 = 41.7 %, 7/12 = 58.3 %
    assert rows["team1"]["invited"] == PER_TEAM and all(r["responded"] is None for r in rows.values())
    assert rows["team4"]["suppressed"] and rows["team4"]["rate"] is None and rows["team4"]["reason"] == "primary"
    shown = [r for r in rows.values() if not r["suppressed"]]
    assert shown and all(round(r["rate"] * 20, 9) == int(r["rate"] * 20) for r in shown)

    # More answers within the hour: every caller sees the same snapshot, to the byte.
    _answer(client, app, team1[5:9])
    again, _ = _shown(client, wave["id"], hr)
    assert again == body
    as_csv = client.get(f"/api/v1/waves/{wave['id']}/participation", headers={**hr, "accept": "text/csv"})
    by_unit = {r["unit"]: r for r in csv.DictReader(io.StringIO(as_csv.text))}
    assert by_unit["team1"]["rate"] == "0.4" and by_unit["team1"]["responded"] == ""

    # Fifty-nine minutes on: still the same. An hour on: recomputed.
    _age_snapshot(app, wave["id"], timedelta(minutes=59))
    assert _shown(client, wave["id"], hr)[1] == rows
    _age_snapshot(app, wave["id"], timedelta(minutes=1, seconds=1))
    later, rows = _shown(client, wave["id"], dashboard)
    assert later["as_of"] > body["as_of"] and rows["team1"]["rate"] == 0.75  # 9/12

    # Closed: the stored table's exact figures.
    close_wave(client, app, hr, wave["id"])
    closed, rows = _shown(client, wave["id"], dashboard)
    assert closed["as_of"] is None and rows["team1"]["responded"] == 9 and rows["team1"]["rate"] == 0.75
    assert rows["team2"]["responded"] == 7 and rows["team2"]["rate"] == round(7 / 12, 4)
