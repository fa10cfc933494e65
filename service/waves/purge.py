"""Retention: delete the answers of waves closed long ago, keep what was published from them.

A closed wave's result table (``wave_results``) was computed once from all its answers, and dashboards, the
export and its files read only that table. After the retention period the individual answers are no longer
needed, and data that is not kept cannot leak. Only waves whose table is stored are purged: answers of a
wave without results are never thrown away unseen. Each purge is written to the audit log, and afterwards
``reclaim`` rewrites the storage so that the deleted answers do not linger in the database's files.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Engine, delete, exists, func, select, text
from sqlalchemy.orm import Session

from service import audit
from service.models import AuditEntry, Response, Wave, WaveResult
from service.models.base import utcnow

ACTION = "responses.purged"


@dataclass(frozen=True)
class Purged:
    """One wave's purge: how many responses went (0 when ``skipped`` says why nothing was done)."""

    wave_id: int
    name: str
    closed_at: datetime
    responses: int
    skipped: str | None = None


def purge(
    session: Session, older_than: timedelta, *, actor: str, now: datetime | None = None, dry_run: bool = False
) -> list[Purged]:
    """Delete the responses of every wave closed more than ``older_than`` ago that has stored results.

    Waves closed too recently, open or draft waves, and their answers are not touched. ``dry_run`` counts
    without deleting or recording. The caller commits.
    """
    if older_than < timedelta(0):
        raise ValueError("older_than must not be negative")
    cutoff = (now or utcnow()) - older_than
    closed_at = func.coalesce(Wave.closed_at, Wave.closes_at)
    waves = session.scalars(
        select(Wave).where(Wave.state == "closed", closed_at <= cutoff).order_by(Wave.id).with_for_update()
    ).all()
    done: list[Purged] = []
    for wave in waves:
        count = session.scalar(select(func.count()).select_from(Response).where(Response.wave_id == wave.id)) or 0
        when = wave.closed_at or wave.closes_at
        if count == 0:
            continue
        if not session.scalar(select(exists().where(WaveResult.wave_id == wave.id))):
            done.append(Purged(wave.id, wave.name, when, 0, skipped="no stored results; build them first"))
            continue
        if not dry_run:
            session.execute(delete(Response).where(Response.wave_id == wave.id))
            audit.record(
                session, actor, ACTION, wave.id, responses=count, closed_at=when.isoformat(), older_than=str(older_than)
            )
        done.append(Purged(wave.id, wave.name, when, count))
    session.flush()
    return done


def purged(session: Session, wave_id: int) -> bool:
    """True when the wave's answers were purged: its stored results can no longer be rebuilt from them."""
    return bool(session.scalar(select(exists().where(AuditEntry.wave_id == wave_id, AuditEntry.action == ACTION))))


def reclaim(engine: Engine) -> None:
    """Rewrite the storage after a purge, outside any transaction, so that the deleted rows' bytes are gone.

    SQLite: ``VACUUM`` rebuilds the file (under the service's write lock, as any writer), then a checkpoint
    empties the write-ahead log, which holds the pages VACUUM wrote. PostgreSQL: ``VACUUM FULL responses``
    writes the table into a new file and drops the old one; it locks the table meanwhile (saves wait).
    """
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM FULL responses"))
        return
    raw = engine.raw_connection()
    try:
        sqlite = raw.driver_connection
        assert sqlite is not None
        sqlite.hold_write_lock()
        try:
            sqlite.execute("VACUUM")
            sqlite.execute("PRAGMA wal_checkpoint(TRUNCATE)").close()
        finally:
            sqlite.let_go()
    finally:
        raw.close()
