"""Closing a wave, in order: freeze it, load its answers, build its table, store the table and its columnar copy,
erase what must go, mark it closed. A background job (the close worker in ``peil serve``, ``peil results
rebuild``, ``peil demo``), never work inside a request.

One worker at a time closes a wave: it holds a lease on the wave row (``close_owner``, ``close_lease_until``),
claimed by one conditional UPDATE, as the export's lock is, and renewed while it works. A worker that dies
(SIGKILL, a lost machine) stops renewing it; when it lapses, the next worker starts again from the frozen
answers. Loading and building run outside any transaction (SQLite's writers are not held up meanwhile);
storing, erasing and the state change commit in one transaction, after checking that the lease is still this
worker's: a table is stored whole with the ``closed`` state, or not at all. A failure is recorded on the wave
with its reason and retried later, each time after twice the wait before, up to ``RETRY_MAX``.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial

from sqlalchemy import ColumnElement, or_, select, text, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

import scoring
from scoring import ResultTable
from service import audit
from service.db import reading, transaction
from service.errors import Conflict, NotFound, PeilError
from service.exports import columns
from service.instruments.loader import Instruments
from service.invitations.service import erase_contacts
from service.models import Wave
from service.models.base import utcnow
from service.results import service as results
from service.results.data import load_inputs
from service.waves.purge import purged

log = logging.getLogger("peil")

LEASE = timedelta(minutes=2)  # a dead worker's wave is free again after this; a live one renews it
RETRY_FIRST = timedelta(seconds=30)
RETRY_MAX = timedelta(hours=1)
JOB = "close job"  # the audit log's name for the worker
MAX_ERROR = 500


class LeaseLost(RuntimeError):
    """The wave's lease lapsed and another worker took it: this one stores nothing."""


@dataclass
class Closed:
    """One run of the steps: the wave, the table it stored, and the seconds each step took."""

    wave_id: int
    table: ResultTable
    seconds: dict[str, float] = field(default_factory=dict)


def close(
    factory: sessionmaker[Session],
    wave_id: int,
    instruments: Instruments,
    *,
    owner: str,
    lease: timedelta = LEASE,
    actor: str = JOB,
    action: str = "results.built",
) -> Closed:
    """The steps of a close, for a wave whose lease ``owner`` holds (see ``claim``); the lease is renewed while
    they run."""
    seconds: dict[str, float] = {}
    timed = partial(_timed, seconds)
    with _renewing(factory, wave_id, owner, lease):
        with _reading(factory) as session:
            wave = _frozen(session, wave_id, owner, instruments)  # 1. freeze: HR or the clock did; it is ours
            with timed("load"):  # 2. load its answers (and the previous wave's, for changes)
                inputs = load_inputs(session, wave, instruments, purged=partial(purged, session))
        with timed("build"):  # 3. the table, with the anonymity guard
            table = scoring.build_table(
                inputs.data,
                inputs.previous,
                previous_published=inputs.previous_published,
                previous_detailed=inputs.previous_detailed,
                hidden_before=inputs.hidden_before,
            )
        built_at = utcnow()
        with timed("store"):
            with timed("store: to_dict"):
                as_dict = table.to_dict()
            encoded = results.encode(as_dict)
        with timed("export"):
            columnar = columns.of(as_dict, built_at)
    with timed("commit"), transaction(factory) as session:
        wave = _held(session, wave_id, owner)  # still ours, and locked: else nothing below is kept
        results.store(session, wave.id, encoded, columnar, built_at)  # 4. the table and its columnar copy
        erase(session, wave)  # 5. what rule 5 and the invitations say must go
        _mark_closed(wave)  # 6. closed: results are served from now on
        audit.record(session, actor, action, wave.id, cells=len(table.cells))
    log.info("wave %d closed: %s", wave_id, ", ".join(f"{k} {v:.2f} s" for k, v in seconds.items()))
    return Closed(wave_id, table, seconds)


def erase(session: Session, wave: Wave) -> None:
    """What must not outlive the open wave, in the closing transaction: the traces of when each response was
    given (rule 5), and the invitations' sealed emails and tokens (no mail goes out for a closed wave)."""
    rewrite_responses(session, wave.id)
    erase_contacts(session, wave.id)


def rewrite_responses(session: Session, wave_id: int) -> None:
    """Rule 5 in the database: the wave's responses without the day they were answered, and in an order that says
    nothing of when they came.

    On PostgreSQL the physical order of rows (``ctid``) and their transaction ids (``xmin``) follow the order of
    submission: one statement deletes them and inserts them again as fresh rows with new random ids, in the
    order of those ids, all in this one transaction. On SQLite the table is kept in the order of its ids (it has no
    rowid), which are random from the first save: the rows are already in a random order, and giving them new ids
    would move every row (seconds at 100,000) to trade one random order for another. There the day is dropped in
    place, with ``secure_delete`` on so that the bytes it held are overwritten in the file.
    """
    params = {"wave_id": wave_id}
    if session.get_bind().dialect.name != "postgresql":
        session.execute(text("PRAGMA secure_delete = ON"))
        try:
            session.execute(text("UPDATE responses SET answered_on = NULL WHERE wave_id = :wave_id"), params)
        finally:
            session.execute(text("PRAGMA secure_delete = OFF"))
        return
    kept = "wave_id, unit_id, attributes, token_mac, answers, complete"
    session.execute(
        text(
            f"WITH old AS (DELETE FROM responses WHERE wave_id = :wave_id RETURNING {kept}) "  # noqa: S608 - constant
            f"INSERT INTO responses (id, {kept}, answered_on) "
            f"SELECT replace(gen_random_uuid()::text, '-', '') AS new_id, {kept}, NULL FROM old ORDER BY new_id"
        ),
        params,
    )


# The lease -----------------------------------------------------------------------------------------------


def new_owner() -> str:
    return f"{socket.gethostname()[:40]}:{os.getpid()}:{uuid.uuid4().hex[:12]}"


def due(factory: sessionmaker[Session], now: datetime | None = None) -> list[int]:
    """Closing waves no worker holds and whose retry time has come, the longest waiting first."""
    now = now or utcnow()
    with _reading(factory) as session:
        return list(
            session.scalars(
                select(Wave.id)
                .where(Wave.state == "closing", _free(now), _retry_due(now))
                .order_by(Wave.closed_at, Wave.id)
            )
        )


def claim(
    factory: sessionmaker[Session],
    wave_id: int,
    owner: str,
    *,
    lease: timedelta = LEASE,
    now: datetime | None = None,
    rebuild: bool = False,
) -> bool:
    """Take the wave's lease for ``owner``; False when another worker holds it, or the wave is not due.

    The job takes closing waves whose retry time has come; a rebuild (``peil results rebuild``) takes a closed
    wave, or a closing one at once.
    """
    now = now or utcnow()
    statement = update(Wave).where(Wave.id == wave_id, _free(now))
    if rebuild:
        statement = statement.where(Wave.state.in_(("closing", "closed")))
    else:
        statement = statement.where(Wave.state == "closing", _retry_due(now))
    values = {"close_owner": owner, "close_lease_until": now + lease, "close_attempts": Wave.close_attempts + 1}
    with transaction(factory) as session:
        result = session.execute(statement.values(**values).execution_options(synchronize_session=False))
        won: bool = result.rowcount == 1  # type: ignore[attr-defined]
    return won


def fail(
    factory: sessionmaker[Session], wave_id: int, owner: str, exc: BaseException, *, now: datetime | None = None
) -> str:
    """Record why the close failed and when it may run again, and let go of the lease; returns the reason."""
    reason = _reason(exc)
    now = now or utcnow()
    with transaction(factory) as session:
        wave = session.get(Wave, wave_id)
        if wave is None or wave.close_owner != owner:
            return reason
        wait = min(RETRY_FIRST * 2 ** max(wave.close_attempts - 1, 0), RETRY_MAX)
        if wave.state == "closing":  # a failed rebuild of a closed wave leaves it as it was
            wave.close_error, wave.close_retry_at = reason[:MAX_ERROR], now + wait
        wave.close_owner, wave.close_lease_until = None, None
    return reason


def _reason(exc: BaseException) -> str:
    """A reason HR may read: the service's own errors say what is wrong; anything else names its kind only
    (a database error's text may hold SQL parameters, answers among them). The log has the rest."""
    if isinstance(exc, PeilError):
        return exc.message
    if isinstance(exc, SQLAlchemyError):
        return f"database error ({type(exc).__name__}); it is retried"
    return f"the result table could not be built ({type(exc).__name__}); see the service log"


def _free(now: datetime) -> ColumnElement[bool]:
    return or_(Wave.close_lease_until.is_(None), Wave.close_lease_until < now)


def _retry_due(now: datetime) -> ColumnElement[bool]:
    return or_(Wave.close_retry_at.is_(None), Wave.close_retry_at <= now)


def _frozen(session: Session, wave_id: int, owner: str, instruments: Instruments) -> Wave:
    """The wave whose lease ``owner`` holds, once it takes no answers, ready to be loaded."""
    wave = session.get(Wave, wave_id)
    if wave is None or wave.close_owner != owner:
        raise LeaseLost(f"the lease on wave {wave_id} is not {owner}'s")
    if (wave.instrument, wave.version) not in instruments:
        raise Conflict(f"instrument {wave.instrument}/{wave.version} is not among this worker's definitions")
    if purged(session, wave.id):
        raise Conflict(f"the answers of wave {wave.id} were purged; its stored results can no longer be rebuilt")
    return wave


def _held(session: Session, wave_id: int, owner: str) -> Wave:
    """The wave, locked for this transaction, if ``owner`` still holds its lease."""
    wave = session.scalar(select(Wave).where(Wave.id == wave_id, Wave.close_owner == owner).with_for_update())
    if wave is None:
        raise LeaseLost(f"the lease on wave {wave_id} lapsed and another worker took it")
    return wave


def _mark_closed(wave: Wave) -> None:
    wave.state = "closed"
    wave.close_owner, wave.close_lease_until = None, None
    wave.close_error, wave.close_retry_at = None, None


@contextmanager
def _renewing(factory: sessionmaker[Session], wave_id: int, owner: str, lease: timedelta) -> Iterator[None]:
    """Hold the lease while the block runs, however long a build takes: renew it every third of its length. A
    worker that dies stops renewing, and its wave is free again within one lease."""
    stop = threading.Event()

    def renew() -> None:
        while not stop.wait(lease.total_seconds() / 3):
            try:
                with transaction(factory) as session:
                    statement = update(Wave).where(Wave.id == wave_id, Wave.close_owner == owner)
                    session.execute(
                        statement.values(close_lease_until=utcnow() + lease).execution_options(
                            synchronize_session=False
                        )
                    )
            except SQLAlchemyError as exc:  # the final check finds out if the lease was lost meanwhile
                log.warning("close of wave %d: lease not renewed (%s)", wave_id, type(exc).__name__)

    renewer = threading.Thread(target=renew, name=f"close-lease-{wave_id}", daemon=True)
    renewer.start()
    try:
        yield
    finally:
        stop.set()
        renewer.join()


@contextmanager
def _reading(factory: sessionmaker[Session]) -> Iterator[Session]:
    """A session for reads outside any transaction (``service.db.reading``): no writer waits for it."""
    with reading(factory.kw["bind"]) as connection, Session(bind=connection) as session:
        yield session


@contextmanager
def _timed(seconds: dict[str, float], step: str) -> Iterator[None]:
    start = time.perf_counter()
    try:
        yield
    finally:
        seconds[step] = time.perf_counter() - start


# The worker ----------------------------------------------------------------------------------------------


def run_due(
    factory: sessionmaker[Session],
    instruments: Instruments,
    *,
    owner: str | None = None,
    lease: timedelta = LEASE,
    now: datetime | None = None,
) -> list[Closed]:
    """The worker's turn: close every due wave it can claim, one after the other; returns what it closed."""
    owner = owner or new_owner()
    closed: list[Closed] = []
    for wave_id in due(factory, now):
        if not claim(factory, wave_id, owner, lease=lease, now=now):
            continue  # another worker took it first
        try:
            done = close(factory, wave_id, instruments, owner=owner, lease=lease)
        except LeaseLost as exc:
            log.warning("close of wave %d abandoned: %s", wave_id, exc)
            continue
        except Exception as exc:
            reason = fail(factory, wave_id, owner, exc, now=now)
            log.error("close of wave %d failed: %s", wave_id, reason, exc_info=not isinstance(exc, SQLAlchemyError))
            continue
        closed.append(done)
    return closed


def rebuild(factory: sessionmaker[Session], wave_id: int, instruments: Instruments, *, actor: str) -> Closed:
    """Build a closed (or closing) wave's table again from its answers, now, through the same steps."""
    owner = new_owner()
    if not claim(factory, wave_id, owner, rebuild=True):
        with _reading(factory) as session:
            wave = session.get(Wave, wave_id)
        if wave is None:
            raise NotFound(f"no wave {wave_id}")
        if wave.state not in ("closing", "closed"):
            raise Conflict(f"results are rebuilt only for closed waves; wave {wave_id} is {wave.state}")
        raise Conflict(f"another worker is closing wave {wave_id} now; try again when it is closed")
    try:
        return close(factory, wave_id, instruments, owner=owner, actor=actor, action="results.rebuilt")
    except Exception as exc:
        fail(factory, wave_id, owner, exc)
        raise
