"""SQLite's writer queue (service.db): the file lock is held for exactly one transaction, however it ends.

A lock that stayed held would stop every write of every worker, so each way a transaction can end is tried:
commit, rollback, an exception, a connection closed mid-transaction, a failed statement, and many threads.
"""

from __future__ import annotations

import fcntl
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import IntegrityError

from service.db import _write_lock, make_engine


@pytest.fixture
def sqlite(tmp_path: Path) -> Iterator[tuple[Engine, Path]]:
    path = tmp_path / "lock.db"
    engine = make_engine(f"sqlite:///{path}")
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NOT NULL)"))
    yield engine, path
    engine.dispose()


def _free(path: Path) -> bool:
    """True when neither a thread of this process nor any process holds the file's write lock."""
    if _write_lock(str(path))._thread_lock.locked():
        return False
    fd = os.open(f"{os.path.realpath(path)}.peil-lock", os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # a new open file: conflicts even within this process
    except BlockingIOError:
        return False
    finally:
        os.close(fd)  # closing drops the probe's own lock
    return True


def test_held_during_a_transaction_and_released_by_commit(sqlite: tuple[Engine, Path]) -> None:
    engine, path = sqlite
    assert _free(path)
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO t (v) VALUES ('a')"))
        assert not _free(path)
    assert _free(path)


def test_released_by_rollback_exception_close_and_failed_statement(sqlite: tuple[Engine, Path]) -> None:
    engine, path = sqlite
    with pytest.raises(RuntimeError), engine.begin() as conn:
        conn.execute(text("INSERT INTO t (v) VALUES ('b')"))
        raise RuntimeError("the request failed")
    assert _free(path)

    conn = engine.connect()
    conn.begin()
    conn.execute(text("INSERT INTO t (v) VALUES ('c')"))
    conn.close()  # back to the pool mid-transaction: rolled back
    assert _free(path)

    with pytest.raises(IntegrityError), engine.begin() as conn:
        conn.execute(text("INSERT INTO t (v) VALUES (NULL)"))
    assert _free(path)

    conn = engine.connect()
    conn.begin()
    conn.execute(text("INSERT INTO t (v) VALUES ('d')"))
    conn.invalidate()  # the connection is thrown away
    assert _free(path)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT v FROM t ORDER BY id")).scalars().all() == []


def test_many_threads_and_two_engines_queue_without_errors(tmp_path: Path, sqlite: tuple[Engine, Path]) -> None:
    engine, path = sqlite
    other = make_engine(f"sqlite:///{path}")  # as a second worker would (same file, same lock)
    errors: list[BaseException] = []

    def write(n: int) -> None:
        try:
            for i in range(25):
                with (engine if n % 2 else other).begin() as conn:
                    conn.execute(text("INSERT INTO t (v) VALUES (:v)"), {"v": f"{n}-{i}"})
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(n,)) for n in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    other.dispose()
    assert errors == []
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM t")).scalar() == 12 * 25
    assert _free(path)
