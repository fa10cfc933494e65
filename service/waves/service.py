"""Waves: validation, the state machine draft -> open -> closing -> closed (by API or by the clock), counts.

Closing here is only the state change that stops a wave taking answers (``freeze``): the close job
(``service.waves.close``) builds and stores its result table and marks it closed, outside any request.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session

from service import audit
from service.errors import Conflict, NotFound, Unprocessable
from service.instruments.loader import Instruments
from service.models import Invitation, Response, Unit, Wave
from service.models.base import utcnow
from service.waves import periods
from service.waves.schemas import WaveCreate, WaveUpdate

MAX_WINDOW = timedelta(days=366)
MAX_CONTINUOUS_WINDOW = timedelta(days=3 * 366)  # an exit survey runs for years, published per period
CONTINUOUS_INSTRUMENTS = ("exit",)  # the instruments a continuous wave may run

CLOCK = "clock"  # the audit log's name for the wave clock
TAKING_ANSWERS = ("draft", "open")  # the states a wave can be closed from (a draft by its window's end)


def get(session: Session, wave_id: int, *, for_update: bool = False) -> Wave:
    statement = select(Wave).where(Wave.id == wave_id)
    if for_update:
        statement = statement.with_for_update()
    wave = session.scalar(statement)
    if wave is None:
        raise NotFound(f"no wave {wave_id}")
    return wave


def _check_window(opens_at: datetime, closes_at: datetime, kind: str = "single") -> None:
    if closes_at <= opens_at:
        raise Unprocessable("closes_at must be after opens_at", details=[{"field": "closes_at", "reason": "too early"}])
    longest, words = (MAX_CONTINUOUS_WINDOW, "three years") if kind == "continuous" else (MAX_WINDOW, "a year")
    if closes_at - opens_at > longest:
        raise Unprocessable(
            f"a {kind} wave's window is at most {words}", details=[{"field": "closes_at", "reason": "too late"}]
        )


def _scope_id(session: Session, key: str | None) -> int | None:
    """The id of the unit a wave is scoped to (None: the whole organisation); an unknown key is refused."""
    if key is None:
        return None
    unit_id = session.scalar(select(Unit.id).where(Unit.key == key))
    if unit_id is None:
        raise Unprocessable(f"unknown scope unit {key!r}", details=[{"field": "scope", "reason": "unknown unit"}])
    return unit_id


def create(session: Session, data: WaveCreate, instruments: Instruments, default_min_group_size: int) -> Wave:
    if (data.instrument, data.version) not in instruments:
        known = ", ".join(f"{slug}/{version}" for slug, version in sorted(instruments))
        raise Unprocessable(
            f"unknown instrument {data.instrument}/{data.version}; known: {known}",
            details=[{"field": "instrument", "reason": "unknown instrument or version"}],
        )
    if data.kind == "continuous" and data.instrument not in CONTINUOUS_INSTRUMENTS:
        raise Unprocessable(
            f"a continuous wave runs the {', '.join(CONTINUOUS_INSTRUMENTS)} instrument, not {data.instrument}",
            details=[{"field": "kind", "reason": "not an instrument for a continuous wave"}],
        )
    _check_window(data.opens_at, data.closes_at, data.kind)
    if data.closes_at <= utcnow():
        raise Unprocessable("closes_at is in the past", details=[{"field": "closes_at", "reason": "in the past"}])
    wave = Wave(
        kind=data.kind,
        scope_unit_id=_scope_id(session, data.scope),
        name=data.name,
        instrument=data.instrument,
        version=data.version,
        opens_at=data.opens_at,
        closes_at=data.closes_at,
        min_group_size=data.min_group_size or default_min_group_size,
        attributes=list(data.attributes),
        attribute_values={},
        language=data.language,
        state="draft",
    )
    session.add(wave)
    session.flush()
    return wave


def update_wave(session: Session, wave: Wave, data: WaveUpdate) -> Wave:
    changes = data.model_dump(exclude_unset=True, exclude_none=True)  # null means "no change", like absent
    if wave.state in ("closing", "closed"):
        raise Conflict(f"a {wave.state} wave cannot change")
    if wave.kind == "period":
        raise Conflict("a published period of a continuous wave cannot change")
    if wave.state == "open":
        fixed = sorted({"min_group_size", "attributes", "opens_at"} & changes.keys())
        if fixed:
            raise Conflict(f"{', '.join(fixed)} cannot change once the wave is open: respondents were promised them")
    if "attributes" in changes and invited_count(session, wave.id):
        raise Conflict("attributes cannot change once participants are uploaded")
    opens_at = changes.get("opens_at", wave.opens_at)
    closes_at = changes.get("closes_at", wave.closes_at)
    _check_window(opens_at, closes_at, wave.kind)
    if "closes_at" in changes and closes_at <= utcnow():
        raise Unprocessable("closes_at is in the past", details=[{"field": "closes_at", "reason": "in the past"}])
    for name, value in changes.items():
        if value is not None:
            setattr(wave, name, value)
    session.flush()
    return wave


def open_wave(session: Session, wave: Wave, now: datetime | None = None) -> Wave:
    now = now or utcnow()
    if wave.state != "draft":
        raise Conflict(f"only a draft wave can open; this one is {wave.state}")
    if wave.closes_at <= now:
        raise Conflict("the wave's window has already ended; move closes_at first")
    wave.state = "open"
    wave.opened_at = now
    wave.opens_at = min(wave.opens_at, now)
    session.flush()
    return wave


def close_wave(session: Session, wave: Wave, now: datetime | None = None) -> Wave:
    """HR closes an open wave now: it stops taking answers and its close job is due (the caller's 202)."""
    now = now or utcnow()
    if wave.state != "open":
        raise Conflict(f"only an open wave can close; this one is {wave.state}")
    freeze(session, wave, now)
    return wave


def freeze(session: Session, wave: Wave, now: datetime) -> bool:
    """open (or draft) -> closing, unless another request or worker got there first; True for the winner.

    One conditional UPDATE: on PostgreSQL it waits for saves holding their share lock on the wave row, and every
    later save sees the wave closing; on SQLite it holds the one write lock. No answer lands after it.
    """
    session.flush()  # the refresh below reloads the row: write this session's pending changes first
    result = session.execute(
        update(Wave)
        .where(Wave.id == wave.id, Wave.state.in_(TAKING_ANSWERS))
        .values(
            state="closing",
            closed_at=now,
            closes_at=min(wave.closes_at, now),
            close_attempts=0,
            close_error=None,
            close_retry_at=None,
        )
    )
    session.refresh(wave)
    won: bool = result.rowcount == 1  # type: ignore[attr-defined]
    return won


def advance(session: Session, wave: Wave, now: datetime | None = None) -> Wave:
    """Apply the clock: a draft whose window has begun opens; a continuous wave publishes the periods that are
    due (``service.waves.periods``); a wave whose window has ended starts closing. All are cheap state changes
    (nothing is built here: the close job builds), audited under the clock's name."""
    now = now or utcnow()
    if wave.state == "draft" and wave.opens_at <= now < wave.closes_at:
        session.flush()  # as in freeze: the refresh must not drop pending changes
        opened = session.execute(
            update(Wave).where(Wave.id == wave.id, Wave.state == "draft").values(state="open", opened_at=now)
        )
        session.refresh(wave)
        if opened.rowcount == 1:  # type: ignore[attr-defined]
            audit.record(session, CLOCK, "wave.opened", wave.id)
    if wave.kind == "continuous":  # its quarters ended so far, before it may freeze
        periods.publish_due(session, wave, now, actor=CLOCK)
    if wave.state in TAKING_ANSWERS and wave.closes_at <= now and freeze(session, wave, now):
        audit.record(session, CLOCK, "wave.closed", wave.id)
    return wave


def advance_all(session: Session, now: datetime | None = None) -> int:
    """Apply the clock to every wave it concerns (the scheduler's tick), and publish the periods of continuous
    waves that are due; returns how many waves changed or were published."""
    now = now or utcnow()
    due = session.scalars(
        select(Wave).where(
            ((Wave.state == "draft") & (Wave.opens_at <= now))
            | (Wave.state.in_(TAKING_ANSWERS) & (Wave.closes_at <= now))
        )
    ).all()
    for wave in due:
        advance(session, wave, now)
    running = session.scalars(
        select(Wave).where(Wave.kind == "continuous", Wave.state == "open", Wave.closes_at > now)
    ).all()
    published = sum(len(periods.publish_due(session, wave, now, actor=CLOCK)) for wave in running)
    return len(due) + published


def invited_count(session: Session, wave_id: int) -> int:
    return session.scalar(select(func.count()).select_from(Invitation).where(Invitation.wave_id == wave_id)) or 0


def scope_key(session: Session, wave: Wave) -> str | None:
    """The key of the unit a wave is scoped to; None for the whole organisation."""
    if wave.scope_unit_id is None:
        return None
    return session.scalar(select(Unit.key).where(Unit.id == wave.scope_unit_id))


def list_waves(session: Session) -> list[Wave]:
    return list(session.scalars(select(Wave).order_by(Wave.id)))


def counts_per_unit(session: Session, wave_id: int) -> tuple[dict[int, int], dict[int, int]]:
    """Invitations and complete responses per unit (direct members only). A continuous wave's responses include
    those its published periods took: its leavers answered, wherever their answers now are."""
    with_periods = select(Wave.id).where(or_(Wave.id == wave_id, Wave.parent_id == wave_id))
    invited = dict(
        session.execute(
            select(Invitation.unit_id, func.count()).where(Invitation.wave_id == wave_id).group_by(Invitation.unit_id)
        ).all()
    )
    responded = dict(
        session.execute(
            select(Response.unit_id, func.count())
            .where(Response.wave_id.in_(with_periods), Response.complete.is_(True))
            .group_by(Response.unit_id)
        ).all()
    )
    return invited, responded
