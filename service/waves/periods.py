"""A continuous wave's periods: its answers published a quarter at a time, once the quarter has ended and at
least ``min_group_size`` people answered in it; a quarter short of that waits and is pooled with the next
quarters of its year (so a window grows from a quarter up to a year). What a year leaves unpublished stays with
the continuous wave, whose own table (built when it closes, guarded like any) holds the answers no period took.

Each published period is a wave of its own (kind ``period``, ``parent_id`` the continuous wave): the window's
complete responses move into it and it starts ``closing``, so the close job builds, guards and stores its table
as for any wave, and drops the responses' dates (rule 5). Nothing computes a score a second time. A moved
response is final: its link no longer changes it (``service.forms.storage`` saves only into the link's own
wave). Windows never overlap, so no two published tables can be subtracted from each other.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import ColumnElement, func, select, update
from sqlalchemy.orm import Session

from service import audit
from service.models import Response, Wave


def quarter_start(moment: datetime) -> datetime:
    """The first instant (UTC) of the quarter ``moment`` lies in."""
    return datetime(moment.year, 3 * ((moment.month - 1) // 3) + 1, 1, tzinfo=UTC)


def next_quarter(start: datetime) -> datetime:
    """The first instant of the quarter after the one starting at ``start``."""
    month = start.month + 3
    return datetime(start.year + (month > 12), (month - 1) % 12 + 1, 1, tzinfo=UTC)


def label(starts: datetime, ends: datetime) -> str:
    """A window's name: ``2026 Q1`` for a quarter, ``2026 Q1-Q3`` for pooled quarters, ``2026`` for a year."""
    first, last = (starts.month - 1) // 3 + 1, (ends.month - 2) % 12 // 3 + 1
    if (first, last) == (1, 4):
        return f"{starts.year}"
    return f"{starts.year} Q{first}" if first == last else f"{starts.year} Q{first}-Q{last}"


def published(session: Session, wave: Wave) -> list[Wave]:
    """The periods of a continuous wave published so far, oldest first."""
    return list(session.scalars(select(Wave).where(Wave.parent_id == wave.id).order_by(Wave.opens_at, Wave.id)))


def publish_due(session: Session, wave: Wave, now: datetime, *, actor: str) -> list[Wave]:
    """Publish every window of an open continuous wave that is due by ``now`` (or by its end, if earlier): each
    quarter ended since the last published window, alone or pooled with the unpublished quarters before it in
    its year, once it holds ``min_group_size`` complete responses. Returns the new periods, each closing."""
    if wave.kind != "continuous" or wave.state != "open":
        return []
    until = min(now, wave.closes_at)
    done = published(session, wave)
    pending = done[-1].closes_at if done else quarter_start(wave.opens_at)
    if next_quarter(pending) > until:
        return []  # no quarter ended since the last window: nothing to look at (the common case)
    # Saves merge into responses under a share lock on the wave row (PostgreSQL): take it for writing, so that no
    # response changes its day while its window is counted and moved. Then look again, under the lock.
    session.execute(select(Wave.id).where(Wave.id == wave.id).with_for_update())
    done = published(session, wave)
    pending = done[-1].closes_at if done else quarter_start(wave.opens_at)
    new: list[Wave] = []
    ends = next_quarter(pending)
    while ends <= until:
        year_start = datetime((ends - timedelta(days=1)).year, 1, 1, tzinfo=UTC)  # the year of the quarter ending
        pending = max(pending, year_start)  # a window stays within its year: an older remainder is not pooled
        if _answered(session, wave, pending, ends) >= wave.min_group_size:
            new.append(_publish(session, wave, pending, ends, now, actor=actor))
            pending = ends
        ends = next_quarter(ends)
    return new


def _answered(session: Session, wave: Wave, starts: datetime, ends: datetime) -> int:
    """Complete responses of the wave last changed in the window (only counted inside the service, never shown)."""
    return session.scalar(select(func.count()).select_from(Response).where(*_in_window(wave, starts, ends))) or 0


def _in_window(wave: Wave, starts: datetime, ends: datetime) -> tuple[ColumnElement[bool], ...]:
    return (
        Response.wave_id == wave.id,
        Response.complete.is_(True),
        Response.answered_on >= starts.date(),
        Response.answered_on < ends.date(),
    )


def _publish(session: Session, wave: Wave, starts: datetime, ends: datetime, now: datetime, *, actor: str) -> Wave:
    """A period wave for the window, its responses moved into it, closing: the close job builds its table."""
    period = Wave(
        name=f"{wave.name}, {label(starts, ends)}",
        instrument=wave.instrument,
        version=wave.version,
        opens_at=starts,
        closes_at=ends,
        min_group_size=wave.min_group_size,
        attributes=list(wave.attributes),
        attribute_values=dict(wave.attribute_values),
        language=wave.language,
        state="closing",
        opened_at=starts,
        closed_at=now,
        kind="period",
        scope_unit_id=wave.scope_unit_id,
        parent_id=wave.id,
    )
    session.add(period)
    session.flush()
    session.execute(
        update(Response)
        .where(*_in_window(wave, starts, ends))
        .values(wave_id=period.id)
        .execution_options(synchronize_session=False)
    )
    audit.record(session, actor, "wave.period_published", period.id, parent=wave.id, period=label(starts, ends))
    return period
