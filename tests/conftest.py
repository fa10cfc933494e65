"""Fixtures: a migrated database per backend (SQLite and PostgreSQL), the app, clients, keys and factories.

Every API test runs on both databases. In CI (``CI=true``) a missing PostgreSQL server fails the run;
elsewhere the PostgreSQL variants are skipped with the reason.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest
from alembic import command
from alembic.config import Config
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text

from service.app import create_app
from service.config import REPO_ROOT, Settings
from service.models import Base

PG_ADMIN_URL = os.environ.get("PEIL_TEST_POSTGRES", "postgresql://127.0.0.1:5432/test")
KEEP = {"alembic_version", "published_instruments"}
TEST_SECRET = "t" * 48


def alembic_config(url: str) -> Config:
    config = Config(str(REPO_ROOT / "alembic.ini"))
    config.attributes["url"] = url
    config.attributes["configure_logger"] = False
    return config


def _postgres_available() -> str | None:
    try:
        with psycopg.connect(PG_ADMIN_URL, connect_timeout=3):
            return None
    except psycopg.Error as exc:
        return f"PostgreSQL at {PG_ADMIN_URL} is not reachable: {str(exc).strip()[:200]}"


def make_postgres_database() -> tuple[str, str]:
    """A fresh, empty database on the PostgreSQL server; returns (sqlalchemy url, name)."""
    problem = _postgres_available()
    if problem is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI requires PostgreSQL: {problem}")
        pytest.skip(problem)
    name = f"peil_test_{secrets.token_hex(4)}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = PG_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://")
    return f"{base}/{name}", name


def drop_postgres_database(name: str) -> None:
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def migrated_database(kind: str, folder: Path) -> Iterator[str]:
    """An empty database migrated to head by Alembic: a SQLite file in ``folder``, or a new PostgreSQL database."""
    if kind == "sqlite":
        url = f"sqlite:///{folder / 'peil.db'}"
        command.upgrade(alembic_config(url), "head")
        yield url
        return
    url, name = make_postgres_database()
    try:
        command.upgrade(alembic_config(url), "head")
        yield url
    finally:
        drop_postgres_database(name)


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A database migrated to head by Alembic, once per backend."""
    with migrated_database(request.param, tmp_path_factory.mktemp("db")) as url:
        yield url


@pytest.fixture(scope="session")
def settings(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return Settings(
        env="test",
        database_url=database_url,
        secret_key=TEST_SECRET,  # type: ignore[arg-type]
        data_dir=tmp_path_factory.mktemp("data"),
        base_url="http://testserver",
        mail_rate=10_000,  # the throttle has a test of its own; here it would only slow the suite
    )


@pytest.fixture(scope="session")
def app(settings: Settings) -> Iterator[FastAPI]:
    application = create_app(settings, scheduler=False)
    with TestClient(application):  # runs the lifespan once: instruments published
        yield application


@pytest.fixture(scope="session")
def engine(app: FastAPI) -> Engine:
    result: Engine = app.state.engine
    return result


def _clean(engine: Engine) -> None:
    with engine.begin() as conn:
        tables = [t for t in reversed(Base.metadata.sorted_tables) if t.name not in KEEP]
        if conn.dialect.name == "postgresql":
            conn.execute(text("TRUNCATE " + ", ".join(f'"{t.name}"' for t in tables) + " RESTART IDENTITY CASCADE"))
        else:
            conn.exec_driver_sql("PRAGMA defer_foreign_keys=ON")  # units refer to units: check at commit
            for table in tables:
                conn.execute(table.delete())


@pytest.fixture
def client(app: FastAPI, engine: Engine) -> Iterator[TestClient]:
    """A client on a clean database (every table emptied before the test)."""
    _clean(engine)
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client


@pytest.fixture
def db(app: FastAPI, client: TestClient) -> Iterator[object]:
    """A session on the test database, for checking what was stored."""
    with app.state.sessionmaker() as session:
        yield session


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "database_url" in getattr(item, "fixturenames", ()) and "[postgresql" in item.nodeid:
            item.add_marker(pytest.mark.postgres)
