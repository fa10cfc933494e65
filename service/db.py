"""Engine, sessions and the one commit point: the request's session dependency commits or rolls back."""

from __future__ import annotations

import contextlib
import fcntl
import itertools
import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any

from fastapi import Depends, Request
from sqlalchemy import Connection, Engine, create_engine, event, make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

SQLITE_BUSY_TIMEOUT_MS = 30_000
READING = "peil_reading"  # execution option of ``reading`` connections: no BEGIN IMMEDIATE, no writers' queue


class _WriteLock:
    """One writer at a time on a SQLite file, across threads (a lock) and worker processes (flock on a file).

    SQLite's own busy handler makes a waiting writer sleep and poll, with sleeps growing to 100 ms: under
    load the lock is free most of the time while writers sleep, and an unlucky one waits for seconds. Here a
    waiter blocks in the kernel and wakes the moment the lock is released; SQLite's lock is then free. The
    same kind of lock, on another file, keeps checkpoints one at a time (``_LockingConnection.checkpoint``).
    """

    def __init__(self, path: str) -> None:
        self._thread_lock = threading.Lock()
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)

    def acquire(self) -> None:
        if not self._thread_lock.acquire(timeout=SQLITE_BUSY_TIMEOUT_MS / 1000):
            # What SQLite itself would say after its busy timeout; the error handler answers 503.
            raise OperationalError("BEGIN IMMEDIATE", None, sqlite3.OperationalError("database is locked"))
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX)
        except BaseException:
            self._thread_lock.release()
            raise

    def try_acquire(self) -> bool:
        """Take the lock if it is free now; False if another thread or process holds it."""
        if not self._thread_lock.acquire(blocking=False):
            return False
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._thread_lock.release()
            return False
        except BaseException:
            self._thread_lock.release()
            raise
        return True

    def release(self) -> None:
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        self._thread_lock.release()


CHECKPOINT_EVERY = 200  # commits of this process between two WAL checkpoints
# The write-ahead log may grow to this size before a checkpoint waits for readers to leave it and truncates it
# (PEIL_SQLITE_WAL_LIMIT_MB sets it for the service).
WAL_LIMIT_BYTES = 64 * 1024 * 1024
CHECKPOINT_WAIT_MS = 250  # how long a truncating checkpoint waits for readers (writers wait meanwhile)
_commits = itertools.count(1)
_write_locks: dict[str, _WriteLock] = {}
_write_locks_guard = threading.Lock()


def _write_lock(database: str, suffix: str = ".peil-lock") -> _WriteLock:
    path = os.path.realpath(database) + suffix
    with _write_locks_guard:
        if path not in _write_locks:
            _write_locks[path] = _WriteLock(path)
        return _write_locks[path]


class _LockingConnection(sqlite3.Connection):
    """A SQLite connection that holds its file's write lock from BEGIN until the transaction has ended."""

    write_lock: _WriteLock | None = None
    checkpoint_lock: _WriteLock | None = None
    wal_path: str | None = None
    wal_limit: int | None = None
    _holding = False

    def hold_write_lock(self) -> None:
        lock = self.write_lock
        if lock is not None and not self._holding:
            lock.acquire()
            self._holding = True

    def let_go(self) -> None:
        if self._holding and self.write_lock is not None:
            self._holding = False
            self.write_lock.release()

    def commit(self) -> None:
        wrote = self._holding
        try:
            super().commit()
        finally:
            if not self.in_transaction:
                self.let_go()
        if wrote and next(_commits) % CHECKPOINT_EVERY == 0:
            with contextlib.suppress(sqlite3.Error):  # the answers are committed; a checkpoint can wait
                self.checkpoint()

    def checkpoint(self) -> None:
        """Copy the log into the database; truncate the log once it has outgrown ``wal_limit``.

        SQLite's automatic checkpoint would run inside COMMIT, while this writer still holds the file lock and
        every other writer waits for its fsync; here it runs after the lock is released. Usually in PASSIVE
        mode, which lets writers go on. But a PASSIVE checkpoint never gets to start the log over while readers
        are always active (each reads from the log as it was when it began), so under a steady load the log
        only grows. Past the limit, a TRUNCATE checkpoint takes the writers' queue, copies everything, waits
        briefly for the readers of older snapshots to finish (new ones read the database file) and empties the
        log; if they take longer, it tries again at the next checkpoint. Checkpoints run one at a time across
        workers (SQLite refuses a second at once): a PASSIVE one skips its turn, a TRUNCATE one waits.
        """
        lock = self.checkpoint_lock
        if lock is None or self.wal_limit is None or _size(self.wal_path) <= self.wal_limit:
            if lock is None or lock.try_acquire():
                try:
                    self.execute("PRAGMA wal_checkpoint(PASSIVE)").close()
                finally:
                    if lock is not None:
                        lock.release()
            return
        lock.acquire()
        try:
            self.hold_write_lock()
            self.execute(f"PRAGMA busy_timeout={CHECKPOINT_WAIT_MS}").close()
            self.execute("PRAGMA wal_checkpoint(TRUNCATE)").close()
        finally:
            self.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}").close()
            self.let_go()
            lock.release()

    def rollback(self) -> None:
        try:
            super().rollback()
        finally:
            self.let_go()

    def close(self) -> None:
        try:
            super().close()
        finally:
            self.let_go()


def _size(path: str | None) -> int:
    try:
        return os.stat(path).st_size if path else 0
    except FileNotFoundError:
        return 0


def make_engine(url: str, *, wal_limit: int | None = WAL_LIMIT_BYTES, **kwargs: Any) -> Engine:
    """An engine for SQLite or PostgreSQL.

    Its errors never quote a statement's parameters (``hide_parameters``): they hold answers and free text,
    and an error's text ends up in logs.

    SQLite runs in WAL mode with foreign keys on and a busy timeout, and every transaction starts with
    ``BEGIN IMMEDIATE``: it takes the write lock up front, so two workers that read and then write never
    deadlock on the upgrade from a read to a write lock ("database is locked"); they queue instead, on a
    file lock that wakes the next writer at once (see ``_WriteLock``). Its write-ahead log is kept under
    ``wal_limit`` bytes (see ``_LockingConnection.checkpoint``); ``None`` lets it grow.
    """
    kwargs.setdefault("hide_parameters", True)
    if url.startswith("sqlite"):
        database = make_url(url).database or ""
        file_backed = database not in ("", ":memory:") and not database.startswith("file:")
        engine = create_engine(
            url,
            connect_args={
                "check_same_thread": False,
                "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000,
                "factory": _LockingConnection,
            },
            **kwargs,
        )
        lock = _write_lock(database) if file_backed else None

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_connection: Any, _record: Any) -> None:
            dbapi_connection.isolation_level = None  # we emit BEGIN ourselves, below
            dbapi_connection.write_lock = lock
            dbapi_connection.checkpoint_lock = _write_lock(database, ".peil-checkpoint") if lock is not None else None
            dbapi_connection.wal_path = os.path.realpath(database) + "-wal" if lock is not None else None
            dbapi_connection.wal_limit = wal_limit
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
            cursor.execute("PRAGMA synchronous=NORMAL")
            if lock is not None:
                cursor.execute("PRAGMA wal_autocheckpoint=0")  # checkpoints after commits: _LockingConnection
                if wal_limit is not None:  # a log that SQLite itself starts over is cut back to the limit too
                    cursor.execute(f"PRAGMA journal_size_limit={wal_limit}")
            cursor.close()

        @event.listens_for(engine, "begin")
        def _on_begin(connection: Any) -> None:
            if connection.get_execution_options().get(READING):
                return  # no BEGIN: each statement reads on its own, outside the writers' queue
            raw = connection.connection.dbapi_connection
            raw.hold_write_lock()
            try:
                connection.exec_driver_sql("BEGIN IMMEDIATE")
            except BaseException:
                raw.let_go()
                raise

        return engine
    kwargs.setdefault("pool_pre_ping", True)
    kwargs.setdefault("pool_size", 10)
    kwargs.setdefault("max_overflow", 20)
    return create_engine(url, **kwargs)


@contextmanager
def reading(engine: Engine) -> Iterator[Connection]:
    """A connection for reads outside any transaction: every statement runs on its own (autocommit).

    On SQLite it stays out of the writers' queue (in WAL mode a reader never waits for a writer); on
    PostgreSQL it saves the BEGIN and COMMIT round trips. A single write statement on it is a transaction of
    its own on PostgreSQL; on SQLite, write in ``engine.begin()`` (which queues writers) instead.
    """
    option = {"isolation_level": "AUTOCOMMIT"} if engine.dialect.name == "postgresql" else {READING: True}
    with engine.connect().execution_options(**option) as conn:
        yield conn


@contextmanager
def writing(db: Connection) -> Iterator[Connection]:
    """A write transaction on a ``reading`` connection, committed when the block ends (rolled back on error).

    A request that reads and then writes does both on one connection: it never waits for a second connection
    while it holds one (with more requests than pooled connections, such waits could last for ever). On
    SQLite the transaction begins IMMEDIATE, in the writers' queue, like every other write. After the block
    the connection reads outside a transaction again.
    """
    postgresql = db.dialect.name == "postgresql"
    db.commit()  # the reads before: no transaction to end, but the connection's own bookkeeping
    if postgresql:
        db.execution_options(isolation_level=db.dialect.default_isolation_level)
    else:
        db.execution_options(**{READING: False})
    try:
        with db.begin():
            yield db
    finally:
        if postgresql:
            db.execution_options(isolation_level="AUTOCOMMIT")
        else:
            db.execution_options(**{READING: True})


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False, autoflush=False)


@contextmanager
def transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    """A session that commits when the block ends and rolls back when it raises (for commands and jobs)."""
    with factory() as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise


def get_session(request: Request) -> Iterator[Session]:
    """The request's session: the one place a request commits, before its response is sent."""
    with transaction(request.app.state.sessionmaker) as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session, scope="function")]
