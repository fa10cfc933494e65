"""Benchmark: SQLite's write-ahead log under a long stream of submissions, bounded and (as before) unbounded.

    .venv/bin/python benchmarks/wal.py                 # 20,000 submissions per run
    .venv/bin/python benchmarks/wal.py --count 5000    # shorter

Each run does what `benchmarks/submit.py` does for SQLite: a fresh database, `peil db upgrade`, `peil keys
create`, `peil serve --workers 2`, a wave with as many invitations as submissions, and then every link posts its
whole survey once, at full speed over 16 connections (the same load process). Meanwhile the size of the
database's `-wal` file is sampled every 50 ms. The first run has the service's default limit
(PEIL_SQLITE_WAL_LIMIT_MB=64); the second sets it to 0, which is how the service ran before: PASSIVE
checkpoints only. Printed per run: submissions per second, the log's largest and last size, the database's
size, and whether every thank-you page is one complete response in the database. Then the ratios bounded /
unbounded of the largest log and of the throughput. Figures and goals: benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks import submit  # noqa: E402  (after the path: the benchmarks share their machinery)

MiB = 1024 * 1024


@dataclass
class Run:
    label: str
    rate: float
    ok: int
    errors: int
    wal_peak: int
    wal_end: int
    database: int
    stored: int


class Sampler:
    """The largest size a file reaches while the block runs, sampled every ``every`` seconds."""

    def __init__(self, path: Path, every: float = 0.05) -> None:
        self.path, self.every, self.peak = path, every, 0
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._done.wait(self.every):
            with contextlib.suppress(FileNotFoundError):  # not yet created
                self.peak = max(self.peak, self.path.stat().st_size)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._done.set()
        self._thread.join()


def run(label: str, limit_mb: int, count: int, tmp: Path) -> Run:
    work = tmp / label
    work.mkdir()
    database = work / "peil.db"
    url = f"sqlite:///{database}"
    port = submit.free_port()
    base = f"http://127.0.0.1:{port}"
    env = {**submit.peil_env(url, work, base), "PEIL_SQLITE_WAL_LIMIT_MB": str(limit_mb)}
    submit.peil("db", "upgrade", env=env)
    key = submit.peil("keys", "create", "--role", "hr", "--name", "wal", env=env).strip().splitlines()[-1]
    whole, _pages = submit.survey_bodies(count)
    command = [str(submit.BIN / "peil"), "serve", "--host", "127.0.0.1", "--port", str(port), "--workers", "2"]
    with submit.running(command, env, work / "serve.log", base) as process:
        wave_id, tokens = submit.setup_wave(base, key, count)
        with Sampler(Path(f"{database}-wal")) as wal:
            figures = submit.measure(
                label, base, "max", tokens, whole, work, [process.pid], max_seconds=3600, connections=16
            )
        wal_end = os.path.getsize(f"{database}-wal") if os.path.exists(f"{database}-wal") else 0
        stored = submit.responded(url, wave_id)
    return Run(label, figures.rate, figures.ok, figures.errors, wal.peak, wal_end, database.stat().st_size, stored)


def show(r: Run) -> None:
    match = "match" if r.stored == r.ok else "MISMATCH"
    print(
        f"  {r.label:<10} {r.ok:>6} ok {r.errors:>3} errors {r.rate:6.1f}/s  WAL largest {r.wal_peak / MiB:7.1f} MiB,"
        f" at the end {r.wal_end / MiB:6.1f} MiB; database {r.database / MiB:6.1f} MiB;"
        f" stored {r.stored} ({match})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=20_000, help="submissions per run")
    parser.add_argument("--limit-mb", type=int, default=64, help="the bounded run's PEIL_SQLITE_WAL_LIMIT_MB")
    args = parser.parse_args()
    print(f"SQLite, peil serve --workers 2, {args.count} submissions per run; load: {os.getloadavg()[0]:.2f}")
    tmp = Path(tempfile.mkdtemp(prefix="peil-wal-"))
    try:
        started = time.perf_counter()
        bounded = run("bounded", args.limit_mb, args.count, tmp)
        show(bounded)
        unbounded = run("unbounded", 0, args.count, tmp)
        show(unbounded)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(
        f"  largest WAL bounded/unbounded: {bounded.wal_peak / max(unbounded.wal_peak, 1):.2f}"
        f" (limit {args.limit_mb} MiB); throughput bounded/unbounded: {bounded.rate / unbounded.rate:.2f};"
        f" {time.perf_counter() - started:.0f} s; load now {os.getloadavg()[0]:.2f}"
    )


if __name__ == "__main__":
    main()
