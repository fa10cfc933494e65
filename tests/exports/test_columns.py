"""The columnar copy stored beside each result table: the same rows as the JSON gives, used only while it belongs
to the stored table, derived again (and stored) when it is missing or stale, and checked like any other rows."""

from __future__ import annotations

import gzip
import json
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import update

from service.config import Settings
from service.exports import columns, files
from service.exports.rows import RESULT_TABLES, Derived, UnsafeExport, decode, derive
from service.models import WaveResult
from service.models.base import utcnow
from service.waves.purge import purge, purged
from tests.exports.conftest import ClosedWave, export
from tests.exports.readers import files_of
from tests.exports.test_files import _root


def _row(app: FastAPI, wave_id: int) -> tuple[bytes, bytes | None, datetime]:
    with app.state.sessionmaker() as session:
        row = session.get_one(WaveResult, wave_id)
        return row.table, row.columnar, row.built_at


def test_the_stored_copy_holds_the_rows_of_the_stored_json(app: FastAPI, closed_wave: ClosedWave) -> None:
    table, copy, built_at = _row(app, closed_wave.id)
    assert copy is not None
    stored = columns.decode(copy, built_at)
    assert stored is not None
    from_json = derive(decode(table))
    assert (stored.wave_id, stored.min_group_size, stored.constructs) == (
        from_json.wave_id,
        from_json.min_group_size,
        from_json.constructs,
    )
    for name in RESULT_TABLES:
        assert stored.tables[name].equals(from_json.tables[name]), name
    # A copy belongs to one build: another built_at, or another format, is not used.
    assert columns.decode(copy, built_at + timedelta(microseconds=1)) is None
    assert columns.decode(b"not a copy", built_at) is None


def _header(copy: bytes) -> dict:
    start = len(columns.MAGIC) + 4
    (length,) = columns._HEADER.unpack_from(copy, len(columns.MAGIC))
    header: dict = json.loads(copy[start : start + length])
    return header


def _mostly_hidden(derived: Derived) -> Derived:
    """The same wave with nine cells in ten hidden (their figures null), as in a large guarded table."""
    cells = derived.tables["cells"]
    hidden = pa.array(np.arange(cells.num_rows) % 10 != 0)
    for i, field in enumerate(cells.schema):
        if (pa.types.is_int64(field.type) or pa.types.is_float64(field.type)) and field.name != "wave_id":
            cells = cells.set_column(i, field, pc.if_else(hidden, pa.scalar(None, field.type), cells[i]))
    cells = cells.set_column(cells.schema.get_field_index("suppressed"), cells.schema.field("suppressed"), hidden)
    return replace(derived, tables={**derived.tables, "cells": cells})


def test_mostly_null_columns_are_kept_sparse_and_come_back_whole(
    app: FastAPI, closed_wave: ClosedWave, monkeypatch: pytest.MonkeyPatch
) -> None:
    table, _, built_at = _row(app, closed_wave.id)
    monkeypatch.setattr(columns, "SPARSE_MIN_ROWS", 0)  # the test wave is small: any table may be kept sparse
    for derived in (derive(decode(table)), _mostly_hidden(derive(decode(table)))):
        copy = columns.encode(derived, built_at)
        cells = derived.tables["cells"]
        sparse = [
            f.name
            for f in cells.schema
            if f.type in (pa.int64(), pa.float64()) and 2 * cells.column(f.name).null_count > cells.num_rows
        ]
        assert "enps" in sparse  # on the row of the nps construct only
        # the dense columns, the strings' characters, then one stream per set of columns null in the same rows
        assert len(_header(copy)["tables"]["cells"]["streams"]) == 2 + len(
            {tuple(pc.is_valid(cells.column(c)).to_pylist()) for c in sparse}
        )
        stored = columns.decode(copy, built_at)
        assert stored is not None
        for name in RESULT_TABLES:
            assert stored.tables[name].schema.equals(derived.tables[name].schema), name
            assert stored.tables[name].to_pylist() == derived.tables[name].to_pylist(), name
            assert [c.null_count for c in stored.tables[name].columns] == [
                c.null_count for c in derived.tables[name].columns
            ]
            # the same Parquet bytes as from the rows themselves
            assert files.write_parquet(stored.tables[name]) == files.write_parquet(derived.tables[name]), name


def test_an_export_from_a_sparse_copy_writes_the_same_files(
    app: FastAPI, client: TestClient, closed_wave: ClosedWave, file_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert export(app, file_settings).status == "succeeded"
    before = files_of(_root(file_settings))
    table, dense, built_at = _row(app, closed_wave.id)
    monkeypatch.setattr(columns, "SPARSE_MIN_ROWS", 0)
    copy = columns.of(decode(table), built_at)
    assert copy != dense
    with app.state.sessionmaker() as session, session.begin():
        session.execute(update(WaveResult).where(WaveResult.wave_id == closed_wave.id).values(columnar=copy))
    run = export(app, file_settings, full=True)
    assert run.status == "succeeded", run.error
    assert files_of(_root(file_settings)) == before
    assert _row(app, closed_wave.id)[1] == copy  # used as it is, not derived again


def test_a_table_stored_without_a_copy_exports_the_same_files_and_gets_one(
    app: FastAPI, client: TestClient, closed_wave: ClosedWave, file_settings: Settings
) -> None:
    assert export(app, file_settings).status == "succeeded"
    root = _root(file_settings)
    before = files_of(root)
    _, copy, built_at = _row(app, closed_wave.id)
    # As after the migration that added the column: no copy. Then as written by a worker running older code:
    # a copy of an earlier build.
    for stale in (None, columns.of(decode(_row(app, closed_wave.id)[0]), utcnow())):
        with app.state.sessionmaker() as session, session.begin():
            session.execute(update(WaveResult).where(WaveResult.wave_id == closed_wave.id).values(columnar=stale))
        run = export(app, file_settings, full=True)
        assert run.status == "succeeded", run.error
        assert files_of(root) == before
        _, backfilled, same = _row(app, closed_wave.id)
        assert same == built_at and backfilled == copy  # the run stored the copy the build would have stored


def test_a_tampered_copy_is_refused_like_tampered_json(
    app: FastAPI,
    client: TestClient,
    closed_wave: ClosedWave,
    file_settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert export(app, file_settings).status == "succeeded"
    root = _root(file_settings)
    before = files_of(root)
    table, _, built_at = _row(app, closed_wave.id)
    d = decode(table)
    published = next(c for c in d["cells"] if not c["suppressed"] and c["constructs"])
    published["n"] = 3
    published["constructs"][0]["n"] = 3
    with app.state.sessionmaker() as session, session.begin():
        session.execute(
            update(WaveResult).where(WaveResult.wave_id == closed_wave.id).values(columnar=columns.of(d, built_at))
        )
    written: list[Path] = []
    monkeypatch.setattr(files, "_fsync_write", lambda path, data: written.append(path))
    failed = export(app, file_settings, full=True)
    assert failed.status == "failed" and "smaller than 5" in (failed.error or "")
    assert written == []  # checked while encoding in memory: not even a temporary file was written
    assert files_of(root) == before


def test_purged_answers_leave_results_and_the_export_working(
    app: FastAPI, client: TestClient, closed_wave: ClosedWave, file_settings: Settings
) -> None:
    assert export(app, file_settings).status == "succeeded"
    before = files_of(_root(file_settings))
    with app.state.sessionmaker() as session, session.begin():
        done = purge(session, timedelta(0), actor="test", now=utcnow() + timedelta(days=1))
        assert [p.wave_id for p in done if p.skipped is None] == [closed_wave.id]
        assert purged(session, closed_wave.id)
        # and a copy lost after the purge can still be derived: from the stored JSON, not from answers
        session.execute(update(WaveResult).where(WaveResult.wave_id == closed_wave.id).values(columnar=None))
    assert client.get(f"/api/v1/waves/{closed_wave.id}/results", headers=closed_wave.hr).status_code == 200
    run = export(app, file_settings, full=True)
    assert run.status == "succeeded", run.error
    assert files_of(_root(file_settings)) == before
    assert _row(app, closed_wave.id)[1] is not None
    json.loads(gzip.decompress(_row(app, closed_wave.id)[0]))  # the JSON is untouched


def test_rows_with_the_same_key_are_refused_where_rows_are_derived(app: FastAPI, closed_wave: ClosedWave) -> None:
    d = decode(_row(app, closed_wave.id)[0])
    d["participation"].append(d["participation"][0])
    with pytest.raises(UnsafeExport, match="same key"):
        derive(d)
    with pytest.raises(UnsafeExport, match="same key"):
        columns.of(d, utcnow())  # so no stored copy ever holds them
