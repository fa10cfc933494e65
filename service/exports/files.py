"""The Parquet target: ``<root>/<table>/wave=<id>/part-0.parquet``, ``<root>/outcomes/part-0.parquet`` and
``<root>/manifest.json``.

Writing is two-phase so that readers never see a half-written export. Phase one writes every new file under a
hidden temporary name next to its final place (``.part-0.parquet.tmp``: DuckDB's and pyarrow's globs skip it);
a crash here leaves the previous export untouched. Phase two renames each file into place (an atomic replace
per file) and then the manifest, last. Files are deterministic (fixed row order, fixed schema, no time in
the metadata), so re-exporting unchanged results rewrites nothing: a file whose checksum is unchanged is
left as it is.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from service.exports import outcomes
from service.exports.schema import SCHEMA_VERSION, TABLES

ALL_TABLES = (*TABLES, outcomes.NAME)  # the waves' tables, then the tables of their own

MANIFEST = "manifest.json"
PART = "part-0.parquet"
TMP_SUFFIX = ".tmp"


# How every Parquet file is written (pyarrow's defaults, spelled out so that they cannot drift): snappy,
# dictionary encoding and column statistics. ``benchmarks/export.py`` writes its bare baseline with these too.
PARQUET_OPTIONS: dict[str, Any] = {"compression": "snappy", "use_dictionary": True, "write_statistics": True}


# Threads encoding one wave's tables: two, because one table (``cells``) is most of the work.
ENCODERS = 2


def write_parquet(table: pa.Table) -> pa.Buffer:
    """A table as Parquet bytes (an Arrow buffer, not copied into ``bytes``): the same for the same rows."""
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, **PARQUET_OPTIONS)
    data: pa.Buffer = sink.getvalue()
    return data


def _fsync_write(path: Path, data: bytes | pa.Buffer) -> None:
    with open(path, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def _sha256(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@dataclass
class FileTarget:
    root: Path
    _staged: list[tuple[Path, Path]] = field(default_factory=list)
    _entries: dict[str, dict[str, Any]] = field(default_factory=dict)
    _removed: set[int] = field(default_factory=set)

    @property
    def display(self) -> str:
        return f"file://{self.root}"

    def relative(self, table: str, wave_id: int) -> str:
        return f"{table}/wave={wave_id}/{PART}"

    def read_manifest(self) -> dict[str, Any] | None:
        try:
            manifest: dict[str, Any] = json.loads((self.root / MANIFEST).read_text())
        except (OSError, ValueError):
            return None
        return manifest

    def begin(self) -> None:
        """Start a run: forget nothing, but sweep temporary files a crashed run left behind."""
        self.root.mkdir(parents=True, exist_ok=True)
        for stale in [*self.root.glob(f"*/wave=*/.*{TMP_SUFFIX}"), *self.root.glob(f"*/.*{TMP_SUFFIX}")]:
            stale.unlink(missing_ok=True)
        (self.root / f".{MANIFEST}{TMP_SUFFIX}").unlink(missing_ok=True)
        manifest = self.read_manifest() or {}
        self._entries = {f["path"]: f for f in manifest.get("files", [])}
        self._staged, self._removed = [], set()

    def write_wave(self, wave_id: int, tables: Mapping[str, pa.Table], *, check: Callable[[], None]) -> None:
        """Phase one for one wave: ``check`` (the export's ``check_safe``) first, then every table as Parquet in
        memory, its SHA-256, and a temporary file (unless the final file has these bytes). Nothing reaches the
        disk unless the check passed.

        The tables are encoded by ``ENCODERS`` threads, largest first (pyarrow and hashlib let go of the GIL):
        one wave's ``cells`` is most of the work, and the other tables are encoded and written beside it."""
        check()
        order = sorted(TABLES, key=lambda name: tables[name].num_rows * tables[name].num_columns, reverse=True)
        with ThreadPoolExecutor(max_workers=ENCODERS, thread_name_prefix="peil-export") as pool:
            futures = {
                name: pool.submit(
                    self._stage_file, wave_id, name, tables[name], self._entries.get(self.relative(name, wave_id))
                )
                for name in order
            }
        failed = None
        for name in TABLES:  # every temporary file is staged before an error is raised, so abort() drops it
            try:
                entry, temporary = futures[name].result()
            except Exception as exc:  # the first one is raised below
                failed = failed or exc
                continue
            if temporary is not None:
                self._staged.append((temporary, self.root / entry["path"]))
                self._entries[entry["path"]] = entry
        if failed is not None:
            raise failed

    def write_table(self, name: str, table: pa.Table, *, check: Callable[[], None]) -> None:
        """Phase one for a table of its own (not by wave, e.g. ``outcomes``): ``check`` first, then its file."""
        check()
        relative = f"{name}/{PART}"
        entry, temporary = self._stage_file(None, name, table, self._entries.get(relative))
        if temporary is not None:
            self._staged.append((temporary, self.root / relative))
        self._entries[relative] = entry

    def _stage_file(
        self, wave_id: int | None, name: str, table: pa.Table, previous: Mapping[str, Any] | None
    ) -> tuple[dict[str, Any], Path | None]:
        """One table as Parquet, its manifest entry, and its temporary file (None: the final file already has
        these bytes, as the previous manifest says and its own checksum confirms). ``wave_id`` None: a table
        of its own."""
        relative = f"{name}/{PART}" if wave_id is None else self.relative(name, wave_id)
        data = write_parquet(table)
        digest = hashlib.sha256(data).hexdigest()
        final = self.root / relative
        entry = {
            "path": relative,
            "table": name,
            "wave_id": wave_id,
            "rows": table.num_rows,
            "bytes": len(data),
            "sha256": digest,
        }
        if previous == entry and _sha256(final) == digest:
            return entry, None
        final.parent.mkdir(parents=True, exist_ok=True)
        temporary = final.with_name(f".{PART}{TMP_SUFFIX}")
        _fsync_write(temporary, data)
        return entry, temporary

    def remove_wave(self, wave_id: int) -> None:
        """A wave whose results are gone: its partitions go in phase two."""
        self._removed.add(wave_id)
        self._entries = {p: e for p, e in self._entries.items() if e["wave_id"] != wave_id}

    def manifest(self, exported: Mapping[str, str]) -> dict[str, Any]:
        files = sorted(self._entries.values(), key=lambda e: (ALL_TABLES.index(e["table"]), e["wave_id"] or 0))
        rows = {name: sum(e["rows"] for e in files if e["table"] == name) for name in ALL_TABLES}
        return {
            "schema_version": SCHEMA_VERSION,
            "format": "parquet",
            "partitioning": "hive: <table>/wave=<wave_id>/part-0.parquet; outcomes/part-0.parquet",
            "tables": {name: {"rows": rows[name], "key": None} for name in ALL_TABLES},
            "waves": dict(sorted(exported.items(), key=lambda kv: int(kv[0]))),
            "files": files,
        }

    def commit(self, exported: Mapping[str, str], keys: Mapping[str, tuple[str, ...]]) -> str:
        """Phase two: rename the staged files into place, drop removed waves, then the manifest. Its SHA-256."""
        for temporary, final in self._staged:
            os.replace(temporary, final)
        for directory in {final.parent for _, final in self._staged}:
            _fsync_dir(directory)
        for wave_id in sorted(self._removed):
            for name in TABLES:
                shutil.rmtree(self.root / name / f"wave={wave_id}", ignore_errors=True)
        manifest = self.manifest(exported)
        for name in ALL_TABLES:
            manifest["tables"][name]["key"] = list(keys[name])
        data = (json.dumps(manifest, indent=2, sort_keys=False) + "\n").encode()
        path = self.root / MANIFEST
        if not path.exists() or path.read_bytes() != data:
            temporary = self.root / f".{MANIFEST}{TMP_SUFFIX}"
            _fsync_write(temporary, data)
            os.replace(temporary, path)
            _fsync_dir(self.root)
        self._staged = []
        return hashlib.sha256(data).hexdigest()

    def abort(self) -> None:
        """A failed run: drop its temporary files; the export stays as the last good run left it."""
        for temporary, _final in self._staged:
            temporary.unlink(missing_ok=True)
        self._staged = []
