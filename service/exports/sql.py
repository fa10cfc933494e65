"""The SQL target: the same tables in any database SQLAlchemy reaches, upserted by natural key in one transaction.

Tables are created if absent (in the URL's ``?schema=`` or, on PostgreSQL, ``peil_analytics``), with their
natural key as primary key. A run writes every exported wave's rows with INSERT ... ON CONFLICT DO UPDATE and
deletes the rows of those waves whose key is no longer produced (a rebuilt wave with one flag fewer), all in
one transaction: a reader sees the previous run or this one, never a mix.

On PostgreSQL each table of a wave is one batch, set-based: its rows go as CSV (written by Arrow) through COPY
into a temporary table of the same shape (dropped at commit), then one INSERT ... SELECT ... ON CONFLICT DO
UPDATE upserts them all by natural key, and one DELETE ... WHERE NOT EXISTS drops the wave's rows the stage does
not hold: about three times faster than one INSERT per row, even pipelined (``benchmarks/README.md``,
``benchmarks/export.py --small --sql URL``). Elsewhere (SQLite) rows go by executemany.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

import pyarrow as pa
import pyarrow.csv as pacsv
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine, make_url

from service.exports import outcomes
from service.exports.schema import KEYS, SCHEMA_VERSION, SCHEMAS, TABLES

if TYPE_CHECKING:
    import psycopg

DEFAULT_SCHEMA = "peil_analytics"
CHUNK = 5_000  # rows per executemany (SQLite) and per stale-key DELETE
COPY_ROWS = 100_000  # rows per piece of CSV sent to COPY (bounds the memory of one piece)
_CSV = pacsv.WriteOptions(include_header=False, quoting_style="needed")  # strings quoted: '' is "", null is empty


def _sql_type(kind: pa.DataType) -> sa.types.TypeEngine[Any]:
    if pa.types.is_int64(kind):
        return sa.BigInteger()
    if pa.types.is_float64(kind):
        return sa.Float(precision=53)
    if pa.types.is_boolean(kind):
        return sa.Boolean()
    if pa.types.is_timestamp(kind):
        return sa.DateTime(timezone=True)
    if pa.types.is_date32(kind):
        return sa.Date()
    if pa.types.is_list(kind):
        return sa.JSON()
    return sa.Text()


def metadata(schema: str | None) -> sa.MetaData:
    """The exported tables as SQLAlchemy tables, plus ``export_meta`` (the schema version)."""
    meta = sa.MetaData(schema=schema)
    shapes = [(name, SCHEMAS[name], KEYS[name]) for name in TABLES] + [(outcomes.NAME, outcomes.SCHEMA, outcomes.KEY)]
    for name, fields, key in shapes:
        columns = [sa.Column(f.name, _sql_type(f.type), nullable=f.nullable) for f in fields]
        sa.Table(name, meta, *columns, sa.PrimaryKeyConstraint(*key, name=f"pk_{name}"))
    sa.Table("export_meta", meta, sa.Column("key", sa.String(64), primary_key=True), sa.Column("value", sa.Text()))
    return meta


def _csv(rows: pa.Table, names: Sequence[str]) -> pa.Buffer:
    """Rows as CSV for PostgreSQL's COPY, columns in ``names`` order: a list column as its JSON text (as the
    JSON type would store it), nulls empty, strings quoted (so that '' stays an empty string), floats written
    to round-trip exactly."""
    columns = []
    for name in names:
        column = rows.column(name)
        if pa.types.is_list(column.type):
            column = pa.array([None if v is None else json.dumps(v) for v in column.to_pylist()], type=pa.string())
        columns.append(column)
    sink = pa.BufferOutputStream()
    pacsv.write_csv(pa.Table.from_arrays(columns, names=list(names)), sink, write_options=_CSV)
    data: pa.Buffer = sink.getvalue()
    return data


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
    _stages: dict[str, sa.Table] = field(default_factory=dict)  # the temporary stages this run has created

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
        self._stages = {}

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
            rows = tables[name]
            self._digest.update(f"{name}/{wave_id}:{rows.num_rows};".encode())
            if self._conn.dialect.name == "postgresql":
                self._copy_upsert(self._tables[name], KEYS[name], wave_id, rows)
            else:
                self._executemany_upsert(self._tables[name], KEYS[name], wave_id, rows)

    def _copy_upsert(self, table: sa.Table, keys: Sequence[str], wave_id: int, rows: pa.Table) -> None:
        """PostgreSQL: the rows through COPY into a temporary stage, then one upsert and one DELETE from it."""
        assert self._conn is not None
        stage = self._stage(table)
        quote = self._conn.dialect.identifier_preparer.quote
        names = [c.name for c in table.columns]
        raw = cast("psycopg.Connection[Any]", self._conn.connection.dbapi_connection)
        with raw.cursor() as cursor:
            columns = ", ".join(quote(n) for n in names)
            with cursor.copy(f"COPY {quote(stage.name)} ({columns}) FROM STDIN (FORMAT csv)") as copy:
                for start in range(0, rows.num_rows, COPY_ROWS):
                    copy.write(memoryview(_csv(rows.slice(start, COPY_ROWS), names)))
        insert = postgresql.insert(table).from_select(names, sa.select(*stage.c))
        values = {n: insert.excluded[n] for n in names if n not in keys}
        self._conn.execute(
            insert.on_conflict_do_update(index_elements=list(keys), set_=values)
            if values
            else insert.on_conflict_do_nothing(index_elements=list(keys))
        )
        held = sa.exists().where(*(stage.c[k] == table.c[k] for k in keys))
        self._conn.execute(sa.delete(table).where(table.c.wave_id == wave_id, ~held))

    def _stage(self, table: sa.Table) -> sa.Table:
        """The empty temporary table of ``table``'s shape that a wave's rows are copied into: created once per
        run (and dropped when it commits), emptied for every wave."""
        assert self._conn is not None
        stage = self._stages.get(table.name)
        if stage is None:
            stage = sa.Table(
                f"peil_stage_{table.name}",
                sa.MetaData(),
                *(sa.Column(c.name, c.type) for c in table.columns),
                prefixes=["TEMPORARY"],
                postgresql_on_commit="DROP",
            )
            stage.create(self._conn)
            self._stages[table.name] = stage
        else:
            self._conn.exec_driver_sql(f"TRUNCATE {self._conn.dialect.identifier_preparer.quote(stage.name)}")
        return stage

    def _executemany_upsert(self, table: sa.Table, keys: Sequence[str], wave_id: int, rows: pa.Table) -> None:
        """Elsewhere: INSERT ... ON CONFLICT DO UPDATE by executemany, then the stale keys deleted."""
        assert self._conn is not None
        records = rows.to_pylist()
        insert = self._insert(table)
        statement = insert.on_conflict_do_update(
            index_elements=list(keys),
            set_={c.name: insert.excluded[c.name] for c in table.columns if c.name not in keys},
        )
        for start in range(0, len(records), CHUNK):
            self._conn.execute(statement, records[start : start + CHUNK])
        produced = {tuple(row[k] for k in keys) for row in records}
        key_columns = [table.c[k] for k in keys]
        existing = self._conn.execute(sa.select(*key_columns).where(table.c.wave_id == wave_id)).all()
        stale = [tuple(row) for row in existing if tuple(row) not in produced]
        for start in range(0, len(stale), CHUNK):
            chunk = stale[start : start + CHUNK]
            self._conn.execute(sa.delete(table).where(sa.tuple_(*key_columns).in_(chunk)))

    def write_table(self, name: str, table: pa.Table, *, check: Callable[[], None]) -> None:
        """A table of its own (not by wave, e.g. ``outcomes``): ``check`` first, then its rows replace the old
        ones (small tables: a DELETE and an executemany, in the run's one transaction)."""
        assert self._conn is not None, "begin() first"
        check()
        target = self._tables[name]
        self._digest.update(f"{name}:{table.num_rows};".encode())
        self._conn.execute(sa.delete(target))
        records = table.to_pylist()
        for start in range(0, len(records), CHUNK):
            self._conn.execute(sa.insert(target), records[start : start + CHUNK])

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
