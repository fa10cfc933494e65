"""`peil keys create | list | revoke` as an operator uses them: a revoked key stops working at once, and the
list shows when each key was last used."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from typer.testing import CliRunner

from service.cli import app as cli
from service.config import get_settings
from service.models import AuditEntry
from tests.conftest import TEST_SECRET


@pytest.fixture
def peil(settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[CliRunner]:
    monkeypatch.setenv("PEIL_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("PEIL_SECRET_KEY", TEST_SECRET)
    monkeypatch.setenv("PEIL_ENV", "test")
    get_settings.cache_clear()
    yield CliRunner()
    get_settings.cache_clear()


def test_revoke_from_the_command_line(client: TestClient, peil: CliRunner) -> None:
    created = peil.invoke(cli, ["keys", "create", "--role", "hr", "--name", "HR laptop"])
    assert created.exit_code == 0, created.output
    header, key = created.output.strip().splitlines()[-2:]
    key_id = header.split()[2]
    headers = {"Authorization": f"Bearer {key}"}

    listed = peil.invoke(cli, ["keys", "list"]).output
    assert f"{key_id}\thr\tHR laptop" in listed and "last used -" in listed and key not in listed

    assert client.get("/api/v1/waves", headers=headers).status_code == 200
    listed = peil.invoke(cli, ["keys", "list"]).output
    assert "last used -" not in listed and "active" in listed

    revoked = peil.invoke(cli, ["keys", "revoke", key_id])
    assert revoked.exit_code == 0 and f"revoked key {key_id}" in revoked.output
    refused = client.get("/api/v1/waves", headers=headers)
    assert refused.status_code == 401 and refused.json()["error"]["code"] == "unauthorized"
    assert "revoked" in peil.invoke(cli, ["keys", "list"]).output

    missing = peil.invoke(cli, ["keys", "revoke", "999999"])
    assert missing.exit_code == 1

    # Both are in the audit log, by command (no key acted), with the key's id and never the key.
    with client.app.state.sessionmaker() as session:
        entries = session.scalars(select(AuditEntry).order_by(AuditEntry.id)).all()
    audited = [(e.key_name, e.by_key_id, e.action, e.detail) for e in entries]
    assert audited == [
        ("peil keys create", None, "key.created", {"key_id": int(key_id), "role": "hr", "name": "HR laptop"}),
        ("peil keys revoke", None, "key.revoked", {"key_id": int(key_id)}),
    ]
    assert key not in str(audited)
