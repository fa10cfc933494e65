"""Benchmark of the Parquet export against a bare ``pyarrow.parquet.write_table`` of the same rows, in one run.

    .venv/bin/python benchmarks/export.py            # the scoring benchmark's organisation: 100,000 respondents,
                                                     # 10,000 units in 5 levels, 3 attributes, a previous wave
    .venv/bin/python benchmarks/export.py --small    # 10,000 respondents, 1,000 units
    .venv/bin/python benchmarks/export.py --cache /tmp/table.json.gz   # keep the built table for the next run

The result table is built with ``scoring.build_table`` on the scoring benchmark's synthetic wave (its generator,
imported) and stored as the service stores it (gzipped JSON, as in ``wave_results``). Building is not timed.
Then, best of ``--repeat``:

- export: what a run does for one wave: decode the stored blob, convert it to the exported Arrow tables,
  check the minimum group size, write every table to a temporary file with its SHA-256, rename into place,
  write the manifest (``service.exports``, the same code as ``peil export run``, without the database);
- bare: ``pq.write_table`` of the very same Arrow tables to files, nothing else.

Goal: export <= 2x bare. The breakdown shows where the export's time goes: ``decode`` is gunzip + ``json.loads``
of the stored form, a cost of how results are stored (the export cannot skip it), reported on its own line.
"""

from __future__ import annotations

import argparse
import gc
import gzip
import importlib.util
import json
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

HERE = Path(__file__).resolve().parent
# ``benchmarks/scoring.py`` would shadow the ``scoring`` package: import it under another name, from the repo root.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
sys.path.insert(0, str(HERE.parent))

import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402

from scoring import build_table  # noqa: E402
from service.exports.files import FileTarget  # noqa: E402
from service.exports.rows import WaveInfo, check_safe, decode, wave_tables  # noqa: E402
from service.exports.schema import KEYS, TABLES  # noqa: E402

T = TypeVar("T")


def _scoring_benchmark() -> Any:
    spec = importlib.util.spec_from_file_location("scoring_benchmark", HERE / "scoring.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def stored_blob(respondents: int, units: int, cache: Path | None) -> bytes:
    """The result table as ``wave_results.table`` holds it, built by ``scoring.build_table`` (or from the cache)."""
    if cache is not None and cache.exists():
        print(f"result table: read from {cache} (a stored table written by an earlier run of this benchmark)")
        return cache.read_bytes()
    bench = _scoring_benchmark()
    data = bench.synthetic_wave(respondents, units, 5)
    previous = bench.synthetic_wave(respondents, units, 5, seed=8, wave_id=1, shift=0.1)
    start = time.perf_counter()
    table = build_table(data, previous)
    print(f"result table: scoring.build_table in {time.perf_counter() - start:.1f} s (not part of the comparison)")
    blob = gzip.compress(json.dumps(table.to_dict(), separators=(",", ":")).encode(), compresslevel=6)
    if cache is not None:
        cache.write_bytes(blob)
    return blob


def best(fn: Callable[[], T], repeat: int) -> tuple[float, T]:
    """Best wall time of ``repeat`` runs and the last result."""
    result: T
    times = []
    for _ in range(repeat):
        gc.collect()
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return min(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--small", action="store_true", help="10,000 respondents and 1,000 units")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--cache", type=Path, help="read/write the built result table here (gzipped JSON)")
    args = parser.parse_args()
    respondents, units = (10_000, 1_000) if args.small else (100_000, 10_000)
    blob = stored_blob(respondents, units, args.cache)
    now = datetime.now(UTC)
    info = WaveInfo("benchmark", now, now, now, ("tenure", "location", "contract"), now, {}, None)
    work = Path(tempfile.mkdtemp(prefix="peil-export-bench-"))
    timings: dict[str, float] = {}

    def export() -> dict[str, pa.Table]:
        shutil.rmtree(work / "export", ignore_errors=True)
        t0 = time.perf_counter()
        table = decode(blob)
        t1 = time.perf_counter()
        tables = wave_tables(table, info)
        t2 = time.perf_counter()
        check_safe(tables, int(table["min_group_size"]))
        t3 = time.perf_counter()
        target = FileTarget(work / "export")
        target.begin()
        target.write_wave(int(table["wave_id"]), tables)
        target.commit({str(table["wave_id"]): now.isoformat()}, KEYS)
        t4 = time.perf_counter()
        timings.update(decode=t1 - t0, convert=t2 - t1, check=t3 - t2, write=t4 - t3)
        return tables

    def bare(tables: dict[str, pa.Table]) -> None:
        shutil.rmtree(work / "bare", ignore_errors=True)
        for name in TABLES:
            folder = work / "bare" / name
            folder.mkdir(parents=True)
            pq.write_table(tables[name], folder / "part-0.parquet")

    try:
        t_export, tables = best(export, args.repeat)
        breakdown = dict(timings)
        t_bare, _ = best(lambda: bare(tables), args.repeat)
        rows = {name: tables[name].num_rows for name in TABLES}
        print(f"organisation: {respondents:,} respondents, {units:,} units; stored table {len(blob) / 2**20:.1f} MiB")
        print("rows: " + ", ".join(f"{name} {count:,}" for name, count in rows.items() if count))
        print(f"bare pyarrow.parquet.write_table, same rows: {t_bare:8.3f} s")
        ratio = t_export / t_bare
        print(f"peil export (stored table -> files):         {t_export:8.3f} s   ratio {ratio:.2f}x (goal <= 2x)")
        print("  of which: " + ", ".join(f"{k} {v:.3f} s" for k, v in breakdown.items()) + " (last run)")
        after_decode = breakdown["convert"] + breakdown["check"] + breakdown["write"]
        print(
            f"  without decoding the stored gzipped JSON (gunzip + json.loads): {after_decode:.3f} s, "
            f"ratio {after_decode / t_bare:.2f}x"
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
