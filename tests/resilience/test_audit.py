"""The audit log records what HR did (key name, action, wave, time), only what really happened, and never
anything of respondents."""

from __future__ import annotations

import json
from datetime import datetime

from fastapi import FastAPI
from fastapi.testclient import TestClient

from service.models.base import utcnow
from tests.factories import create_wave, invite, make_key, open_wave, put_tree
from tests.forms.answers import all_answers, as_fields
from tests.mail import mail_links


def _log(client: TestClient, admin: dict[str, str], **params: object) -> list[dict]:
    response = client.get("/api/v1/audit", params=params, headers=admin)
    assert response.status_code == 200, response.text
    return list(reversed(response.json()["entries"]))  # oldest first


def test_hr_actions_are_audited_and_respondents_never(client: TestClient, app: FastAPI) -> None:
    started = utcnow()
    hr, admin = make_key(app, "hr", "HR Anna"), make_key(app, "admin", "Admin Bo")
    put_tree(client, hr)
    wave = create_wave(client, hr)
    emails = invite(client, hr, wave["id"], per_team=2, teams=["team1", "team2"])
    open_wave(client, hr, wave["id"])
    tokens = mail_links(app, emails)
    before_answers = _log(client, admin)

    instrument = app.state.instruments[("career-safety", 1)].instrument
    for n, token in enumerate(tokens):
        assert client.post(f"/s/{token}", data=as_fields(all_answers(instrument, n))).status_code == 200
        assert client.get(f"/s/{token}").status_code == 200
    assert _log(client, admin) == before_answers  # respondents leave no trace in the audit log

    # A refused action did not happen, so it is not logged.
    assert client.post(f"/api/v1/waves/{wave['id']}/open", headers=hr).status_code == 409
    assert client.post(f"/api/v1/waves/{wave['id']}/close", headers=hr).status_code == 202
    finished = utcnow()

    entries = _log(client, admin)
    assert [(e["key_name"], e["action"], e["wave_id"]) for e in entries] == [
        ("HR Anna", "units.upserted", None),
        ("HR Anna", "wave.created", wave["id"]),
        ("HR Anna", "participants.uploaded", wave["id"]),
        ("HR Anna", "wave.opened", wave["id"]),
        ("HR Anna", "wave.closed", wave["id"]),
    ]
    assert entries[2]["detail"]["count"] == len(tokens)
    times = [datetime.fromisoformat(e["at"]) for e in entries]
    assert times == sorted(times) and started <= times[0] and times[-1] <= finished
    assert _log(client, admin, wave_id=wave["id"]) == entries[1:]

    dump = json.dumps(entries)
    answers = all_answers(instrument, 0)
    texts = [v for v in answers.values() if isinstance(v, str) and len(v) > 12]
    assert not any(token in dump for token in tokens)
    assert not any(text in dump for text in texts)


def test_audit_log_is_for_admins_only(client: TestClient, app: FastAPI) -> None:
    for role in ("hr", "dashboard"):
        assert client.get("/api/v1/audit", headers=make_key(app, role)).status_code == 403
    assert client.get("/api/v1/audit").status_code == 401
