"""No API answer, CSV, log line, audit entry or export file holds a link token: a whole wave, from upload through
mail, answers, reminders, removal, close, results and export, scanned for every participant's token."""

from __future__ import annotations

import logging
import time
from pathlib import Path

from fastapi import FastAPI
from fastapi.testclient import TestClient

from service.invitations.sender import FileSender
from service.waves import close
from tests.factories import create_wave, make_key, participants, put_tree
from tests.forms.answers import all_answers, as_fields
from tests.mail import outbox, run_mail_job, tokens_for

CSV = {"accept": "text/csv"}


def test_no_token_in_any_answer_log_or_export(app: FastAPI, client: TestClient, caplog, tmp_path: Path) -> None:
    caplog.set_level(logging.DEBUG)
    hr, dashboard, admin = make_key(app, "hr"), make_key(app, "dashboard"), make_key(app, "admin")
    put_tree(client, hr)
    seen: list[str] = []  # every body HR, a dashboard or an admin got

    def call(method: str, path: str, headers: dict[str, str], **kwargs: object) -> str:
        response = client.request(method, path, headers=headers, **kwargs)  # type: ignore[arg-type]
        assert response.status_code < 500, response.text
        seen.append(response.text)
        return response.text

    wave = create_wave(client, hr)
    wid = wave["id"]
    rows = participants(wid, per_team=6)
    call("POST", f"/api/v1/waves/{wid}/participants", hr, json={"participants": rows})
    emails = [row["email"] for row in rows]
    csv_rows = "unit_key,email,tenure_band,location\nteam1,csv.person@example.com,<1,A\n"
    call("POST", f"/api/v1/waves/{wid}/participants", {**hr, **CSV, "content-type": "text/csv"}, content=csv_rows)
    emails.append("csv.person@example.com")
    call("GET", f"/api/v1/waves/{wid}", hr)
    call("POST", f"/api/v1/waves/{wid}/open", hr)
    late = {"participants": [{"unit_key": "team1", "email": "late@example.com", "attributes": {}}]}
    call("POST", f"/api/v1/waves/{wid}/participants", hr, json=late)  # 409

    folder = tmp_path / "outbox"
    run_mail_job(app, FileSender(folder))
    tokens = tokens_for(outbox(folder), emails)
    instrument = app.state.instruments[("career-safety", 1)].instrument
    for n, token in enumerate(tokens[:-6]):  # all but a few answer
        assert client.post(f"/s/{token}", data=as_fields(all_answers(instrument, n))).status_code == 200
    call("POST", f"/api/v1/waves/{wid}/reminders", hr)
    run_mail_job(app, FileSender(folder))
    for who in (hr, dashboard):
        call("GET", "/api/v1/waves", who)
        call("GET", f"/api/v1/waves/{wid}", who)
        call("GET", f"/api/v1/waves/{wid}/participation", who)
        call("GET", f"/api/v1/waves/{wid}/participation", {**who, **CSV})
    call("POST", f"/api/v1/waves/{wid}/participants/removals", hr, json={"emails": [emails[-1]]})
    call("POST", f"/api/v1/waves/{wid}/close", hr)
    close.run_due(app.state.sessionmaker, app.state.instruments)  # the close job, as the worker runs it
    call("GET", f"/api/v1/waves/{wid}", hr)
    for what in ("results", "heatmap", "flags", "participation"):
        call("GET", f"/api/v1/waves/{wid}/{what}", hr)
        call("GET", f"/api/v1/waves/{wid}/{what}", {**hr, **CSV})
    call("GET", f"/api/v1/waves/{wid}/comments", hr, params={"unit": "org"})
    call("GET", f"/api/v1/waves/{wid}/comments", {**hr, **CSV}, params={"unit": "org"})
    call("GET", "/api/v1/units/org/trend", dashboard, params={"construct": "psych_safety"})
    call("GET", "/api/v1/audit", admin)

    settings = app.state.settings
    export = tmp_path / "export"
    settings.export_target, old = export.as_uri(), settings.export_target
    try:
        call("POST", "/api/v1/exports", hr, json={"full": True})
        for _ in range(600):  # an export that outlasts the request's wait goes on in the background
            if "running" not in call("GET", "/api/v1/exports", hr):
                break
            time.sleep(0.1)
    finally:
        settings.export_target = old
    files = [path.read_bytes() for path in export.rglob("*") if path.is_file()]
    assert files, "the export wrote files"

    # Everything the service logged (not the test's own HTTP client, which plays the participants, or mail server).
    logs = "\n".join(r.getMessage() for r in caplog.records if not r.name.startswith(("httpx", "httpcore", "mail.")))
    assert "mail: a reminder round" in logs  # the mail job's own lines are among those scanned
    assert len(seen) > 25 and all("/s/" not in body for body in seen)
    for token in tokens:
        assert not any(token in body for body in seen), "a token in an API answer"
        assert token not in logs, "a token in a log line"
        assert not any(token.encode() in data for data in files), "a token in an export file"
