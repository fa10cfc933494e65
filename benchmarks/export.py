"""Benchmark of the Parquet export against a bare ``pyarrow.parquet.write_table`` of the same rows, in one run.

    .venv/bin/python benchmarks/export.py --cache /tmp/peil-export-100k.json.gz
                       # the scoring benchmark's organisation: 100,000 respondents, 10,000 units in 5 levels,
                       # 3 attributes, a previous wave; the table is built once (about 70 s) and kept in the cache
    .venv/bin/python benchmarks/export.py --small    # 10,000 respondents, 1,000 units

The result table: ``scoring.build_table`` on the scoring benchmark's synthetic wave (its generator, imported),
or read from ``--cache`` (gzipped JSON, as ``wave_results.table`` holds it) when that file exists. With
``--stand-in-guard`` the table is built with a stand-in suppression that hides only cells where a statistic rests
on fewer than k respondents (no complementary suppression), for when the guard is too slow at this size (it was
until the guard's rewrite). It publishes far more cells (0.9 million distribution rows instead of 85,000), so the
export has more to write: a denser table of the same shape. Building is not timed.

The table is then stored as the service stores it (``service.results.service.store``: the gzipped JSON and the
export's columnar copy) in a SQLite database in a temporary folder, with its wave, units and instrument.
Then ``--repeat`` times, alternating, each in a fresh process (as ``peil export run`` from cron; imports, the
database connection and pyarrow's lazy import of pandas are not timed), and again repeated in this process:

- export: ``service.exports.service.run_export(full=True)`` to a ``file://`` target, exactly what
  ``peil export run --full`` does: lock, run history, read the stored copy, ``check_safe``, encode every table
  as Parquet with ``files.PARQUET_OPTIONS``, write each to a temporary file with its SHA-256 and an fsync,
  rename into place, write the manifest, record the run (the target folder is emptied before each run, so that
  no file is skipped as unchanged);
- bare: ``pq.write_table`` of the very same Arrow tables with the same ``PARQUET_OPTIONS``, to files, nothing
  else (no checksum, no fsync, no rename); in its fresh process the tables are loaded first, not timed.

It prints the best of each, their ratio (goal: export <= 2x bare), the range of the ratios of each pair, the
CPU time of both (on a shared machine the steadier figure), and where the export's time goes (a separate pass
over the same steps). ``--fallback`` also times one run on a table stored before the columnar copy existed
(derived from the JSON, as every run did before).

``--sql URL`` times the SQL target instead (no goal in the issue): ``peil export run --full`` of the same stored
table into a schema of its own at that URL (created, then dropped), ``--repeat`` times: the first run inserts
every row, the next ones upsert the same rows again (the idempotent re-run), all in one transaction each.

    .venv/bin/python benchmarks/export.py --small --sql postgresql://127.0.0.1:5432/test
"""

from __future__ import annotations

import argparse
import gc
import gzip
import importlib.util
import json
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
# ``benchmarks/scoring.py`` would shadow the ``scoring`` package: import it under another name, from the repo root.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
sys.path.insert(0, str(HERE.parent))

import numpy as np  # noqa: E402
import numpy.typing as npt  # noqa: E402
import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402
from sqlalchemy import insert, select, update  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402
from sqlalchemy.orm import Session, sessionmaker  # noqa: E402

import scoring.build  # noqa: E402
from scoring import build_table  # noqa: E402
from scoring.layout import REASONS, Statistic, Suppression  # noqa: E402
from scoring.rollup import tree_plan  # noqa: E402
from service.config import Settings  # noqa: E402
from service.db import make_engine, make_sessionmaker  # noqa: E402
from service.exports import columns, outcomes  # noqa: E402
from service.exports.files import PARQUET_OPTIONS, FileTarget  # noqa: E402
from service.exports.rows import check_safe, decode  # noqa: E402
from service.exports.schema import KEYS, TABLES  # noqa: E402
from service.exports.service import load_wave, run_export  # noqa: E402
from service.exports.sql import SqlTarget, split_url  # noqa: E402
from service.models import Base, PublishedInstrument, Unit, Wave, WaveResult  # noqa: E402
from service.results.service import encode, store  # noqa: E402


def _scoring_benchmark() -> Any:
    spec = importlib.util.spec_from_file_location("scoring_benchmark", HERE / "scoring.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def stand_in_suppression(
    parent: npt.ArrayLike,
    unit: npt.ArrayLike,
    codes: npt.ArrayLike,
    n_values: Sequence[int],
    k: int,
    statistics: Sequence[Statistic],
    **_: object,
) -> Suppression:
    """The guard's signature, primary suppression only: a cell is hidden when one of its statistics rests on
    1..k-1 respondents (or on none). Not safe (no complementary cells): for a table of realistic size and shape
    where the guard is too slow."""
    par = np.asarray(parent, dtype=np.int64)
    who = np.asarray(unit, dtype=np.int64)
    code = np.asarray(codes, dtype=np.int64).reshape(who.size, len(n_values))
    n_units, width = len(par), 1 + sum(n_values)
    column = [np.zeros(who.size, dtype=np.int64)]
    for a, offset in enumerate(np.cumsum((1, *n_values[:-1])) if n_values else ()):
        column.append(offset + code[:, a])
    plan = tree_plan(par)
    small = np.zeros((n_units, width), dtype=np.bool_)
    most = np.zeros((n_units, width), dtype=np.int64)
    for statistic in statistics:
        present = np.asarray(statistic.present, dtype=np.bool_)
        direct = np.zeros(n_units * width, dtype=np.int64)
        for c in column:
            direct += np.bincount(who[present] * width + c[present], minlength=n_units * width)
        counts = plan.rollup(direct.reshape(n_units, width))
        small |= (counts >= 1) & (counts < k)
        most = np.maximum(most, counts)
    reason = np.where(small, REASONS.index("primary"), np.where(most == 0, REASONS.index("empty"), 0))
    return Suppression(small | (most == 0), reason.astype(np.int8))


# Every name under which scoring.build has called the guard (it is being rewritten): the stand-in replaces each.
GUARD_NAMES = ("suppress", "suppress_partition", "suppress_totals_first")


def stored_blob(respondents: int, units: int, cache: Path | None, stand_in: bool) -> bytes:
    """The result table as ``wave_results.table`` holds it, built by ``scoring.build_table`` (or from the cache)."""
    if cache is not None and cache.exists():
        print(f"result table: read from {cache} (a stored table written by an earlier run of this benchmark)")
        return cache.read_bytes()
    bench = _scoring_benchmark()
    data = bench.synthetic_wave(respondents, units, 5)
    previous = bench.synthetic_wave(respondents, units, 5, seed=8, wave_id=1, shift=0.1)
    if stand_in:
        for name in GUARD_NAMES:
            if hasattr(scoring.build, name):
                setattr(scoring.build, name, stand_in_suppression)
    start = time.perf_counter()
    table = build_table(data, previous)
    guard = "the stand-in guard (primary suppression only)" if stand_in else "the guard"
    print(f"result table: scoring.build_table with {guard} in {time.perf_counter() - start:.1f} s (not timed)")
    blob = gzip.compress(json.dumps(table.to_dict(), separators=(",", ":")).encode(), compresslevel=6)
    if cache is not None:
        cache.write_bytes(blob)
    return blob


def stored_database(folder: Path, table: Mapping[str, Any]) -> sessionmaker[Session]:
    """A SQLite database holding the closed wave, its units and instrument, and the stored table."""
    engine = make_engine(f"sqlite:///{folder / 'peil.db'}")
    Base.metadata.create_all(engine)
    factory = make_sessionmaker(engine)
    now = datetime.now(UTC)
    ids = {u["key"]: i + 1 for i, u in enumerate(table["units"])}
    with factory() as session, session.begin():
        session.execute(
            insert(Unit),
            [
                {"id": ids[u["key"]], "key": u["key"], "name": f"Unit {u['key']}", "parent_id": ids.get(u["parent"])}
                for u in table["units"]
            ],
        )
        session.add(PublishedInstrument(slug=table["instrument"], version=table["version"], sha256="0" * 64))
        session.add(
            Wave(
                id=table["wave_id"],
                name="Benchmark",
                instrument=table["instrument"],
                version=table["version"],
                opens_at=now - timedelta(days=14),
                closes_at=now - timedelta(days=1),
                min_group_size=table["min_group_size"],
                attributes=[a["name"] for a in table["attributes"]],
                state="closed",
                opened_at=now - timedelta(days=14),
                closed_at=now - timedelta(days=1),
            )
        )
        session.flush()
        start = time.perf_counter()
        built_at = datetime.now(UTC)
        store(session, table["wave_id"], encode(table), columns.of(table, built_at), built_at)
        print(f"stored as the service stores it (JSON + columnar copy) in {time.perf_counter() - start:.1f} s")
    return factory


def timed(fn: Callable[[], object]) -> float:
    gc.collect()
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def timed_cpu(fn: Callable[[], object]) -> tuple[float, float]:
    """Wall time and CPU time (all threads of the process) of one call."""
    gc.collect()
    start, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - start, time.process_time() - cpu


def export_into(factory: sessionmaker[Session], settings: Settings, folder: Path) -> None:
    """``peil export run --full`` into an empty folder."""
    shutil.rmtree(folder, ignore_errors=True)
    run = run_export(factory, settings, trigger="cli", actor="benchmark", full=True, target=FileTarget(folder))
    if run.status != "succeeded":
        raise RuntimeError(f"the export failed: {run.error}")


def bare_into(tables: Mapping[str, Any], folder: Path) -> None:
    """``pq.write_table`` of every table, with the export's Parquet options, into an empty folder."""
    shutil.rmtree(folder, ignore_errors=True)
    for name in TABLES:
        (folder / name).mkdir(parents=True)
        pq.write_table(tables[name], folder / name / "part-0.parquet", **PARQUET_OPTIONS)


def _open(work: Path) -> tuple[sessionmaker[Session], Settings]:
    settings = Settings(env="test", database_url=f"sqlite:///{work / 'peil.db'}", secret_key="b" * 48)
    return make_sessionmaker(make_engine(settings.database_url)), settings


def child(kind: str, work: Path, wave_id: int) -> None:
    """One timed run in this fresh process (imports and the database connection not timed), printed in s."""
    factory, settings = _open(work)
    # pyarrow imports pandas on its first conversion of Python objects (0.3 s here): an import, done before the
    # clock starts, as the bare side does it when it loads its tables.
    pa.array([0])
    if kind == "export":
        with factory() as session:  # the connection (and SQLite's pragmas) opened before the clock starts
            session.execute(select(1))
        print(*timed_cpu(lambda: export_into(factory, settings, work / "export")))
    else:
        with factory() as session:
            tables = load_wave(session, wave_id).tables
        print(*timed_cpu(lambda: bare_into(tables, work / "bare")))


def in_child(kind: str, work: Path, wave_id: int) -> tuple[float, float]:
    """Wall and CPU seconds of one run in a fresh process."""
    command = [sys.executable, __file__, "--child", kind, "--work", str(work), "--wave", str(wave_id)]
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    wall, cpu = done.stdout.split()[-2:]
    return float(wall), float(cpu)


def arguments() -> argparse.Namespace:
    """The command line (``--child``, ``--work`` and ``--wave`` are for the fresh processes this one starts)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--small", action="store_true", help="10,000 respondents and 1,000 units")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--cache", type=Path, help="read/write the built result table here (gzipped JSON)")
    parser.add_argument("--stand-in-guard", action="store_true", help="build with primary suppression only")
    parser.add_argument("--fallback", action="store_true", help="also time a table stored without the copy")
    parser.add_argument("--sql", metavar="URL", help="time the SQL target at this URL instead (a schema of its own)")
    parser.add_argument("--child", choices=("export", "bare"), help=argparse.SUPPRESS)
    parser.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--wave", type=int, help=argparse.SUPPRESS)
    return parser.parse_args()


@dataclass(frozen=True)
class Times:
    """Seconds of each run, export and bare side by side: in fresh processes (wall and CPU), and repeated in this
    process (wall)."""

    fresh_export: list[float]
    fresh_bare: list[float]
    cpu_export: list[float]
    cpu_bare: list[float]
    warm_export: list[float]
    warm_bare: list[float]


def fresh_runs(work: Path, wave_id: int, repeat: int) -> tuple[list[float], list[float], list[float], list[float]]:
    """Export and bare, alternating, each in a fresh process: what `peil export run` from cron does, against a
    bare write in a process of its own (its tables loaded first, not timed). Wall and CPU seconds of each."""
    in_child("export", work, wave_id)  # once untimed: the page cache warm for both
    fresh_export: list[float] = []
    fresh_bare: list[float] = []
    cpu_export: list[float] = []
    cpu_bare: list[float] = []
    for _ in range(repeat):
        for kind, walls, cpus in (("export", fresh_export, cpu_export), ("bare", fresh_bare, cpu_bare)):
            wall, cpu = in_child(kind, work, wave_id)
            walls.append(wall)
            cpus.append(cpu)
    return fresh_export, fresh_bare, cpu_export, cpu_bare


def warm_runs(
    factory: sessionmaker[Session], settings: Settings, tables: Mapping[str, Any], work: Path, repeat: int
) -> tuple[list[float], list[float]]:
    """The same, repeated in this process: the allocators' memory and SQLAlchemy's caches already warm."""
    t_export, t_bare = [], []
    for _ in range(repeat):
        t_export.append(timed(lambda: export_into(factory, settings, work / "export")))
        t_bare.append(timed(lambda: bare_into(tables, work / "bare")))
    return t_export, t_bare


def where_it_goes(factory: sessionmaker[Session], work: Path, wave_id: int, k: int) -> dict[str, float]:
    """Where the export's time goes: the same steps again, one by one, seconds of each."""
    steps: dict[str, float] = {}
    clock = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        steps[name] = now - clock
        clock = now

    gc.collect()
    clock = time.perf_counter()
    with factory() as session:
        loaded = load_wave(session, wave_id)
    lap("load_wave (read + decode + unit names)")
    check_safe(loaded.tables, k)
    lap("check_safe alone")
    shutil.rmtree(work / "export", ignore_errors=True)
    target = FileTarget(work / "export")
    target.begin()
    target.write_wave(wave_id, loaded.tables, check=partial(check_safe, loaded.tables, k))
    target.commit({str(wave_id): loaded.built_at.isoformat()}, {**KEYS, outcomes.NAME: outcomes.KEY})
    lap("files (check_safe, Parquet, SHA-256, fsync, rename, manifest)")
    del loaded
    gc.collect()
    clock = time.perf_counter()
    with factory() as session:
        data, built_at = session.execute(
            select(WaveResult.columnar, WaveResult.built_at).where(WaveResult.wave_id == wave_id)
        ).one()
    lap("of load_wave: read the stored copy")
    assert columns.decode(data, built_at) is not None
    lap("decode it (Arrow IPC, LZ4)")
    del data
    return steps


def print_sizes(
    respondents: int, units: int, tables: Mapping[str, Any], blob: bytes, copy: bytes, parquet: int
) -> None:
    """The organisation, the rows of each table, and the sizes stored and written."""
    rows = {name: tables[name].num_rows for name in TABLES}
    mib = 2**20
    print(f"organisation: {respondents:,} respondents, {units:,} units")
    print("rows: " + ", ".join(f"{name} {count:,}" for name, count in rows.items() if count))
    print(
        f"stored: JSON {len(blob) / mib:.1f} MiB (gzip), columnar copy {len(copy) / mib:.1f} MiB "
        f"(Arrow IPC, LZ4); Parquet written {parquet / mib:.1f} MiB"
    )
    print(f"Parquet options, both sides: {PARQUET_OPTIONS}")


def print_times(times: Times, steps: Mapping[str, float]) -> None:
    """Best of each side, their ratio and the ratio per pair, fresh and warm; the CPU times; where it goes."""
    for label, export_times, bare_times in (
        ("fresh process each (as from cron)", times.fresh_export, times.fresh_bare),
        ("repeated in one process (warm)", times.warm_export, times.warm_bare),
    ):
        ratios = [e / b for e, b in zip(export_times, bare_times, strict=True)]
        print(f"{label}:")
        print(f"  bare pyarrow.parquet.write_table, same rows: {min(bare_times):6.3f} s  (runs {_range(bare_times)})")
        print(
            f"  peil export run --full (stored -> files):   {min(export_times):6.3f} s  (runs {_range(export_times)})"
        )
        print(
            f"  ratio {min(export_times) / min(bare_times):.2f}x best against best, "
            f"{_range(ratios, 'x')} per pair (goal <= 2x)"
        )
    cpu_export, cpu_bare = times.cpu_export, times.cpu_bare
    print(
        f"CPU time (all threads; what a busy machine cannot hide), fresh processes: export "
        f"{_range(cpu_export)}, bare {_range(cpu_bare)}, ratio {min(cpu_export) / min(cpu_bare):.2f}x "
        "best against best"
    )
    print("where it goes (one pass, warm): " + ", ".join(f"{k} {v:.3f} s" for k, v in steps.items()))


def fallback_run(
    factory: sessionmaker[Session], settings: Settings, work: Path, wave_id: int, best_bare: float
) -> None:
    """One export of the table with its columnar copy dropped (derived from the JSON, as before the copy)."""
    with factory() as session, session.begin():
        session.execute(update(WaveResult).where(WaveResult.wave_id == wave_id).values(columnar=None))
    t_json = timed(lambda: export_into(factory, settings, work / "export"))
    print(
        f"a table stored without the copy (JSON decoded and converted, copy stored): {t_json:.3f} s, "
        f"ratio {t_json / best_bare:.2f}x"
    )


def file_runs(
    factory: sessionmaker[Session],
    settings: Settings,
    args: argparse.Namespace,
    work: Path,
    stored: tuple[bytes, int, int],
    organisation: tuple[int, int],
) -> None:
    """The file target against the bare write: ``stored`` is the JSON blob, the wave id and its minimum group
    size; ``organisation`` the respondents and units."""
    blob, wave_id, k = stored
    with factory() as session:
        tables = load_wave(session, wave_id).tables
        copy = session.scalar(select(WaveResult.columnar).where(WaveResult.wave_id == wave_id)) or b""
    fresh = fresh_runs(work, wave_id, args.repeat)
    times = Times(*fresh, *warm_runs(factory, settings, tables, work, args.repeat))
    parquet = sum(f.stat().st_size for f in (work / "export").rglob("*.parquet"))
    steps = where_it_goes(factory, work, wave_id, k)
    print_sizes(*organisation, tables, blob, copy, parquet)
    print_times(times, steps)
    if args.fallback:
        fallback_run(factory, settings, work, wave_id, min(times.warm_bare))


def main() -> None:
    args = arguments()
    if args.child:
        child(args.child, args.work, args.wave)
        return
    respondents, units = (10_000, 1_000) if args.small else (100_000, 10_000)
    blob = stored_blob(respondents, units, args.cache, args.stand_in_guard)
    table = decode(blob)
    wave_id, k = int(table["wave_id"]), int(table["min_group_size"])
    work = Path(tempfile.mkdtemp(prefix="peil-export-bench-"))
    try:
        stored_database(work, table)
        del table
        factory, settings = _open(work)
        if args.sql:
            sql_runs(factory, settings, args.sql, args.repeat, respondents, units)
            return
        file_runs(factory, settings, args, work, (blob, wave_id, k), (respondents, units))
    finally:
        shutil.rmtree(work, ignore_errors=True)


def sql_runs(
    factory: sessionmaker[Session], settings: Settings, url: str, repeat: int, respondents: int, units: int
) -> None:
    """``peil export run --full`` into a fresh schema at ``url``, ``repeat`` times (insert, then upserts)."""
    raw, _ = split_url(url)
    schema = f"peil_bench_{secrets.token_hex(4)}" if make_url(raw).get_backend_name() == "postgresql" else None
    target_url = f"{raw}?schema={schema}" if schema else raw
    times: list[float] = []
    try:
        for _ in range(repeat):
            target = SqlTarget(*split_url(target_url))
            start = time.perf_counter()
            run = run_export(factory, settings, trigger="cli", actor="benchmark", full=True, target=target)
            times.append(time.perf_counter() - start)
            if run.status != "succeeded":
                raise RuntimeError(f"the SQL export failed: {run.error}")
    finally:
        if schema:
            engine = make_engine(raw)
            with engine.begin() as connection:
                connection.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
            engine.dispose()
    print(f"organisation: {respondents:,} respondents, {units:,} units; {sum(run.rows.values()):,} rows")
    print(f"SQL target {make_url(raw).render_as_string(hide_password=True)} (schema {schema}):")
    print(f"  first run (inserts): {times[0]:.2f} s; again (upserts of the same rows): {_range(times[1:] or times)}")


def _range(values: list[float], unit: str = " s") -> str:
    return (
        f"{min(values):.3f}-{max(values):.3f}{unit}" if unit == " s" else f"{min(values):.2f}-{max(values):.2f}{unit}"
    )


if __name__ == "__main__":
    main()
