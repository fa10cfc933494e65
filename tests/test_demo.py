"""`peil demo`, as `make run` uses it: an organisation, a closed wave with published results, working keys."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from service.cli import app as cli
from service.config import get_settings
from tests.conftest import TEST_SECRET


@pytest.fixture
def peil(settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[CliRunner]:
    monkeypatch.setenv("PEIL_DATABASE_URL", settings.database_url)
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

    again = peil.invoke(cli, ["demo", "--once"])
    assert again.exit_code == 0 and "already loaded" in again.output
