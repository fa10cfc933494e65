"""Reading an export back as a data team would (pyarrow, DuckDB, PostgreSQL), and the privacy checks on it."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.dataset as ds
from sqlalchemy import select
from sqlalchemy.orm import Session

from service.exports.schema import COUNT_COLUMNS, SCHEMAS, TABLES
from service.models import Invitation, Response

FORBIDDEN_COLUMNS = ("token", "link", "response", "comment", "text", "answer", "invitation")


def read_table(root: Path, name: str) -> pa.Table:
    """One exported table over all waves, with pyarrow's dataset reader and hive partitioning."""
    dataset = ds.dataset(root / name, format="parquet", partitioning="hive")
    return dataset.to_table()


def files_of(root: Path) -> dict[str, str]:
    """Every file under the export with its SHA-256 (relative path -> digest)."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def check_manifest(root: Path) -> dict[str, Any]:
    """The manifest names exactly the Parquet files on disk, with their true checksums and row counts."""
    manifest: dict[str, Any] = json.loads((root / "manifest.json").read_text())
    on_disk = {p for p in files_of(root) if p.endswith(".parquet")}
    assert {f["path"] for f in manifest["files"]} == on_disk
    for entry in manifest["files"]:
        path = root / entry["path"]
        assert hashlib.sha256(path.read_bytes()).hexdigest() == entry["sha256"], entry["path"]
        assert ds.dataset(path, format="parquet").count_rows() == entry["rows"]
    for name in TABLES:
        assert manifest["tables"][name]["rows"] == sum(f["rows"] for f in manifest["files"] if f["table"] == name)
    return manifest


def duck(root: Path) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection with one view per exported table, over the files (as the README shows)."""
    con = duckdb.connect()
    for name in TABLES:
        con.execute(
            f"CREATE VIEW {name} AS SELECT * FROM read_parquet('{root}/{name}/*/*.parquet', hive_partitioning = true)"
        )
    return con


def secrets_of(session: Session) -> list[str]:
    """What must never be exported: response ids and the token MACs (links are checked by the caller)."""
    found = [str(v) for v in session.scalars(select(Response.id))]
    found += [str(v) for v in session.scalars(select(Response.token_mac))]
    found += [str(v) for v in session.scalars(select(Invitation.token_hash))]
    return found


def _strings(values: Iterable[Any]) -> Iterable[str]:
    for value in values:
        if isinstance(value, str):
            yield value
        elif isinstance(value, list):
            yield from _strings(value)


def assert_safe(tables: Mapping[str, pa.Table], min_group_size: int, forbidden: Iterable[str]) -> None:
    """Nothing rests on fewer than ``min_group_size``; hidden rows carry no numbers; no forbidden string."""
    forbidden = [f for f in forbidden if f]
    for name, table in tables.items():
        assert not [c for c in table.column_names if any(word in c.lower() for word in FORBIDDEN_COLUMNS)], name
        rows = table.to_pylist()
        for column in COUNT_COLUMNS.get(name, ()):
            small = [r for r in rows if r[column] is not None and 0 < r[column] < min_group_size]
            assert small == [], f"{name}.{column} below {min_group_size}: {small[:3]}"
        if "suppressed" in table.column_names:
            numeric = [
                f.name
                for f in SCHEMAS[name]
                if (pa.types.is_floating(f.type) or pa.types.is_integer(f.type))
                and f.name not in ("wave_id", "items", "previous_wave_id")
            ]
            for row in rows:
                if row["suppressed"]:
                    assert row.get("reason", "reliability has none")
                    assert all(row[c] is None for c in numeric), (name, row)
        text = "\n".join(_strings(v for row in rows for v in row.values()))
        for secret in forbidden:
            assert secret not in text, f"{name} holds a secret: {secret[:12]}..."
