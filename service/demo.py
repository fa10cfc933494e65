"""`peil demo`: an organisation with a closed wave of synthetic answers, an open pulse wave, and a year behind
them (``service.demo_history``: a pilot with pulse waves around it, outcomes, an exit wave).

About 150 teams in departments and divisions, about 2,000 participants with ``tenure_band`` and
``location``. A few teams are clearly low on psychological safety and a few report strong mobility
barriers, so that a newcomer sees real results and flags at once. The pulse wave has three participants,
whose invitations the demo mails into the outbox folder (never anywhere else), so a newcomer can open them.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta
from email.parser import BytesParser
from email.policy import default
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from scoring.spec import SCALE_BOUNDS
from service import demo_history, links
from service.config import Settings
from service.db import make_engine, make_sessionmaker, transaction
from service.forms import storage
from service.instruments.loader import load_definitions
from service.instruments.schema import Instrument, Item
from service.invitations import contact
from service.invitations.delivery import deliver
from service.invitations.sender import FileSender, folder_of
from service.keys import repository as keys
from service.models import Invitation, Unit, Wave, WaveResult
from service.models.base import utcnow
from service.results.service import publication_lines
from service.units.schemas import UnitIn
from service.units.service import upsert
from service.waves import close
from service.waves import service as waves
from service.waves.participants import add_participants
from service.waves.schemas import WaveCreate

ROOT = "demo"
TENURE = ("<1", "1-3", "3-5", "5+")
LOCATIONS = ("Amsterdam", "Utrecht", "Eindhoven", "Remote")
DIVISIONS = ("Operations", "Technology", "Commercial", "Support")
RESPONSE_RATE = 0.78
LAGGING = {"career_conversation": -0.45}  # career talks happen too rarely here: the focus area the demo shows
PULSE_PARTICIPANTS = (  # the three people of the open pulse wave whose mails a newcomer can open
    {"unit_key": "team-001", "email": "anna@example.com", "attributes": {"tenure_band": "1-3", "location": "Utrecht"}},
    {"unit_key": "team-002", "email": "bram@example.com", "attributes": {"tenure_band": "<1", "location": "Remote"}},
    {
        "unit_key": "team-003",
        "email": "chris@example.com",
        "language": "en",
        "attributes": {"tenure_band": "5+", "location": "Amsterdam"},
    },
)


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
            "email": f"{team}-{n:02d}@example.com",
            "attributes": {
                "tenure_band": str(rng.choice(TENURE, p=[0.15, 0.35, 0.25, 0.25])),
                "location": str(rng.choice(LOCATIONS, p=[0.4, 0.25, 0.2, 0.15])),
            },
        }
        for team, size in sizes.items()
        for n in range(size)
    ]


def synthetic_answers(
    instrument: Instrument, rng: np.random.Generator, *, safety: float, barriers: float
) -> dict[str, Any]:
    """One respondent's answers: a latent level per construct, lowered by ``safety`` and ``barriers`` shifts."""
    general = rng.normal(0, 0.55)  # how someone feels about work overall: constructs go together, as drivers do
    level = {c.id: 0.9 + LAGGING.get(c.id, 0.0) + general + rng.normal(0, 0.45) for c in instrument.constructs}
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
        lo, hi = SCALE_BOUNDS[item.type]
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


def outbox(settings: Settings) -> Path:
    """Where the demo's mails go: the configured folder when mail goes to one, else ``data_dir/outbox`` (the demo's
    made-up addresses never reach a mail server)."""
    target = settings.mail_url.get_secret_value() if settings.mail_url is not None else ""
    return folder_of(target) if target.startswith("file:") else (settings.data_dir / "outbox").resolve()


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
            yield "Demo organisation already loaded; here are fresh keys and the pulse wave's mails."
            yield from _hand_out(factory, settings, secret)
            return
        if exists:
            yield "Demo organisation already loaded; run with --once for fresh keys, or use a fresh database."
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
            add_participants(
                session, wave, _participants(rng, sizes), secret=secret, max_rows=settings.max_participants
            )
            waves.open_wave(session, wave, now)
            _respond(session, wave, full, secret, rng, low_safety, high_barriers)
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
            add_participants(session, pulse_wave, list(PULSE_PARTICIPANTS), secret=secret, max_rows=3)
            waves.open_wave(session, pulse_wave, now)
            pulse_wave_id = pulse_wave.id
            history = demo_history.build(session, loaded, secret, rng, sizes, synthetic_answers, now)
        close.run_due(factory, loaded)  # the close job, as the worker in `peil serve` runs it
        with transaction(factory) as session:
            built = session.get(WaveResult, closed_id) is not None
            published = publication_lines(session, closed_id)
        sent = deliver(factory, settings, secret, loaded, sender=FileSender(outbox(settings)), waves={pulse_wave_id})
        yield (
            f"Demo organisation: {len(units)} units, {len(teams)} teams, {sum(sizes.values())} participants; "
            f"wave {closed_id} (career-safety) closed "
            + ("with results." if built else "but its results could not be built (see the log).")
        )
        yield from published
        yield f"Teams low on psychological safety: {', '.join(sorted(low_safety))}"
        yield f"Teams with strong mobility barriers: {', '.join(sorted(high_barriers))}"
        yield f"Wave {pulse_wave_id} (career-pulse) is open; Peil mailed its {sent.sent} participants their invitation."
        yield from demo_history.report(factory, loaded, history, closed_id)
        yield from _hand_out(factory, settings, secret)
    finally:
        engine.dispose()


def _respond(
    session: Session,
    wave: Wave,
    instrument: Instrument,
    secret: bytes,
    rng: np.random.Generator,
    low_safety: set[str],
    high_barriers: set[str],
) -> None:
    """Synthetic answers for most of the wave's participants. The demo answers for people it made up, so it opens
    their sealed contacts for their links, as only Peil's mail job otherwise does."""
    session.flush()  # the wave's attribute values, before the close reloads the wave
    teams = dict(session.execute(select(Unit.id, Unit.key)).all())
    invitations = session.scalars(select(Invitation).where(Invitation.wave_id == wave.id).order_by(Invitation.id))
    for invitation in invitations.all():
        if rng.random() > RESPONSE_RATE or invitation.sealed_contact is None:
            continue
        team = teams[invitation.unit_id]
        answers = synthetic_answers(
            instrument, rng, safety=-1.6 if team in low_safety else 0.0, barriers=1.0 if team in high_barriers else 0.0
        )
        token = contact.unseal(secret, invitation.sealed_contact).token
        link = storage.open_link(session.connection(), token, secret)
        if link is None:  # pragma: no cover - the demo's own invitations
            raise RuntimeError(f"invitation {invitation.id} has no link")
        storage.store(session.connection(), link, token=token, secret=secret, answers=answers, complete=True)


def _hand_out(factory: Any, settings: Settings, secret: bytes) -> Iterator[str]:
    """Fresh keys, and where the open pulse wave's mails are (with their links, since here the newcomer at the
    terminal plays both HR and the three participants)."""
    with transaction(factory) as session:
        _row, dashboard = keys.create(session, role="dashboard", name="demo dashboard")
        _row, hr = keys.create(session, role="hr", name="demo hr")
        pulse = session.scalar(
            select(Wave).where(Wave.state == "open", Wave.instrument == "career-pulse").order_by(Wave.id.desc())
        )
        hashes = set()
        if pulse is not None:
            query = select(Invitation.token_hash).where(Invitation.wave_id == pulse.id)
            hashes = {h for h in session.scalars(query) if h is not None}
    yield f"Dashboard key (shown once): {dashboard}"
    yield f"HR key (shown once): {hr}"
    folder = outbox(settings)
    mails = [(path, link) for path, link in _mails(folder) if links.token_hash(_token(link)) in hashes]
    if not mails:
        yield f"The pulse wave's mails are no longer in {folder}."
    for path, link in mails[-3:]:
        yield f"Mail: {path}"
        yield f"  its link: {link}"


def _mails(folder: Path) -> list[tuple[Path, str]]:
    """The invitations in an outbox folder with the link each holds, oldest first."""
    found = []
    for path in sorted(folder.glob("*-invitation-*.eml")):
        message = BytesParser(policy=default).parsebytes(path.read_bytes())
        body = message.get_body(preferencelist=("plain",))
        match = _LINK.search(body.get_content() if body is not None else "")
        if match:
            found.append((path, match.group(0)))
    return found


def _token(link: str) -> str:
    return link.rsplit("/s/", 1)[1].split("?", 1)[0]


_LINK = re.compile(r"https?://\S+/s/[A-Za-z0-9_-]{43}\S*")
