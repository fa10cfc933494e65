"""Fixtures for the resilience tests: a fresh migrated database per test, on SQLite and on PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from tests.conftest import migrated_database
from tests.resilience.live import LiveServer, engine_for


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def fresh_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database migrated to head, for this test only."""
    with migrated_database(request.param, tmp_path) as url:
        yield url


@pytest.fixture
def fresh_engine(fresh_url: str) -> Iterator[Engine]:
    engine = engine_for(fresh_url)
    yield engine
    engine.dispose()


@pytest.fixture
def server(fresh_url: str, fresh_engine: Engine, tmp_path: Path) -> Iterator[LiveServer]:
    """`peil serve --workers 2` on the fresh database; stopped (whatever state it is in) after the test."""
    live = LiveServer(fresh_url, tmp_path)
    live.start()
    try:
        yield live
    finally:
        live.stop()
