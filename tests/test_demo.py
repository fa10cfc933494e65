"""`peil demo`, as `make run` uses it: an organisation, a closed wave with published results, working keys, and
the open pulse wave's invitations in the outbox."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from typer.testing import CliRunner

from service.cli import app as cli
from service.config import get_settings
from service.models import Invitation
from tests.conftest import TEST_SECRET
from tests.mail import parse


@pytest.fixture
def peil(settings, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[CliRunner]:
    monkeypatch.setenv("PEIL_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("PEIL_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("PEIL_MAIL_URL", raising=False)
    monkeypatch.setenv("PEIL_SECRET_KEY", TEST_SECRET)
    monkeypatch.setenv("PEIL_ENV", "test")
    get_settings.cache_clear()
    yield CliRunner()
    get_settings.cache_clear()


def test_the_demo_publishes_the_organisation_and_most_teams(client: TestClient, peil: CliRunner) -> None:
    done = peil.invoke(cli, ["demo", "--once"])
    assert done.exit_code == 0, done.output
    assert "closed with results" in done.output
    wave = int(re.search(r"wave (\d+) \(career-safety\) closed", done.output).group(1))  # type: ignore[union-attr]
    key = re.search(r"Dashboard key \(shown once\): (\S+)", done.output).group(1)  # type: ignore[union-attr]
    headers = {"Authorization": f"Bearer {key}"}

    org = client.get(f"/api/v1/waves/{wave}/results", params={"unit": "demo"}, headers=headers)
    assert org.status_code == 200, org.text
    total = org.json()["units"][0]["total"]
    assert not total["suppressed"] and total["n"] > 1000
    heatmap = client.get(f"/api/v1/waves/{wave}/heatmap", headers=headers).json()
    teams = [row for row in heatmap["units"] if row["unit"].startswith("team-")]
    published = [row for row in teams if not row["suppressed"]]
    # Teams of 5 to 15 respondents: the small ones hide, and a few more for the range rule; most are shown.
    assert len(published) > len(teams) / 2, f"{len(published)} of {len(teams)} teams published"
    # The tour in the README uses this department.
    tour = client.get(f"/api/v1/waves/{wave}/results", params={"unit": "div-3-dep-1"}, headers=headers).json()
    assert not tour["units"][0]["total"]["suppressed"]

    # The open pulse wave's three participants were mailed into the outbox; the demo says where, and the links work.
    paths = re.findall(r"^Mail: (\S+)$", done.output, re.MULTILINE)
    printed = re.findall(r"its link: http://[^/]+(/s/\S+)$", done.output, re.MULTILINE)
    assert len(paths) == len(printed) == 3
    mails = [parse(Path(path).read_bytes()) for path in paths]
    assert sorted(m.to for m in mails) == ["anna@example.com", "bram@example.com", "chris@example.com"]
    assert {m.to: m.language for m in mails}["chris@example.com"] == "en"
    assert [f"/s/{m.token}?lang={m.language}" for m in mails] == printed
    for link in printed:
        assert client.get(link).status_code == 200
    with client.app.state.sessionmaker() as session:  # the closed wave's contacts are gone
        kept = session.scalar(
            select(func.count())
            .select_from(Invitation)
            .where(Invitation.wave_id == wave, Invitation.sealed_contact.is_not(None))
        )
        assert kept == 0

    # The year behind it: the pilot's effect with its interval, the focus areas, the exit wave's periods.
    effect = re.search(r"effect on mobility: ([+-][\d.]+) \(95 % interval ([+-][\d.]+) to ([+-][\d.]+)\)", done.output)
    assert effect is not None, done.output
    estimate, low, high = (float(x) for x in effect.groups())
    assert 0 < low < estimate < high  # the pilot department's mobility visibly rose
    assert re.search(r"^  against enps, 1\. career_conversation:", done.output, re.MULTILINE), done.output
    exit_wave = int(re.search(r"Exit wave (\d+) \(continuous\)", done.output).group(1))  # type: ignore[union-attr]
    hr_key = re.search(r"HR key \(shown once\): (\S+)", done.output).group(1)  # type: ignore[union-attr]
    hr = {"Authorization": f"Bearer {hr_key}"}
    shown = client.get(f"/api/v1/waves/{exit_wave}", headers=hr).json()
    assert shown["kind"] == "continuous" and shown["state"] == "open" and len(shown["periods"]) >= 2
    for period in shown["periods"]:
        assert period["state"] == "closed"
        cell = client.get(f"/api/v1/waves/{period['wave_id']}/results", headers=headers).json()["units"][0]["total"]
        assert not cell["suppressed"] and cell["n"] >= 5
    outcomes = client.get("/api/v1/outcomes", headers=headers)
    assert outcomes.status_code == 200 and len(outcomes.json()["periods"]) == 4, outcomes.text

    again = peil.invoke(cli, ["demo", "--once"])
    assert again.exit_code == 0 and "already loaded" in again.output
    assert re.findall(r"^Mail: (\S+)$", again.output, re.MULTILINE) == paths  # the same mails, pointed to again
