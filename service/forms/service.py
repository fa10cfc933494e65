"""The web form's logic: read answers from form fields, check them against the instrument, store them.

Storage keeps the anonymity promise (DESIGN.md rules 5 and 6): the response row is found again only through
``links.token_mac(secret, token)``; it carries no invitation id, a random id, and the date of the last change.
Saving never touches the invitation row.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from service import links
from service.instruments.schema import Instrument, Item
from service.models import Invitation, Response, Wave
from service.models.base import utcnow
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


def find_invitation(session: Session, token: str) -> Invitation | None:
    """The invitation behind a link token, or None (implausible tokens are not looked up)."""
    if not links.plausible(token):
        return None
    return session.scalar(select(Invitation).where(Invitation.token_hash == links.token_hash(token)))


def find_invitation_and_wave(session: Session, token: str) -> tuple[Invitation, Wave] | None:
    """The invitation behind a link token and its wave, in one query, or None."""
    if not links.plausible(token):
        return None
    row = session.execute(
        select(Invitation, Wave)
        .join(Wave, Wave.id == Invitation.wave_id)
        .where(Invitation.token_hash == links.token_hash(token))
    ).first()
    return None if row is None else (row[0], row[1])


def find_response(session: Session, *, token: str, secret: bytes) -> Response | None:
    return session.scalar(select(Response).where(Response.token_mac == links.token_mac(secret, token)))


def load_answers(session: Session, *, token: str, secret: bytes) -> dict[str, Any]:
    """The answers stored for a link (empty when it has none yet)."""
    response = find_response(session, token=token, secret=secret)
    return dict(response.answers) if response is not None else {}


def takes_answers(wave: Wave, now: datetime) -> bool:
    return _takes_answers(wave.state, wave.closes_at, now)


def _takes_answers(state: str, closes_at: datetime, now: datetime) -> bool:
    return state == "open" and now < closes_at


# Storing ---------------------------------------------------------------------------------------------------


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
    later. The wave row is locked for share and its state checked again inside this transaction, so a wave
    that closes concurrently either waits for this save or refuses it (``WaveNotOpen``): nothing is stored
    after the close. Concurrent saves of one token meet on the unique ``token_mac`` and store one row.
    The caller commits (the request's session dependency does).
    """
    now = now or utcnow()
    # Core statements, not ORM entities: this is the hot path of a survey's busiest hour, and on SQLite the
    # write lock is held for exactly these statements.
    db = session.connection()  # the session's transaction, without the ORM's statement processing
    locked = db.execute(
        select(Wave.id, Wave.state, Wave.closes_at)
        .where(Wave.id == wave.id)
        .with_for_update(read=True)  # FOR SHARE on PostgreSQL; SQLite's BEGIN IMMEDIATE already serialises
    ).first()
    if locked is None or not _takes_answers(locked.state, locked.closes_at, now):
        raise WaveNotOpen("closed" if locked is None or locked.state == "closed" else locked.state)
    if invitation.wave_id != locked.id:
        raise ValueError("the invitation belongs to another wave")

    mac = links.token_mac(secret, token)
    given = {item_id: value for item_id, value in answers.items() if value is not None}
    row = {
        "id": random_id(),
        "wave_id": locked.id,
        "unit_id": invitation.unit_id,
        "attributes": links.unseal(token, invitation.sealed_attributes),
        "token_mac": mac,
        "answers": given,
        "complete": complete,
        "answered_on": now.date(),
    }
    insert = postgresql.insert if db.dialect.name == "postgresql" else sqlite.insert
    responses = cast(Table, Response.__table__)
    first = db.execute(insert(responses).values(**row).on_conflict_do_nothing(index_elements=["token_mac"]))
    if first.rowcount == 1:  # the link's first save: one statement
        return Response(**row)
    # The link saved before (or a concurrent first save won): merge into its row, under a row lock.
    stored = db.execute(
        select(Response.id, Response.answers, Response.complete).where(Response.token_mac == mac).with_for_update()
    ).first()
    if stored is None:  # pragma: no cover - the row was inserted or already there
        raise RuntimeError("the response row vanished")
    merged = dict(stored.answers)
    for item_id, value in answers.items():
        if value is None:
            merged.pop(item_id, None)
        else:
            merged[item_id] = value
    values = {"answers": merged, "complete": stored.complete or complete, "answered_on": now.date()}
    db.execute(update(responses).where(responses.c.id == stored.id).values(**values))
    return Response(**{**row, **values, "id": stored.id})
