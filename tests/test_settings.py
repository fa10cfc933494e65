"""Settings and secrets: development is asked for, never assumed; a generated key is its owner's alone from the
first byte; the API schema is for key holders outside development."""

from __future__ import annotations

import os
import stat
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from service.app import create_app
from service.cli import app as cli
from service.config import Settings, generated_secret, get_settings
from tests.conftest import TEST_SECRET
from tests.factories import make_key


@pytest.fixture
def bare(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Path]:
    """An environment with no PEIL_ENV and no PEIL_SECRET_KEY, as a bare `peil serve` would meet."""
    for name in list(os.environ):
        if name.startswith("PEIL_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("PEIL_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("PEIL_DATABASE_URL", f"sqlite:///{tmp_path / 'peil.db'}")
    get_settings.cache_clear()
    yield tmp_path
    get_settings.cache_clear()


def test_without_env_and_secret_nothing_starts(bare: Path) -> None:
    with pytest.raises(ValueError, match=r"PEIL_SECRET_KEY is not set.*PEIL_ENV=development"):
        Settings().secret()
    with pytest.raises(ValueError, match="PEIL_SECRET_KEY is not set"):
        create_app(Settings(), scheduler=False)
    for command in (["serve", "--port", "1"], ["demo", "--once"]):
        refused = CliRunner().invoke(cli, command)
        assert refused.exit_code == 1, refused.output
        assert "peil: cannot start: PEIL_SECRET_KEY is not set" in refused.output
    assert not (bare / ".peil-secret").exists()  # and no key was made up on the quiet


def test_a_secret_without_env_is_production(bare: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PEIL_SECRET_KEY", TEST_SECRET)
    settings = Settings()
    assert settings.secret() == TEST_SECRET.encode() and not settings.is_development
    monkeypatch.setenv("PEIL_SECRET_KEY", "short")
    with pytest.raises(ValueError, match="at least 32"):
        Settings().secret()


def test_development_generates_a_key_for_its_owner_only(bare: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_chmod(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("the key file must be created with its mode, not changed after")

    monkeypatch.setattr(os, "chmod", no_chmod)
    monkeypatch.setattr(Path, "chmod", no_chmod)
    old_umask = os.umask(0)  # the most permissive umask: only the mode given at creation protects the file
    try:
        monkeypatch.setenv("PEIL_ENV", "development")
        key = Settings().secret()
        path = bare / ".peil-secret"
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert len(key) >= 32 and Settings().secret() == key  # restarts keep it
        assert sorted(p.name for p in bare.iterdir()) == [".peil-secret"]  # no temporary file left
    finally:
        os.umask(old_umask)


def test_processes_starting_at_once_agree_on_one_key(tmp_path: Path) -> None:
    path = tmp_path / "data" / ".peil-secret"
    keys: list[bytes] = []
    start = threading.Barrier(8)

    def read() -> None:
        start.wait()
        keys.append(generated_secret(path))

    threads = [threading.Thread(target=read) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(keys) == 8 and len(set(keys)) == 1


def test_a_key_file_others_can_read_is_refused(tmp_path: Path) -> None:
    path = tmp_path / ".peil-secret"
    path.write_text("k" * 48)
    path.chmod(0o644)
    with pytest.raises(ValueError, match="others may read it"):
        generated_secret(path)


def test_schema_and_docs_for_key_holders_only(client: TestClient, app: FastAPI) -> None:
    assert client.get("/openapi.json").status_code == 401
    assert client.get("/openapi.json", headers={"Authorization": "Bearer peil_nope"}).status_code == 401
    for page in ("/docs", "/redoc"):
        assert client.get(page).status_code == 404
    for role in ("dashboard", "hr", "admin"):
        schema = client.get("/openapi.json", headers=make_key(app, role))
        assert schema.status_code == 200 and "/api/v1/waves" in schema.json()["paths"]


def test_docs_are_open_in_development(settings: Settings, client: TestClient) -> None:
    development = create_app(settings.model_copy(update={"env": "development"}), scheduler=False)
    try:
        with TestClient(development) as open_client:
            assert open_client.get("/openapi.json").status_code == 200
            assert open_client.get("/docs").status_code == 200
    finally:
        development.state.engine.dispose()
