"""Migrations: an empty database goes up to head and back down to base, and the models agree with them."""

from __future__ import annotations

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from service.db import make_engine
from service.models import Base
from tests.conftest import alembic_config, drop_postgres_database, make_postgres_database


def _roundtrip(url: str) -> None:
    config = alembic_config(url)
    command.upgrade(config, "head")
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            tables = set(inspect(conn).get_table_names())
            assert set(Base.metadata.tables) <= tables
            diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata)
            assert diff == [], f"models and migrations disagree: {diff}"
        command.downgrade(config, "base")
        with engine.connect() as conn:
            assert set(inspect(conn).get_table_names()) <= {"alembic_version"}
        command.upgrade(config, "head")  # and up again: downgrades leave nothing behind
    finally:
        engine.dispose()


def test_sqlite_up_down_and_models_agree(tmp_path) -> None:
    _roundtrip(f"sqlite:///{tmp_path / 'migrate.db'}")


def test_postgresql_up_down_and_models_agree() -> None:
    url, name = make_postgres_database()
    try:
        _roundtrip(url)
    finally:
        drop_postgres_database(name)
