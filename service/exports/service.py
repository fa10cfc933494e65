"""Run an export: claim the lock, decide which waves, read their stored tables, write the target, record the run.

Incremental by default: a wave is exported when its ``wave_results.built_at`` differs from what the last
successful run to the same target wrote (closed since, or rebuilt). ``full`` re-exports every wave; ``waves``
exports exactly those. A failed run is recorded with its error and leaves the target as the last good run
left it; since the state only moves on success, the next run redoes what the failed one did not finish.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path

import pyarrow as pa
from sqlalchemy import select, update
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from service.audit import record
from service.config import Settings
from service.db import transaction
from service.exports import columns, lock, outcomes
from service.exports.files import FileTarget
from service.exports.rows import WaveInfo, check_safe, decode, derive, finish
from service.exports.schema import KEYS, TABLES
from service.exports.sql import SqlTarget, split_url
from service.models import ExportRun, PublishedInstrument, Unit, Wave, WaveResult
from service.models.base import utcnow

log = logging.getLogger("peil")

Target = FileTarget | SqlTarget
Progress = Callable[[int, int, str], None]
MAX_ERROR = 2000


class ExportBusy(RuntimeError):
    """Another run holds the lock (or this scheduled slot has already run)."""


class LockLost(RuntimeError):
    """The run's claim lapsed and another run took it; this one stops without committing."""


def open_target(settings: Settings) -> Target:
    """The target named by ``PEIL_EXPORT_TARGET``: ``file://PATH`` (default ``data_dir/export``) or a SQL URL."""
    raw = settings.export_target or f"file://{(settings.data_dir / 'export').resolve()}"
    if raw.startswith("file://"):
        return FileTarget(Path(raw.removeprefix("file://")))
    url, schema = split_url(raw)
    if schema is None and make_url(url) == make_url(settings.database_url):
        raise ValueError("PEIL_EXPORT_TARGET is the service's own database: give it a ?schema= or another database")
    return SqlTarget(url, schema)


@dataclass(frozen=True)
class Plan:
    waves: list[int]  # to write, in id order
    removed: list[int]  # exported before, results gone since
    exported: dict[str, str]  # the target's state before the run: wave id -> built_at


def _stored(session: Session) -> dict[str, str]:
    rows = session.execute(
        select(WaveResult.wave_id, WaveResult.built_at)
        .join(Wave, Wave.id == WaveResult.wave_id)
        # Only closed waves have published results; a reopened wave is not exported.
        .where(Wave.state == "closed")
    ).all()
    return {str(wave_id): built_at.isoformat() for wave_id, built_at in rows}


def last_success(session: Session, target: str) -> ExportRun | None:
    return session.scalar(
        select(ExportRun)
        .where(ExportRun.target == target, ExportRun.status == "succeeded")
        .order_by(ExportRun.id.desc())
        .limit(1)
    )


def plan(session: Session, target: str, *, full: bool = False, waves: Sequence[int] | None = None) -> Plan:
    """Which waves this run writes and which it removes."""
    stored = _stored(session)
    previous = last_success(session, target)
    exported = dict(previous.exported) if previous is not None else {}
    if waves:
        missing = [w for w in waves if str(w) not in stored]
        if missing:
            raise ValueError(f"no stored results for wave(s) {', '.join(map(str, missing))}")
        return Plan(sorted(set(waves)), [], exported)
    pending = [w for w, built in stored.items() if full or exported.get(w) != built]
    removed = [w for w in exported if w not in stored]
    return Plan(sorted(map(int, pending)), sorted(map(int, removed)), exported)


@dataclass(frozen=True)
class Loaded:
    """One wave's exported tables (not yet checked: the target runs ``check_safe`` before it writes), its minimum
    group size, the ``built_at`` they come from, and the columnar copy derived from its JSON when the stored one
    was missing or stale (for ``backfill``)."""

    tables: dict[str, pa.Table]
    min_group_size: int
    built_at: datetime
    derived: bytes | None


def load_wave(session: Session, wave_id: int) -> Loaded:
    """The wave's exported tables, read from ``wave_results`` (the table the API serves).

    It reads the columnar copy stored beside the JSON form (``columns``) and its ``built_at`` in one statement,
    so that what is recorded as exported is what was read, even if the wave is rebuilt meanwhile. A row without
    a current copy (stored before it existed, or by older code) is derived from its JSON, as the copy would
    have been. Nothing is computed again; ``check_safe`` runs on these tables, whichever path they took, inside
    the target's ``write_wave``, before anything is written.
    """
    stored = session.execute(
        select(WaveResult.columnar, WaveResult.built_at).where(WaveResult.wave_id == wave_id)
    ).one_or_none()
    wave = session.get(Wave, wave_id)
    if stored is None or wave is None or wave.state != "closed":
        raise LookupError(f"wave {wave_id} has no stored results (deleted or reopened meanwhile)")
    data, built_at = stored
    derived = columns.decode(data, built_at)
    backfill = None
    if derived is None:
        blob = session.scalar(
            select(WaveResult.table).where(WaveResult.wave_id == wave_id, WaveResult.built_at == built_at)
        )
        if blob is None:
            raise LookupError(f"wave {wave_id}'s results were rebuilt or deleted while the export read them")
        derived = derive(decode(blob))
        backfill = columns.encode(derived, built_at)
    names = {key: name for key, name in session.connection().execute(select(Unit.key, Unit.name))}  # Core, no ORM
    sha = session.scalar(
        select(PublishedInstrument.sha256).where(
            PublishedInstrument.slug == wave.instrument, PublishedInstrument.version == wave.version
        )
    )
    info = WaveInfo(
        name=wave.name,
        opens_at=wave.opens_at,
        closes_at=wave.closes_at,
        closed_at=wave.closed_at,
        attributes=tuple(wave.attributes),
        built_at=built_at,
        unit_names=names,
        instrument_sha256=sha,
    )
    return Loaded(finish(derived, info), derived.min_group_size, built_at, backfill)


def backfill(factory: sessionmaker[Session], wave_id: int, loaded: Loaded) -> None:
    """Store the columnar copy a run derived from the JSON, unless the table was rebuilt meanwhile (the rebuild
    stored its own). A cache of the stored table, so a failure only costs the next run the same work again."""
    if loaded.derived is None:
        return
    try:
        with transaction(factory) as session:
            session.execute(
                update(WaveResult)
                .where(WaveResult.wave_id == wave_id, WaveResult.built_at == loaded.built_at)
                .values(columnar=loaded.derived)
            )
    except SQLAlchemyError:
        log.warning("wave %d: could not store the export's columnar copy", wave_id, exc_info=True)


def _error_text(exc: BaseException, target: Target) -> str:
    text = f"{type(exc).__name__}: {exc}"
    if isinstance(target, SqlTarget):
        password = make_url(target.url).password
        if password:
            text = text.replace(str(password), "***")
    return text[:MAX_ERROR]


def _start(factory: sessionmaker[Session], owner: str, target: Target, trigger: str, full: bool) -> int:
    with transaction(factory) as session:
        # We hold the lock, so any run still marked running has died without a word (SIGKILL, a lost host).
        session.execute(
            update(ExportRun)
            .where(ExportRun.status == "running")
            .values(status="failed", finished_at=utcnow(), error="interrupted: the run stopped before finishing")
            .execution_options(synchronize_session=False)
        )
        run = ExportRun(status="running", trigger=trigger, full=full, target=target.display, started_at=utcnow())
        session.add(run)
        session.flush()
        run_id = run.id
        lock.attach(session, owner, run_id)  # recorded as running and named on the lock in one commit
    return run_id


def _refuse_unknown(factory: sessionmaker[Session], waves: Sequence[int] | None) -> None:
    """Raise ``ValueError`` for a requested wave without stored results: the caller's mistake, refused before
    anything starts (not a failed run)."""
    if not waves:
        return
    with factory() as session:
        stored = _stored(session)
    missing = [w for w in waves if str(w) not in stored]
    if missing:
        raise ValueError(f"no stored results for wave(s) {', '.join(map(str, missing))}")


@dataclass(frozen=True)
class _Written:
    """What a run wrote and committed to its target: the plan it followed, rows per table, the target's new state
    (wave id -> built_at) and the commit's checksum."""

    todo: Plan
    rows: dict[str, int]
    exported: dict[str, str]
    checksum: str


def _write_waves(
    factory: sessionmaker[Session],
    target: Target,
    owner: str,
    lock_ttl: timedelta,
    todo: Plan,
    progress: Progress | None,
) -> tuple[dict[str, int], dict[str, str]]:
    """Begin the target and write each planned wave (checked by the target before it writes), renewing the lock
    between waves; rows per table and the target's state with them (removed waves left out)."""
    rows = dict.fromkeys((*TABLES, outcomes.NAME), 0)
    exported = {w: b for w, b in todo.exported.items() if int(w) not in todo.removed}
    total = len(todo.waves)
    target.begin()
    for done, wave_id in enumerate(todo.waves):
        if progress is not None:
            progress(done, total, f"wave {wave_id}")
        with factory() as session:
            loaded = load_wave(session, wave_id)
        check = partial(check_safe, loaded.tables, loaded.min_group_size)
        target.write_wave(wave_id, loaded.tables, check=check)
        backfill(factory, wave_id, loaded)  # only what passed the check
        for name in TABLES:
            rows[name] += loaded.tables[name].num_rows
        exported[str(wave_id)] = loaded.built_at.isoformat()
        del loaded
        # between waves (after the last one, the renewal before the commit does it)
        if done + 1 < total and not lock.heartbeat(factory, owner, lock_ttl):
            raise LockLost("the export lock lapsed and another run took it")
    return rows, exported


def _write(
    factory: sessionmaker[Session],
    target: Target,
    owner: str,
    lock_ttl: timedelta,
    todo: Plan,
    progress: Progress | None,
) -> _Written:
    """Write the planned waves, remove the removed ones, write the outcomes and commit, the lock renewed just
    before the commit."""
    rows, exported = _write_waves(factory, target, owner, lock_ttl, todo, progress)
    for wave_id in todo.removed:
        target.remove_wave(wave_id)
    with factory() as session:
        found = outcomes.load(session)  # every period's outcomes, whole on every run (a small table)
    target.write_table(outcomes.NAME, found, check=partial(outcomes.check_safe, found))
    rows[outcomes.NAME] = found.num_rows
    if not lock.heartbeat(factory, owner, lock_ttl):
        raise LockLost("the export lock lapsed and another run took it")
    checksum = target.commit(exported, {**KEYS, outcomes.NAME: outcomes.KEY})
    if progress is not None:
        progress(len(todo.waves), len(todo.waves), "done")
    return _Written(todo, rows, exported, checksum)


def _failed(factory: sessionmaker[Session], run_id: int, error: str) -> ExportRun:
    """Record the run as failed with its error; the run as recorded."""
    with transaction(factory) as session:
        run = session.get_one(ExportRun, run_id)
        run.status, run.finished_at, run.error = "failed", utcnow(), error
    return run


def _succeeded(
    factory: sessionmaker[Session], run_id: int, written: _Written, target: Target, actor: str, full: bool
) -> ExportRun:
    """Record the run as succeeded with what it wrote, and audit it; the run as recorded."""
    todo, rows = written.todo, written.rows
    with transaction(factory) as session:
        run = session.get_one(ExportRun, run_id)
        run.status, run.finished_at = "succeeded", utcnow()
        run.waves, run.rows, run.exported, run.checksum = todo.waves, rows, written.exported, written.checksum
        record(
            session,
            actor,
            "exported",
            run_id=run_id,
            waves=todo.waves,
            removed=todo.removed,
            target=target.display,
            full=full,
            rows=sum(rows.values()),
        )
    log.info("export run %d: %d wave(s) to %s", run_id, len(todo.waves), target.display)
    return run


def run_export(
    factory: sessionmaker[Session],
    settings: Settings,
    *,
    trigger: str,
    actor: str,
    full: bool = False,
    waves: Sequence[int] | None = None,
    slot: datetime | None = None,
    progress: Progress | None = None,
    lock_ttl: timedelta = lock.DEFAULT_TTL,
    target: Target | None = None,
    started: Callable[[int], None] | None = None,
) -> ExportRun:
    """One export run; raises ``ExportBusy`` when another holds the lock, ``ValueError`` for a wave without
    stored results. Returns the run as recorded.

    A run that fails is recorded as failed (its error in ``error``) and returned, not raised. ``started`` is
    called with the run's id once the run holds the lock and is recorded as running.
    """
    target = target or open_target(settings)
    _refuse_unknown(factory, waves)
    owner = lock.new_owner()
    if not lock.acquire(factory, owner, lock_ttl, slot=slot):
        raise ExportBusy("an export is running, or this scheduled export has already run")
    try:
        run_id = _start(factory, owner, target, trigger, full)
        if started is not None:
            started(run_id)
        try:
            with factory() as session:
                todo = plan(session, target.display, full=full, waves=waves)
            written = _write(factory, target, owner, lock_ttl, todo, progress)
        except Exception as exc:
            log.exception("export run %d failed", run_id)
            target.abort()
            return _failed(factory, run_id, _error_text(exc, target))
        return _succeeded(factory, run_id, written, target, actor, full)
    finally:
        lock.release(factory, owner)


def list_runs(session: Session, limit: int = 100) -> list[ExportRun]:
    return list(session.scalars(select(ExportRun).order_by(ExportRun.id.desc()).limit(limit)))
