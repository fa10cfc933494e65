"""The web form's logic: read answers from form fields, check them against the instrument, store them.

Storage keeps the anonymity promise (DESIGN.md rules 5 and 6): the response row is found again only through
``links.token_mac(secret, token)``; it carries no invitation id, a random id, and the date of the last change.
Saving never touches the invitation row.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, Connection, Date, Integer, String, bindparam, select, text, update
from sqlalchemy.orm import Session

from service import links
from service.db import writing
from service.instruments.schema import Instrument, Item
from service.models import Invitation, Response, Wave
from service.models.base import UTCDateTime, utcnow
from service.models.response import random_id

SCALE_BOUNDS: dict[str, tuple[int, int]] = {"likert5": (1, 5), "likert7": (1, 7), "nps": (0, 10)}
_NUMBER = re.compile(r"^[0-9]{1,2}$")
# Text answers may hold line breaks and tabs, no other control characters (PostgreSQL JSON refuses NUL, and
# nobody types the rest).
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


@dataclass(frozen=True)
class Problem:
    """Why one item's answer cannot be taken: ``code`` names the message, ``params`` fill it in."""

    item_id: str
    code: str  # required, scale, option, options, too_long, control
    params: dict[str, Any] = field(default_factory=dict)


class WaveNotOpen(Exception):
    """The wave does not take answers (not open yet, or closed); nothing was stored."""

    def __init__(self, state: str) -> None:
        super().__init__(f"the wave is {state}")
        self.state = state


# Reading and checking ------------------------------------------------------------------------------------


def parse_answers(items: Iterable[Item], fields: Mapping[str, Sequence[str]]) -> tuple[dict[str, Any], list[Problem]]:
    """Each item's answer from the submitted fields, and the problems with malformed ones.

    ``fields`` maps a field name to all its submitted values (a multi item's choices repeat its name); names
    that are not item ids are ignored. The answer is ``None`` for an unanswered item (absent or empty), an
    int for a scaled item, an option id for ``single``, a list of option ids in the instrument's order for
    ``multi`` and the stripped text for ``text``.
    """
    answers: dict[str, Any] = {}
    problems: list[Problem] = []
    for item in items:
        values = list(fields.get(item.id, ()))
        answer, problem = _parse_item(item, values)
        if problem is not None:
            problems.append(problem)
        else:
            answers[item.id] = answer
    return answers, problems


def _parse_item(item: Item, values: list[str]) -> tuple[Any, Problem | None]:
    if item.type == "multi":
        options = [o.id for o in item.options]
        chosen = {v for v in values if v != ""}
        if len(values) > len(options) or not chosen <= set(options):
            return None, Problem(item.id, "options")
        return ([o for o in options if o in chosen] or None), None
    if len(values) > 1:
        return None, Problem(item.id, "option" if item.type == "single" else "scale", _bounds(item))
    value = values[0] if values else ""
    if item.type == "text":
        text = value.replace("\r\n", "\n").replace("\r", "\n").strip()
        if _CONTROL.search(text):
            return None, Problem(item.id, "control")
        if len(text) > item.max_length:
            return None, Problem(item.id, "too_long", {"length": len(text), "n": item.max_length})
        return (text or None), None
    if value == "":
        return None, None
    if item.type == "single":
        if value not in {o.id for o in item.options}:
            return None, Problem(item.id, "option")
        return value, None
    low, high = SCALE_BOUNDS[item.type]
    if not _NUMBER.fullmatch(value) or not low <= int(value) <= high:
        return None, Problem(item.id, "scale", {"low": low, "high": high})
    return int(value), None


def _bounds(item: Item) -> dict[str, Any]:
    low, high = SCALE_BOUNDS.get(item.type, (0, 0))
    return {"low": low, "high": high}


def missing_required(items: Iterable[Item], answers: Mapping[str, Any]) -> list[Problem]:
    """A problem for every required item without an answer in ``answers``."""
    return [Problem(item.id, "required") for item in items if item.required and answers.get(item.id) is None]


def first_page_with(instrument: Instrument, item_ids: Iterable[str]) -> int:
    """The 1-based page (section) holding the first of ``item_ids``, in the instrument's order."""
    wanted = set(item_ids)
    for page, section in enumerate(instrument.sections, start=1):
        if any(item.id in wanted for item in section.items):
            return page
    return 1


# Finding ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Link:
    """What a link token opens: its invitation's unit and sealed attributes, and its wave's state and window."""

    wave_id: int
    unit_id: int
    sealed_attributes: bytes
    state: str
    opens_at: datetime
    closes_at: datetime
    instrument: str
    version: int

    def clock_due(self, now: datetime) -> bool:
        """True when the clock opens the wave or starts closing it (``waves.advance`` would change it)."""
        return (self.state == "draft" and self.opens_at <= now < self.closes_at) or (
            self.state in ("draft", "open") and self.closes_at <= now
        )

    def with_wave(self, wave: Wave) -> Link:
        return replace(self, state=wave.state, opens_at=wave.opens_at, closes_at=wave.closes_at)


_LINK = select(
    Invitation.wave_id,
    Invitation.unit_id,
    Invitation.sealed_attributes,
    Wave.state,
    Wave.opens_at,
    Wave.closes_at,
    Wave.instrument,
    Wave.version,
).join(Wave, Wave.id == Invitation.wave_id)
_LINK_BY_HASH = _LINK.where(Invitation.token_hash == bindparam("token_hash"))
_RESPONSE_BY_MAC = select(Response.answers, Response.complete).where(Response.token_mac == bindparam("mac"))


def open_link(db: Connection, token: str) -> Link | None:
    """The invitation behind a link token and its wave, in one query, or None (implausible tokens are not
    looked up)."""
    if not links.plausible(token):
        return None
    row = db.execute(_LINK_BY_HASH, {"token_hash": links.token_hash(token)}).first()
    return None if row is None else Link(*row)


def find_invitation(session: Session, token: str) -> Invitation | None:
    """The invitation behind a link token, or None (implausible tokens are not looked up)."""
    if not links.plausible(token):
        return None
    return session.scalar(select(Invitation).where(Invitation.token_hash == links.token_hash(token)))


def stored_response(db: Connection | Session, *, token: str, secret: bytes) -> tuple[dict[str, Any], bool]:
    """The answers stored for a link (empty when it has none yet) and whether they are complete."""
    row = db.execute(_RESPONSE_BY_MAC, {"mac": links.token_mac(secret, token)}).first()
    return (dict(row.answers), bool(row.complete)) if row is not None else ({}, False)


def load_answers(db: Connection | Session, *, token: str, secret: bytes) -> dict[str, Any]:
    """The answers stored for a link (empty when it has none yet)."""
    return stored_response(db, token=token, secret=secret)[0]


# Storing ---------------------------------------------------------------------------------------------------
#
# A save must never land after its wave has closed: the close builds the wave's results in its own
# transaction, so an answer stored after it would be thanked for and yet be missing from the results. On
# PostgreSQL the save takes a share lock on the wave row in the statement that inserts: a close (an UPDATE
# of that row) waits for saves holding it, and a save that meets a close waits for it and then sees the
# closed state. On SQLite every write transaction holds the database's one write lock (BEGIN IMMEDIATE), so
# the check and the insert cannot interleave with a close.

_ROW_PARAMS = (
    bindparam("id", type_=String()),
    bindparam("unit_id", type_=Integer()),
    bindparam("attributes", type_=JSON()),
    bindparam("token_mac", type_=String()),
    bindparam("answers", type_=JSON()),
    bindparam("complete", type_=Boolean()),
    bindparam("answered_on", type_=Date()),
)
_NOW = bindparam("now", type_=UTCDateTime())
_WAVE_ID = bindparam("wave_id", type_=Integer())

# PostgreSQL: the check, the lock and the insert in one statement (outside a transaction, it is one).
_INSERT_IF_OPEN_PG = text(
    """
    WITH open_wave AS (
        SELECT id FROM waves WHERE id = :wave_id AND state = 'open' AND closes_at > :now FOR SHARE
    ), added AS (
        INSERT INTO responses (id, wave_id, unit_id, attributes, token_mac, answers, complete, answered_on)
        SELECT :id, id, :unit_id, :attributes, :token_mac, :answers, :complete, :answered_on FROM open_wave
        ON CONFLICT (token_mac) DO NOTHING
        RETURNING 1
    )
    SELECT (SELECT count(*) FROM open_wave) AS open, (SELECT count(*) FROM added) AS added
    """
).bindparams(_WAVE_ID, _NOW, *_ROW_PARAMS)
# SQLite: the same check and insert, inside the write transaction; when nothing was inserted, a second
# look tells a closed wave from a link that saved before.
_INSERT_IF_OPEN_SQLITE = text(
    """
    INSERT INTO responses (id, wave_id, unit_id, attributes, token_mac, answers, complete, answered_on)
    SELECT :id, :wave_id, :unit_id, :attributes, :token_mac, :answers, :complete, :answered_on
    WHERE EXISTS (SELECT 1 FROM waves WHERE id = :wave_id AND state = 'open' AND closes_at > :now)
    ON CONFLICT (token_mac) DO NOTHING
    """
).bindparams(_WAVE_ID, _NOW, *_ROW_PARAMS)
_WAVE_OPEN_SQLITE = text(
    "SELECT count(*) FROM waves WHERE id = :wave_id AND state = 'open' AND closes_at > :now"
).bindparams(_WAVE_ID, _NOW)
_STORED_FOR_UPDATE = (
    select(Response.id, Response.answers, Response.complete)
    .where(Response.token_mac == bindparam("mac"))
    .with_for_update()
)


class _Added(enum.Enum):
    INSERTED = "inserted"  # the link's first save
    EXISTS = "exists"  # the link saved before: merge
    CLOSED = "closed"  # the wave takes no answers: nothing stored


def _insert_if_open(db: Connection, row: dict[str, Any], now: datetime) -> _Added:
    params = {**row, "now": now}
    if db.dialect.name == "postgresql":
        is_open, added = db.execute(_INSERT_IF_OPEN_PG, params).one()
    elif db.execute(_INSERT_IF_OPEN_SQLITE, params).rowcount:
        return _Added.INSERTED
    else:
        added, is_open = 0, db.execute(_WAVE_OPEN_SQLITE, params).scalar_one()
    if not is_open:
        return _Added.CLOSED
    return _Added.INSERTED if added else _Added.EXISTS


def _new_row(
    link: Link | Invitation, *, token: str, secret: bytes, answers: Mapping[str, object], complete: bool, now: datetime
) -> dict[str, Any]:
    return {
        "id": random_id(),
        "wave_id": link.wave_id,
        "unit_id": link.unit_id,
        "attributes": links.unseal(token, link.sealed_attributes),
        "token_mac": links.token_mac(secret, token),
        "answers": {item_id: value for item_id, value in answers.items() if value is not None},
        "complete": complete,
        "answered_on": now.date(),
    }


def _store(db: Connection, row: dict[str, Any], answers: Mapping[str, object], now: datetime) -> dict[str, Any]:
    """Insert ``row`` or merge ``answers`` into the link's stored row, in the caller's write transaction."""
    added = _insert_if_open(db, row, now)
    if added is _Added.CLOSED:
        state = db.scalar(select(Wave.state).where(Wave.id == row["wave_id"]))
        raise WaveNotOpen("closed" if state in (None, "closed") else state)
    if added is _Added.INSERTED:
        return row
    # The link saved before (or a concurrent first save won): merge into its row, under a row lock.
    stored = db.execute(_STORED_FOR_UPDATE, {"mac": row["token_mac"]}).first()
    if stored is None:  # pragma: no cover - the row was inserted or already there
        raise RuntimeError("the response row vanished")
    merged = dict(stored.answers)
    for item_id, value in answers.items():
        if value is None:
            merged.pop(item_id, None)
        else:
            merged[item_id] = value
    values = {"answers": merged, "complete": stored.complete or row["complete"], "answered_on": row["answered_on"]}
    db.execute(update(Response).where(Response.id == stored.id).values(**values))
    return {**row, **values, "id": stored.id}


def save(
    db: Connection,
    link: Link,
    *,
    token: str,
    secret: bytes,
    answers: Mapping[str, object],
    complete: bool,
    now: datetime | None = None,
) -> None:
    """Merge ``answers`` into the link's one response, creating it on first save, and commit.

    ``db`` is a connection outside a transaction (``service.db.reading``). The rules are those of
    ``save_answers``. On PostgreSQL a link's first save is a single statement, which is a transaction of its
    own (one round trip); a later save of the same link merges in a transaction. On SQLite the save is a
    short write transaction: the values are worked out before the write lock is taken.
    """
    now = now or utcnow()
    row = _new_row(link, token=token, secret=secret, answers=answers, complete=complete, now=now)
    if db.dialect.name == "postgresql":
        added = _insert_if_open(db, row, now)
        if added is _Added.INSERTED:
            return
        if added is _Added.CLOSED:
            raise WaveNotOpen("closed" if link.state == "open" else link.state)
    with writing(db):
        _store(db, row, answers, now)


def save_answers(
    session: Session,
    *,
    wave: Wave,
    invitation: Invitation,
    token: str,
    secret: bytes,
    answers: Mapping[str, object],
    complete: bool,
    now: datetime | None = None,
) -> Response:
    """Merge ``answers`` into the link's one response, creating it on first save; returns the response.

    ``answers`` maps item ids to checked values (see ``parse_answers``); ``None`` removes an item's stored
    answer. ``complete=True`` marks the response complete; a complete response stays complete when edited
    later. The wave's state is checked again inside this transaction, under a share lock on the wave row on
    PostgreSQL, so a wave that closes concurrently either waits for this save or refuses it (``WaveNotOpen``):
    nothing is stored after the close. Concurrent saves of one token meet on the unique ``token_mac`` and store
    one row. The caller commits (the request's session dependency does).
    """
    now = now or utcnow()
    if invitation.wave_id != wave.id:
        raise ValueError("the invitation belongs to another wave")
    row = _new_row(invitation, token=token, secret=secret, answers=answers, complete=complete, now=now)
    # Core statements on the session's connection: the ORM's statement processing is not needed here.
    return Response(**_store(session.connection(), row, answers, now))
