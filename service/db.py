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
    waiter blocks in the kernel and wakes the moment the lock is released; SQLite's lock is then free.
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

    def release(self) -> None:
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        self._thread_lock.release()


CHECKPOINT_EVERY = 200  # commits of this process between two WAL checkpoints
_commits = itertools.count(1)
_write_locks: dict[str, _WriteLock] = {}
_write_locks_guard = threading.Lock()


def _write_lock(database: str) -> _WriteLock:
    path = os.path.realpath(database)
    with _write_locks_guard:
        if path not in _write_locks:
            _write_locks[path] = _WriteLock(path + ".peil-lock")
        return _write_locks[path]


class _LockingConnection(sqlite3.Connection):
    """A SQLite connection that holds its file's write lock from BEGIN until the transaction has ended."""

    write_lock: _WriteLock | None = None
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
            # SQLite's automatic checkpoint would run inside COMMIT, while this writer still holds the file
            # lock and every other writer waits for its fsync. Here it runs after the lock is released, in
            # PASSIVE mode, which lets writers go on.
            with contextlib.suppress(sqlite3.Error):  # the answers are committed; a checkpoint can wait
                self.execute("PRAGMA wal_checkpoint(PASSIVE)").close()

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


def make_engine(url: str, **kwargs: Any) -> Engine:
    """An engine for SQLite or PostgreSQL.

    Its errors never quote a statement's parameters (``hide_parameters``): they hold answers and free text,
    and an error's text ends up in logs.

    SQLite runs in WAL mode with foreign keys on and a busy timeout, and every transaction starts with
    ``BEGIN IMMEDIATE``: it takes the write lock up front, so two workers that read and then write never
    deadlock on the upgrade from a read to a write lock ("database is locked"); they queue instead, on a
    file lock that wakes the next writer at once (see ``_WriteLock``).
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
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
            cursor.execute("PRAGMA synchronous=NORMAL")
            if lock is not None:
                cursor.execute("PRAGMA wal_autocheckpoint=0")  # checkpoints after commits: _LockingConnection
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
