"""`peil demo`: an organisation with a closed wave of synthetic answers and an open pulse wave.

About 150 teams in departments and divisions, about 2,000 participants with ``tenure_band`` and
``location``. A few teams are clearly low on psychological safety and a few report strong mobility
barriers, so that a newcomer sees real results and flags at once.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from service import links as tokens
from service.config import Settings
from service.db import make_engine, make_sessionmaker, transaction
from service.forms.service import save_answers
from service.instruments.loader import load_definitions
from service.instruments.schema import Instrument, Item
from service.keys import repository as keys
from service.models import Invitation, Unit, Wave, WaveResult
from service.models.base import utcnow
from service.units.schemas import UnitIn
from service.units.service import upsert
from service.waves import close
from service.waves import service as waves
from service.waves.schemas import WaveCreate

ROOT = "demo"
TENURE = ("<1", "1-3", "3-5", "5+")
LOCATIONS = ("Amsterdam", "Utrecht", "Eindhoven", "Remote")
DIVISIONS = ("Operations", "Technology", "Commercial", "Support")
RESPONSE_RATE = 0.78


def build_tree(rng: np.random.Generator) -> tuple[list[UnitIn], dict[str, int]]:
    """The org tree and each team's size."""
    units = [UnitIn(key=ROOT, name="Demo Organisation")]
    sizes: dict[str, int] = {}
    team_no = 0
    for d, division in enumerate(DIVISIONS, start=1):
        div_key = f"div-{d}"
        units.append(UnitIn(key=div_key, name=division, parent_key=ROOT))
        for p in range(1, 5 if d % 2 else 4):
            dep_key = f"{div_key}-dep-{p}"
            units.append(UnitIn(key=dep_key, name=f"{division} department {p}", parent_key=div_key))
            for _ in range(11):
                team_no += 1
                team_key = f"team-{team_no:03d}"
                units.append(UnitIn(key=team_key, name=f"Team {team_no}", parent_key=dep_key))
                sizes[team_key] = int(rng.integers(7, 20))
    return units, sizes


def _participants(rng: np.random.Generator, sizes: dict[str, int]) -> list[dict[str, Any]]:
    return [
        {
            "unit_key": team,
            "attributes": {
                "tenure_band": str(rng.choice(TENURE, p=[0.15, 0.35, 0.25, 0.25])),
                "location": str(rng.choice(LOCATIONS, p=[0.4, 0.25, 0.2, 0.15])),
            },
        }
        for team, size in sizes.items()
        for _ in range(size)
    ]


def synthetic_answers(
    instrument: Instrument, rng: np.random.Generator, *, safety: float, barriers: float
) -> dict[str, Any]:
    """One respondent's answers: a latent level per construct, lowered by ``safety`` and ``barriers`` shifts."""
    level = {c.id: rng.normal(0.9, 0.7) for c in instrument.constructs}
    level["psych_safety"] = level.get("psych_safety", 0.0) + safety
    level["mobility"] = level.get("mobility", 0.0) - barriers
    reverse = {rid for c in instrument.constructs for rid in c.reverse}
    answers: dict[str, Any] = {}
    for item in instrument.items:
        if not item.required and rng.random() < 0.04:
            continue
        answers_item = _answer(item, rng, level.get(item.construct_id or "", 0.0), item.id in reverse, barriers)
        if answers_item is not None:
            answers[item.id] = answers_item
    return answers


def _answer(item: Item, rng: np.random.Generator, level: float, reverse: bool, barriers: float) -> Any:
    if item.type in ("likert5", "likert7", "nps"):
        lo, hi = {"likert5": (1, 5), "likert7": (1, 7), "nps": (0, 10)}[item.type]
        mid, spread = (lo + hi) / 2, (hi - lo) / 4
        value = mid + spread * (level + rng.normal(0, 0.7))
        if reverse:
            value = lo + hi - value
        return int(np.clip(round(value), lo, hi))
    if item.type == "single":
        return item.options[int(rng.integers(len(item.options)))].id
    if item.type == "multi":
        options = [o.id for o in item.options]
        real = [o for o in options if o != "none"]
        chosen = [o for i, o in enumerate(real) if rng.random() < (0.12 + barriers * 0.5 if i < 3 else 0.1)]
        return chosen or (["none"] if "none" in options else [real[0]])
    if item.type == "text":
        if rng.random() < 0.3:
            return str(
                rng.choice(
                    [
                        "More time to learn on the job.",
                        "Meer duidelijkheid over interne vacatures.",
                        "A mentor outside my team.",
                        "Een gesprek over mijn loopbaan dat ergens toe leidt.",
                    ]
                )
            )
        return None
    raise ValueError(f"unknown item type {item.type}")


def _links(session: Session, settings: Settings, wave: Wave, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return waves.add_participants(session, wave, rows, base_url=settings.base_url, max_rows=settings.max_participants)


def run(settings: Settings, *, once: bool = False, seed: int = 7) -> Iterator[str]:
    rng = np.random.default_rng(seed)
    loaded = load_definitions(settings.definitions_dir)
    full, pulse = loaded[("career-safety", 1)].instrument, loaded[("career-pulse", 1)].instrument
    engine = make_engine(settings.database_url)
    factory = make_sessionmaker(engine)
    secret = settings.secret()
    try:
        with transaction(factory) as session:
            exists = session.scalar(select(Unit.id).where(Unit.key == ROOT)) is not None
        if exists and once:
            yield "Demo organisation already loaded; here are a fresh key and links."
            yield from _hand_out(factory, settings, rng)
            return
        if exists:
            yield "Demo organisation already loaded; run with --once to get new links, or use a fresh database."
            return
        units, sizes = build_tree(rng)
        teams = list(sizes)
        low_safety = set(rng.choice(teams, size=6, replace=False).tolist())
        high_barriers = set(rng.choice([t for t in teams if t not in low_safety], size=5, replace=False).tolist())
        now = utcnow()
        with transaction(factory) as session:
            upsert(session, units)
            wave = waves.create(
                session,
                WaveCreate(
                    name="Career and safety, autumn 2026",
                    instrument="career-safety",
                    version=1,
                    opens_at=now - timedelta(days=21),
                    closes_at=now + timedelta(days=1),
                    attributes=["tenure_band", "location"],
                ),
                loaded,
                settings.min_group_size,
            )
            waves.open_wave(session, wave, now)
            links = _links(session, settings, wave, _participants(rng, sizes))
            session.flush()  # the wave's attribute values, before the close below reloads the wave
            invitations = {
                i.token_hash: i for i in session.scalars(select(Invitation).where(Invitation.wave_id == wave.id))
            }
            for link in links:
                if rng.random() > RESPONSE_RATE:
                    continue
                token = link["url"].rsplit("/s/", 1)[1]
                team = link["unit_key"]
                answers = synthetic_answers(
                    full,
                    rng,
                    safety=-1.6 if team in low_safety else 0.0,
                    barriers=1.0 if team in high_barriers else 0.0,
                )
                save_answers(
                    session,
                    wave=wave,
                    invitation=invitations[tokens.token_hash(token)],
                    token=token,
                    secret=secret,
                    answers=answers,
                    complete=True,
                )
            waves.close_wave(session, wave, utcnow())
            closed_id = wave.id
            pulse_wave = waves.create(
                session,
                WaveCreate(
                    name="Monthly pulse",
                    instrument=pulse.slug,
                    version=pulse.version,
                    opens_at=now,
                    closes_at=now + timedelta(days=30),
                    attributes=["tenure_band", "location"],
                ),
                loaded,
                settings.min_group_size,
            )
            waves.open_wave(session, pulse_wave, now)
        close.run_due(factory, loaded)  # the close job, as the worker in `peil serve` runs it
        with transaction(factory) as session:
            built = session.get(WaveResult, closed_id) is not None
        yield (
            f"Demo organisation: {len(units)} units, {len(teams)} teams, {sum(sizes.values())} participants; "
            f"wave {closed_id} (career-safety) closed "
            + ("with results." if built else "but its results could not be built (see the log).")
        )
        yield f"Teams low on psychological safety: {', '.join(sorted(low_safety))}"
        yield f"Teams with strong mobility barriers: {', '.join(sorted(high_barriers))}"
        yield from _hand_out(factory, settings, rng)
    finally:
        engine.dispose()


def _hand_out(factory: Any, settings: Settings, rng: np.random.Generator) -> Iterator[str]:
    with transaction(factory) as session:
        _row, dashboard = keys.create(session, role="dashboard", name="demo dashboard")
        _row, hr = keys.create(session, role="hr", name="demo hr")
        pulse = session.scalar(select(Wave).where(Wave.state == "open").order_by(Wave.id.desc()))
        rows = [
            {"unit_key": f"team-{n:03d}", "attributes": {"tenure_band": "1-3", "location": "Utrecht"}}
            for n in (1, 2, 3)
        ]
        links = _links(session, settings, pulse, rows) if pulse is not None else []
    yield f"Dashboard key (shown once): {dashboard}"
    yield f"HR key (shown once): {hr}"
    for link in links:
        yield f"Pulse link ({link['unit_key']}): {link['url']}"
