"""`peil demo`'s year behind the present: a pilot in one department with four pulse waves around its start (two
before, two after: the department's mobility rises after it), a year of outcomes per team and quarter, and a
continuous exit wave whose leavers answered over the year. It all goes in as HR and employees put it in (waves,
uploads, the form's storage) and comes out through the clock, the close job and the pilot service: the demo
computes no figure of its own.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from service.db import transaction
from service.forms import storage
from service.instruments.loader import Instruments
from service.instruments.schema import Instrument
from service.invitations import contact
from service.models import Invitation, Pilot, Unit, Wave
from service.models.base import utcnow
from service.outcomes import service as outcomes
from service.pilots import effects
from service.pilots import service as pilots
from service.pilots.schemas import PilotCreate
from service.results.published import drivers
from service.results.service import table_of
from service.units.service import load_tree
from service.waves import periods
from service.waves import service as waves
from service.waves.participants import add_participants
from service.waves.schemas import WaveCreate

Answers = Callable[..., dict[str, Any]]  # demo.synthetic_answers(instrument, rng, safety=..., barriers=...)

PILOT_UNIT = "div-1-dep-1"
PILOT_NAME = "Open vacancies and monthly career conversations"
PILOT_CONSTRUCT = "mobility"
PILOT_LIFT = 1.2  # how much the pilot lowers the barriers its department's people feel (latent scale)
PULSE_DIVISIONS = ("div-1", "div-2")  # whom the four pulse waves ask: the pilot's division and one more
PULSE_DAYS = (-240, -130, 30, 120)  # each pulse wave's first day, counted from the pilot's start
PULSE_WINDOW = timedelta(days=14)
EXIT_PER_QUARTER = (7, 3, 8, 6, 2)  # leavers answering per quarter: the four before this one, then this one
RESPONSE_RATE = 0.8


@dataclass(frozen=True)
class History:
    pulse_waves: list[int]
    pilot_id: int
    exit_wave: int


def pilot_start(now: datetime) -> date:
    """The first of the month about half a year ago: two pulse waves fit before it, two after it."""
    return (now - timedelta(days=170)).date().replace(day=1)


def quarters_before(now: datetime, count: int) -> list[datetime]:
    """The first instants of the ``count`` quarters before the one ``now`` is in, oldest first."""
    starts = [periods.quarter_start(now)]
    for _ in range(count):
        starts.append(periods.quarter_start(starts[-1] - timedelta(days=1)))
    return starts[:0:-1]


def build(
    session: Session,
    instruments: Instruments,
    secret: bytes,
    rng: np.random.Generator,
    sizes: dict[str, int],
    answers: Answers,
    now: datetime,
) -> History:
    """Put the year in; the caller's close job run then builds every table (pulse waves, exit periods)."""
    start = pilot_start(now)
    pilot_teams = _teams_under(session, PILOT_UNIT, sizes)
    pulse_teams = sorted(team for division in PULSE_DIVISIONS for team in _teams_under(session, division, sizes))
    pulse = instruments[("career-pulse", 1)].instrument
    pulse_ids = []
    for n, offset in enumerate(PULSE_DAYS, start=1):
        opens = datetime(start.year, start.month, start.day, 9, tzinfo=UTC) + timedelta(days=offset)
        wave = _past_wave(session, instruments, f"Pulse {n} around the pilot", pulse, opens)
        rows = [{"unit_key": t, "email": f"{t}-{i:02d}@example.com"} for t in pulse_teams for i in range(sizes[t])]
        add_participants(session, wave, rows, secret=secret, max_rows=len(rows))
        waves.open_wave(session, wave, opens)
        lifted = pilot_teams if offset > 0 else set()
        _respond(
            session,
            wave,
            pulse,
            secret,
            rng,
            answers,
            barriers=_lifted(lifted),
            day=_in_window(opens),
            rate=RESPONSE_RATE,
        )
        waves.close_wave(session, wave, opens + PULSE_WINDOW)
        pulse_ids.append(wave.id)
    pilot = pilots.create(session, PilotCreate(name=PILOT_NAME, units=[PILOT_UNIT], starts_on=start))
    _outcomes(session, rng, sizes, pilot_teams, start, now)
    exit_wave = _exit_wave(session, instruments, secret, rng, sorted(sizes), answers, now)
    return History(pulse_ids, pilot.id, exit_wave)


def _lifted(teams: set[str]) -> Callable[[str], float]:
    """The barriers a team's people feel: fewer (mobility up) where the pilot runs."""
    return lambda team: -PILOT_LIFT if team in teams else 0.0


def _in_window(opens: datetime) -> Callable[[int], datetime]:
    """The day the k-th answer of a pulse wave opening at ``opens`` is saved: spread over its two weeks."""
    return lambda k: opens + timedelta(days=k % 13)


def _teams_under(session: Session, key: str, sizes: dict[str, int]) -> set[str]:
    unit_id = session.scalar(select(Unit.id).where(Unit.key == key))
    if unit_id is None:  # pragma: no cover - the demo's own tree
        raise RuntimeError(f"the demo has no unit {key}")
    return set(load_tree(session, unit_id).keys) & sizes.keys()


def _past_wave(session: Session, instruments: Instruments, name: str, instrument: Instrument, opens: datetime) -> Wave:
    """A draft wave whose window lies in the past: created as HR would (a window to come), then moved back, as
    only the demo may."""
    soon = utcnow() + timedelta(days=1)
    data = WaveCreate(
        name=name, instrument=instrument.slug, version=instrument.version, opens_at=soon, closes_at=soon + PULSE_WINDOW
    )
    wave = waves.create(session, data, instruments, 5)
    wave.opens_at, wave.closes_at = opens, opens + PULSE_WINDOW
    return wave


def _respond(
    session: Session,
    wave: Wave,
    instrument: Instrument,
    secret: bytes,
    rng: np.random.Generator,
    answers: Answers,
    *,
    barriers: Callable[[str], float],
    day: Callable[[int], datetime],
    rate: float,
) -> None:
    """Answers for the wave's invitees (a share ``rate`` of them), the k-th saved on ``day(k)``, through the form's
    own storage. The demo answers for people it made up, so it opens their sealed contacts for their links."""
    session.flush()
    teams = dict(session.execute(select(Unit.id, Unit.key)).all())
    invitations = session.scalars(select(Invitation).where(Invitation.wave_id == wave.id).order_by(Invitation.id))
    for k, invitation in enumerate(invitations.all()):
        if rng.random() > rate or invitation.sealed_contact is None:
            continue
        token = contact.unseal(secret, invitation.sealed_contact).token
        link = storage.open_link(session.connection(), token, secret)
        if link is None:  # pragma: no cover - the demo's own invitations
            raise RuntimeError(f"invitation {invitation.id} has no link")
        given = answers(instrument, rng, safety=0.0, barriers=barriers(teams[invitation.unit_id]))
        storage.store(session.connection(), link, token=token, secret=secret, answers=given, complete=True, now=day(k))


def _outcomes(
    session: Session, rng: np.random.Generator, sizes: dict[str, int], pilot_teams: set[str], start: date, now: datetime
) -> None:
    """Each team's counts for the four quarters before this one; the pilot's teams move inside more once it runs."""
    rows = []
    for first in quarters_before(now, 4):
        name = f"{first.year}-Q{(first.month - 1) // 3 + 1}"
        for team, size in sizes.items():
            headcount = size + int(rng.integers(0, 3))
            moving = 0.09 if team in pilot_teams and first.date() >= start else 0.02
            leavers, moves_out = int(rng.binomial(headcount, 0.035)), int(rng.binomial(headcount, moving))
            moves_in, promotions = int(rng.binomial(headcount, 0.02)), int(rng.binomial(headcount, 0.04))
            rows.append(
                {
                    "unit_key": team,
                    "period": name,
                    "headcount_start": headcount,
                    "headcount_end": headcount - moves_out + moves_in,  # leavers replaced by new hires
                    "leavers": leavers,
                    "moves_in": moves_in,
                    "moves_out": moves_out,
                    "promotions": promotions,
                    "months_waited": round(promotions * float(rng.uniform(12, 30)), 1),
                }
            )
    outcomes.upload(session, rows, 5)


def _exit_wave(
    session: Session,
    instruments: Instruments,
    secret: bytes,
    rng: np.random.Generator,
    teams: list[str],
    answers: Answers,
    now: datetime,
) -> int:
    """A continuous exit wave running since a year ago: its leavers, invited as they left, answered over the year;
    the clock then publishes the quarters that are due (the close job builds them). Their invitations count as
    mailed: the demo answered for them."""
    starts = [*quarters_before(now, len(EXIT_PER_QUARTER) - 1), periods.quarter_start(now)]
    data = WaveCreate(
        name="Exit survey",
        instrument="exit",
        version=1,
        kind="continuous",
        opens_at=starts[0],
        closes_at=starts[0] + timedelta(days=3 * 365),
    )
    wave = waves.create(session, data, instruments, 5)
    waves.open_wave(session, wave, starts[0])
    days = [
        min(first + timedelta(days=int(rng.integers(3, 85))), now)
        for first, count in zip(starts, EXIT_PER_QUARTER, strict=True)
        for _ in range(count)
    ]
    rows = [{"unit_key": str(rng.choice(teams)), "email": f"leaver-{n:03d}@example.com"} for n in range(len(days))]
    add_participants(session, wave, rows, secret=secret, max_rows=len(rows))
    instrument = instruments[("exit", 1)].instrument
    _respond(session, wave, instrument, secret, rng, answers, barriers=lambda _: 0.0, day=days.__getitem__, rate=1.0)
    session.execute(update(Invitation).where(Invitation.wave_id == wave.id).values(state="sent"))
    waves.advance(session, wave, now)
    return wave.id


def report(factory: sessionmaker[Session], instruments: Instruments, history: History, survey: int) -> Iterator[str]:
    """What the year shows: the pilot's estimated effect, the focus areas of the survey, the exit periods."""
    with transaction(factory) as session:
        pilot = session.get(Pilot, history.pilot_id)
        if pilot is None:  # pragma: no cover - built just before
            raise RuntimeError(f"no pilot {history.pilot_id}")
        effect = effects.construct_effect(session, pilot, PILOT_CONSTRUCT, instruments)
        mobility = effects.outcome_effect(session, pilot, "internal_mobility")
        survey_wave, exit_wave = session.get(Wave, survey), session.get(Wave, history.exit_wave)
        table = None if survey_wave is None else table_of(session, survey_wave)
        published = [] if exit_wave is None else periods.published(session, exit_wave)
        invited = waves.invited_count(session, history.exit_wave)
    shown = f"{PILOT_NAME!r} in {PILOT_UNIT} from {pilot.starts_on} (waves {', '.join(map(str, history.pulse_waves))})"
    yield f"Pilot {shown}:"
    e = effect.estimate
    if e is not None and e.ci_low is not None and e.ci_high is not None:
        yield f"  effect on {PILOT_CONSTRUCT}: {e.estimate:+.2f} (95 % interval {e.ci_low:+.2f} to {e.ci_high:+.2f})"
    else:
        yield f"  on {PILOT_CONSTRUCT}: {effect.message_en}"
    yield f"  on the internal mobility rate: {mobility.message_en}"
    areas = [] if table is None else drivers(table, table.units[0].key).units[0].focus_areas
    yield f"Focus areas of wave {survey} (the organisation), ranked per outcome:" + ("" if areas else " none")
    for a in areas:
        yield (
            f"  against {a.outcome}, {a.rank}. {a.construct_id}: index {a.index:.0f} against {a.baseline:.0f}, "
            f"r = {a.r:.2f} (95 % interval {a.ci_low:.2f} to {a.ci_high:.2f})"
        )
    periods_shown = ", ".join(f"{p.name.rsplit(', ', 1)[-1]} (wave {p.id})" for p in published) or "none yet"
    yield f"Exit wave {history.exit_wave} (continuous): {invited} leavers invited as they left"
    yield f"  published per quarter, pooled while too few answered: {periods_shown}"
