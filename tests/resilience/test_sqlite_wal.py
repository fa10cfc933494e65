"""SQLite's write-ahead log stays bounded under a steady stream of writes while readers are always active, and
nothing written is lost.

Two writer threads commit rows while three reader threads query without pause, as form posts and API reads
do in `peil serve`. A PASSIVE checkpoint copies the log into the database but, with a reader always inside
the log, never gets to start it over: the log grows without end (the control run shows it). With a limit,
the checkpoint truncates it (service.db). The limit and the checkpoint interval are small here so that a
short run crosses the limit many times; the long run with the service is `benchmarks/wal.py`.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import text

from service import db
from service.db import make_engine, reading

LIMIT = 1024 * 1024
WRITERS, COMMITS = 2, 1500


def _payload(writer: int, n: int) -> str:
    return hashlib.sha256(f"{writer}:{n}".encode()).hexdigest() * 30  # 1,920 characters


def _run(path: Path, wal_limit: int | None) -> int:
    """Write WRITERS x COMMITS rows under constant reading; check every row; return the log's largest size."""
    engine = make_engine(f"sqlite:///{path}", wal_limit=wal_limit)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE t (writer INTEGER, n INTEGER, payload TEXT NOT NULL, PRIMARY KEY (writer, n))"))
    wal = Path(f"{path}-wal")
    largest = [0] * WRITERS
    done = threading.Event()
    failures: list[BaseException] = []

    def write(writer: int) -> None:
        try:
            for n in range(COMMITS):
                with engine.begin() as conn:
                    conn.execute(
                        text("INSERT INTO t VALUES (:w, :n, :p)"), {"w": writer, "n": n, "p": _payload(writer, n)}
                    )
                largest[writer] = max(largest[writer], wal.stat().st_size)
        except BaseException as exc:
            failures.append(exc)

    def read() -> None:
        """Short reads, one after the other: each holds its snapshot of the log for a few milliseconds."""
        try:
            while not done.is_set():
                with reading(engine) as conn:
                    rows = conn.execute(text("SELECT n FROM t WHERE writer = 0 ORDER BY n DESC LIMIT 20"))
                    rows.fetchone()
                    time.sleep(0.003)  # a request between its statements, the cursor still open
                    rows.fetchall()
        except BaseException as exc:
            failures.append(exc)

    readers = [threading.Thread(target=read) for _ in range(3)]
    writers = [threading.Thread(target=write, args=(w,)) for w in range(WRITERS)]
    for thread in readers + writers:
        thread.start()
    for thread in writers:
        thread.join()
    done.set()
    for thread in readers:
        thread.join()
    assert not failures, failures
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT writer, n, payload FROM t")).all()
    engine.dispose()
    assert sorted((w, n) for w, n, _ in rows) == [(w, n) for w in range(WRITERS) for n in range(COMMITS)]
    assert all(p == _payload(w, n) for w, n, p in rows)
    return max(largest)


@pytest.fixture
def often(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(db, "CHECKPOINT_EVERY", 20)


def test_wal_stays_bounded_and_nothing_is_lost(tmp_path: Path, often: None) -> None:
    bounded = _run(tmp_path / "bounded.db", LIMIT)
    database = os.path.getsize(tmp_path / "bounded.db")
    # Past the limit by the commits between two checkpoints (20, three pages each), and by a few more when a
    # slow reader made a truncation give up; however long the run.
    assert bounded < 3 * LIMIT, f"log reached {bounded / 2**20:.1f} MiB"
    assert database > 4 * LIMIT  # the run wrote far more than the limit
    unbounded = _run(tmp_path / "control.db", None)
    assert unbounded > 10 * LIMIT, f"the control's log stayed at {unbounded / 2**20:.1f} MiB: readers were not active"
