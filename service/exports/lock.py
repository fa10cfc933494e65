"""One export at a time, across workers and replicas: a claim on a row of ``export_lock``.

The claim is one atomic ``UPDATE ... WHERE locked_until < now`` (and, for a scheduled run, ``slot < this
slot``): whichever worker's UPDATE matches the row wins, every other one matches nothing. It works the same on
SQLite and PostgreSQL and needs no session held open. A live run renews the claim as it goes (``heartbeat``);
a run that died (SIGKILL, a lost machine) stops renewing, and the claim lapses after ``ttl``.
"""

from __future__ import annotations

import os
import socket
import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import Update, or_, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, sessionmaker

from service.db import transaction
from service.models import ExportLock
from service.models.base import utcnow

LOCK_ID = 1
DEFAULT_TTL = timedelta(minutes=10)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _unsynchronised(statement: Update) -> Update:
    """These sessions hold no ``ExportLock`` object: nothing to bring up to date after the UPDATE (SQLAlchemy
    would otherwise evaluate its WHERE clause against the session's objects first)."""
    return statement.execution_options(synchronize_session=False)


def new_owner() -> str:
    return f"{socket.gethostname()[:40]}:{os.getpid()}:{uuid.uuid4().hex[:12]}"


def _ensure_row(session: Session) -> None:
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    session.execute(
        insert(ExportLock).values(id=LOCK_ID, locked_until=_EPOCH).on_conflict_do_nothing(index_elements=["id"])
    )


def acquire(
    factory: sessionmaker[Session],
    owner: str,
    ttl: timedelta = DEFAULT_TTL,
    slot: datetime | None = None,
    now: datetime | None = None,
) -> bool:
    """Claim the lock for ``owner``; False when another run holds it (or has already run this ``slot``)."""
    now = now or utcnow()
    with transaction(factory) as session:
        _ensure_row(session)
        statement = update(ExportLock).where(ExportLock.id == LOCK_ID, ExportLock.locked_until < now)
        values: dict[str, object] = {"owner": owner, "run_id": None, "locked_until": now + ttl}
        if slot is not None:
            statement = statement.where(or_(ExportLock.slot.is_(None), ExportLock.slot < slot))
            values["slot"] = slot
        result = session.execute(_unsynchronised(statement.values(**values)))
        won: bool = result.rowcount == 1  # type: ignore[attr-defined]
    return won


def attach(session: Session, owner: str, run_id: int) -> None:
    """Name the run holding the claim, in the caller's transaction (the one that records the run)."""
    session.execute(_unsynchronised(update(ExportLock).where(ExportLock.owner == owner).values(run_id=run_id)))


def heartbeat(factory: sessionmaker[Session], owner: str, ttl: timedelta = DEFAULT_TTL) -> bool:
    """Renew the claim; False if it lapsed and another run took it (the caller must stop)."""
    with transaction(factory) as session:
        result = session.execute(
            _unsynchronised(update(ExportLock).where(ExportLock.owner == owner).values(locked_until=utcnow() + ttl))
        )
        renewed: bool = result.rowcount == 1  # type: ignore[attr-defined]
    return renewed


def release(factory: sessionmaker[Session], owner: str) -> None:
    with transaction(factory) as session:
        session.execute(
            _unsynchronised(
                update(ExportLock).where(ExportLock.owner == owner).values(owner=None, run_id=None, locked_until=_EPOCH)
            )
        )
