"""The SQL export into PostgreSQL (database ``test``, its own schema): read back with psycopg, upserted by natural
key, the same rows as the Parquet export, one transaction per run, nothing small and nothing personal."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pyarrow as pa
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from service.config import Settings
from service.exports import sql
from service.exports.schema import KEYS, SCHEMAS, TABLES
from service.exports.service import open_target
from tests.conftest import PG_ADMIN_URL
from tests.exports.conftest import SECRET_TEXT, ClosedWave, close_wave_with_answers, export
from tests.exports.readers import assert_safe, read_table, secrets_of


def _read(schema: str) -> dict[str, pa.Table]:
    """Every exported table as PostgreSQL returns it, ordered by its key."""
    out = {}
    with psycopg.connect(PG_ADMIN_URL) as conn:
        for name in TABLES:
            columns = [f.name for f in SCHEMAS[name]]
            order = ", ".join(f'"{k}"' for k in KEYS[name])
            rows = conn.execute(
                f'SELECT {", ".join(chr(34) + c + chr(34) for c in columns)} FROM "{schema}"."{name}" ORDER BY {order}'
            ).fetchall()
            out[name] = pa.Table.from_pylist([dict(zip(columns, r, strict=True)) for r in rows], schema=SCHEMAS[name])
    return out


def _sorted(table: pa.Table, name: str) -> list[dict]:
    return sorted(table.select([f.name for f in SCHEMAS[name]]).to_pylist(), key=lambda r: [r[k] for k in KEYS[name]])


def test_sql_export_reads_back_like_the_files(
    app: FastAPI, client: TestClient, closed_wave: ClosedWave, settings: Settings, pg_schema, tmp_path: Path
) -> None:
    url, schema = pg_schema
    sql_settings = settings.model_copy(update={"export_target": url})
    run = export(app, sql_settings)
    assert run.status == "succeeded", run.error
    assert run.target.endswith(f"?schema={schema}")
    stored = _read(schema)
    assert {name: t.num_rows for name, t in stored.items()} == {name: run.rows[name] for name in TABLES}
    assert run.rows["outcomes"] == 0  # no outcomes uploaded: tests/exports/test_outcomes.py has some

    file_settings = settings.model_copy(update={"export_target": f"file://{tmp_path / 'files'}"})
    assert export(app, file_settings).status == "succeeded"
    for name in TABLES:
        from_files = _sorted(read_table(tmp_path / "files", name), name)
        from_sql = _sorted(stored[name], name)
        assert from_sql == from_files, name  # float8 keeps every bit

    with app.state.sessionmaker() as session:
        forbidden = [*secrets_of(session), SECRET_TEXT, *(r.token for r in closed_wave.respondents)]
    assert_safe(stored, 5, forbidden)
    with psycopg.connect(PG_ADMIN_URL) as conn:
        means = conn.execute(
            f"""SELECT c.unit, round(c.mean::numeric, 9) FROM "{schema}".cells c JOIN "{schema}".units u
                USING (wave_id, unit) WHERE u.depth = 1 AND c.construct = 'psych_safety' AND c.attribute = ''
                ORDER BY c.unit"""
        ).fetchall()
        primary = conn.execute(
            """SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid
               AND a.attnum = ANY(i.indkey) WHERE i.indrelid = %s::regclass AND i.indisprimary""",
            [f'"{schema}".cells'],
        ).fetchall()
    assert [u for u, _ in means] == ["div1", "div2"] and all(m is not None for _, m in means)
    assert {a for (a,) in primary} == set(KEYS["cells"])


def test_sql_upsert_is_idempotent_and_drops_stale_rows(
    app: FastAPI, client: TestClient, closed_wave: ClosedWave, settings: Settings, pg_schema
) -> None:
    url, schema = pg_schema
    sql_settings = settings.model_copy(update={"export_target": url})
    assert export(app, sql_settings).status == "succeeded"
    first = _read(schema)
    assert export(app, sql_settings).waves == []
    assert export(app, sql_settings, full=True).waves == [closed_wave.id]
    assert _read(schema) == first  # the same rows, not twice

    # A stale row (as if an earlier build had flagged one more unit) goes when its wave is exported again.
    with psycopg.connect(PG_ADMIN_URL) as conn:
        conn.execute(
            f"""INSERT INTO "{schema}".flags
                VALUES (%s, 'team1', 'mobility', 'barrier', 'stale', 'high', '{{}}', 'x', 'x')""",
            [closed_wave.id],
        )
    second = close_wave_with_answers(client, app, closed_wave.hr, seed=21, name="Winter")
    assert export(app, sql_settings).waves == [second.id]
    assert _read(schema)["flags"].num_rows == first["flags"].num_rows + _count(schema, "flags", second.id) + 1
    from service.waves import close

    close.rebuild(app.state.sessionmaker, closed_wave.id, app.state.instruments, actor="test")
    assert export(app, sql_settings).waves == [closed_wave.id]
    after = _read(schema)
    assert after["flags"].num_rows == first["flags"].num_rows + _count(schema, "flags", second.id)


def _count(schema: str, table: str, wave_id: int) -> int:
    with psycopg.connect(PG_ADMIN_URL) as conn:
        row = conn.execute(f'SELECT count(*) FROM "{schema}"."{table}" WHERE wave_id = %s', [wave_id]).fetchone()
    assert row is not None
    return int(row[0])


def test_a_failed_sql_run_commits_nothing(
    app: FastAPI,
    client: TestClient,
    closed_wave: ClosedWave,
    settings: Settings,
    pg_schema,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url, schema = pg_schema
    sql_settings = settings.model_copy(update={"export_target": url})
    assert export(app, sql_settings).status == "succeeded"
    before = _read(schema)
    second = close_wave_with_answers(client, app, closed_wave.hr, seed=22, name="Winter")
    real = sql.SqlTarget.write_wave

    def half_then_fail(self, wave_id, tables, *, check):
        real(self, wave_id, {**tables}, check=check)  # every table of the wave written inside the transaction...
        raise RuntimeError("connection lost (injected)")  # ...and then the run dies before its commit

    monkeypatch.setattr(sql.SqlTarget, "write_wave", half_then_fail)
    failed = export(app, sql_settings)
    assert failed.status == "failed" and "connection lost (injected)" in (failed.error or "")
    assert _read(schema) == before
    monkeypatch.undo()
    assert export(app, sql_settings).waves == [second.id]


def test_target_urls_and_credentials(settings: Settings) -> None:
    target = open_target(settings.model_copy(update={"export_target": "postgresql://bi:s3cret@db.example/warehouse"}))
    assert isinstance(target, sql.SqlTarget)
    assert target.schema == "peil_analytics"  # the default schema on PostgreSQL
    assert "s3cret" not in target.display and "bi:***@db.example" in target.display
    assert "s3cret" in target.url  # the driver still gets it
    custom = open_target(settings.model_copy(update={"export_target": "postgresql://db.example/w?schema=hr_bi"}))
    assert isinstance(custom, sql.SqlTarget) and custom.schema == "hr_bi" and "schema=" not in custom.url
    default = open_target(settings.model_copy(update={"export_target": None}))
    assert default.display == f"file://{(settings.data_dir / 'export').resolve()}"
    if settings.is_sqlite:
        with pytest.raises(ValueError, match="own database"):
            open_target(settings.model_copy(update={"export_target": settings.database_url}))
