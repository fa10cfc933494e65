"""The SQL target: the same tables in any database SQLAlchemy reaches, upserted by natural key in one transaction.

Tables are created if absent (in the URL's ``?schema=`` or, on PostgreSQL, ``peil_analytics``), with their
natural key as primary key. A run writes every exported wave's rows with INSERT ... ON CONFLICT DO UPDATE and
deletes the rows of those waves whose key is no longer produced (a rebuilt wave with one flag fewer), all in
one transaction: a reader sees the previous run or this one, never a mix.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine, make_url

from service.exports.schema import KEYS, SCHEMA_VERSION, SCHEMAS, TABLES

DEFAULT_SCHEMA = "peil_analytics"
CHUNK = 5_000


def _sql_type(kind: pa.DataType) -> sa.types.TypeEngine[Any]:
    if pa.types.is_int64(kind):
        return sa.BigInteger()
    if pa.types.is_float64(kind):
        return sa.Float(precision=53)
    if pa.types.is_boolean(kind):
        return sa.Boolean()
    if pa.types.is_timestamp(kind):
        return sa.DateTime(timezone=True)
    if pa.types.is_list(kind):
        return sa.JSON()
    return sa.Text()


def metadata(schema: str | None) -> sa.MetaData:
    """The exported tables as SQLAlchemy tables, plus ``export_meta`` (the schema version)."""
    meta = sa.MetaData(schema=schema)
    for name in TABLES:
        columns = [sa.Column(f.name, _sql_type(f.type), nullable=f.nullable) for f in SCHEMAS[name]]
        sa.Table(name, meta, *columns, sa.PrimaryKeyConstraint(*KEYS[name], name=f"pk_{name}"))
    sa.Table("export_meta", meta, sa.Column("key", sa.String(64), primary_key=True), sa.Column("value", sa.Text()))
    return meta


def split_url(target: str) -> tuple[str, str | None]:
    """The SQLAlchemy URL without ``?schema=`` and the schema (``peil_analytics`` by default on PostgreSQL)."""
    url = make_url(target)
    schema = url.query.get("schema")
    if isinstance(schema, tuple):
        schema = schema[-1]
    url = url.difference_update_query(["schema"])
    if url.drivername == "postgresql":
        url = url.set(drivername="postgresql+psycopg")
    if schema is None and url.get_backend_name() == "postgresql":
        schema = DEFAULT_SCHEMA
    return url.render_as_string(hide_password=False), schema


@dataclass
class SqlTarget:
    url: str
    schema: str | None
    _engine: Engine | None = None
    _conn: Connection | None = None
    _tables: dict[str, sa.Table] = field(default_factory=dict)
    _digest: Any = None

    @property
    def display(self) -> str:
        shown = make_url(self.url).render_as_string(hide_password=True)
        return shown + (f"?schema={self.schema}" if self.schema else "")

    def begin(self) -> None:
        from service.db import make_engine

        self._engine = make_engine(self.url)
        self._conn = self._engine.connect()
        self._conn.begin()
        if self.schema is not None and self._conn.dialect.name == "postgresql":
            self._conn.execute(sa.text(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"'))
        meta = metadata(self.schema)
        meta.create_all(self._conn, checkfirst=True)
        self._tables = {t.name: t for t in meta.sorted_tables}
        self._digest = hashlib.sha256()

    def _insert(self, table: sa.Table) -> Any:
        dialect = self._conn.dialect.name if self._conn is not None else ""
        if dialect == "postgresql":
            return postgresql.insert(table)
        if dialect == "sqlite":
            return sqlite.insert(table)
        raise ValueError(f"the SQL export supports PostgreSQL and SQLite, not {dialect}")

    def write_wave(self, wave_id: int, tables: Mapping[str, pa.Table], *, check: Callable[[], None]) -> None:
        """Upsert one wave's rows and delete its rows no longer produced; ``check`` (``check_safe``) first."""
        assert self._conn is not None, "begin() first"
        check()
        for name in TABLES:
            table = self._tables[name]
            keys = KEYS[name]
            rows = tables[name].to_pylist()
            self._digest.update(f"{name}/{wave_id}:{len(rows)};".encode())
            insert = self._insert(table)
            statement = insert.on_conflict_do_update(
                index_elements=list(keys),
                set_={c.name: insert.excluded[c.name] for c in table.columns if c.name not in keys},
            )
            for start in range(0, len(rows), CHUNK):
                self._conn.execute(statement, rows[start : start + CHUNK])
            produced = {tuple(row[k] for k in keys) for row in rows}
            key_columns = [table.c[k] for k in keys]
            existing = self._conn.execute(sa.select(*key_columns).where(table.c.wave_id == wave_id)).all()
            stale = [tuple(row) for row in existing if tuple(row) not in produced]
            for start in range(0, len(stale), CHUNK):
                chunk = stale[start : start + CHUNK]
                self._conn.execute(sa.delete(table).where(sa.tuple_(*key_columns).in_(chunk)))

    def remove_wave(self, wave_id: int) -> None:
        assert self._conn is not None, "begin() first"
        for name in TABLES:
            table = self._tables[name]
            self._conn.execute(sa.delete(table).where(table.c.wave_id == wave_id))

    def commit(self, exported: Mapping[str, str], keys: Mapping[str, tuple[str, ...]]) -> str:
        assert self._conn is not None, "begin() first"
        meta = self._tables["export_meta"]
        values = {"schema_version": str(SCHEMA_VERSION), "waves": json.dumps(dict(sorted(exported.items())))}
        insert = self._insert(meta)
        self._conn.execute(
            insert.on_conflict_do_update(index_elements=["key"], set_={"value": insert.excluded.value}),
            [{"key": k, "value": v} for k, v in values.items()],
        )
        self._digest.update(values["waves"].encode())
        self._conn.commit()
        self._close()
        return str(self._digest.hexdigest())

    def abort(self) -> None:
        if self._conn is not None:
            self._conn.rollback()
        self._close()

    def _close(self) -> None:
        if self._conn is not None:
            self._conn.close()
        if self._engine is not None:
            self._engine.dispose()
        self._conn, self._engine = None, None
