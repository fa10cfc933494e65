"""One mail sender at a time, over all workers and replicas: a claim on the row of ``mail_lock``.

The claim is one atomic ``UPDATE ... WHERE locked_until < now`` (as the export's lock): whichever worker's
UPDATE matches wins. The holder renews it before every message (``renew``); a sender that died stops renewing
and its claim lapses after ``lease``. While the mail server is unreachable the row also holds the back-off
(``pause``), so that no worker tries again before it ends.
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
from service.models import MailLock

LOCK_ID = 1
LEASE = timedelta(minutes=5)  # far longer than one message can take (SMTP commands time out after 20 s)
FIRST_PAUSE = timedelta(seconds=30)
LONGEST_PAUSE = timedelta(minutes=30)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def new_owner() -> str:
    return f"{socket.gethostname()[:40]}:{os.getpid()}:{uuid.uuid4().hex[:12]}"


def _unsynchronised(statement: Update) -> Update:
    return statement.execution_options(synchronize_session=False)


def acquire(factory: sessionmaker[Session], owner: str, now: datetime, lease: timedelta = LEASE) -> bool:
    """Claim the sender's role for ``owner``; False while another holds it or the back-off lasts."""
    with transaction(factory) as session:
        insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
        session.execute(
            insert(MailLock)
            .values(id=LOCK_ID, locked_until=_EPOCH, failures=0)
            .on_conflict_do_nothing(index_elements=["id"])
        )
        result = session.execute(
            _unsynchronised(
                update(MailLock)
                .where(
                    MailLock.id == LOCK_ID,
                    MailLock.locked_until < now,
                    or_(MailLock.paused_until.is_(None), MailLock.paused_until <= now),
                )
                .values(owner=owner, locked_until=now + lease)
            )
        )
        won: bool = result.rowcount == 1  # type: ignore[attr-defined]
    return won


def renew(factory: sessionmaker[Session], owner: str, now: datetime, lease: timedelta = LEASE) -> bool:
    """Extend the claim; False if it lapsed and another sender took it (the caller must stop sending)."""
    with transaction(factory) as session:
        result = session.execute(
            _unsynchronised(update(MailLock).where(MailLock.owner == owner).values(locked_until=now + lease))
        )
        renewed: bool = result.rowcount == 1  # type: ignore[attr-defined]
    return renewed


def pause(factory: sessionmaker[Session], owner: str, now: datetime) -> timedelta:
    """The mail server is unavailable: nobody sends before a back-off that doubles with each failure in a row."""
    with transaction(factory) as session:
        row = session.get(MailLock, LOCK_ID)
        failures = row.failures if row is not None else 0
        wait = min(FIRST_PAUSE * (1 << min(failures, 10)), LONGEST_PAUSE)
        session.execute(
            _unsynchronised(
                update(MailLock).where(MailLock.owner == owner).values(paused_until=now + wait, failures=failures + 1)
            )
        )
    return wait


def recovered(factory: sessionmaker[Session], owner: str) -> None:
    """A message went through: the next outage starts its back-off from the beginning."""
    with transaction(factory) as session:
        session.execute(
            _unsynchronised(update(MailLock).where(MailLock.owner == owner).values(failures=0, paused_until=None))
        )


def release(factory: sessionmaker[Session], owner: str) -> None:
    with transaction(factory) as session:
        session.execute(
            _unsynchronised(update(MailLock).where(MailLock.owner == owner).values(owner=None, locked_until=_EPOCH))
        )
