"""Where a link's answers live: the invitation and wave behind a token, and the one response it saves into.

Storage keeps the anonymity promise (DESIGN.md rule 5): the response row is found again only through
``links.token_mac(secret, token)``; it carries no invitation id, a random id, and the date of the last change (the
close job drops it). Saving never touches the invitation row.

Each request costs as few round trips as the rules allow: opening a link reads the invitation, its wave and the
link's stored answers in one query; a save is one statement that inserts the link's response or merges the page
into it, only while the wave is open.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, Connection, Date, Integer, String, and_, bindparam, select, text
from sqlalchemy.dialects.postgresql import ARRAY

from service import links
from service.db import writing
from service.models import Invitation, Response, Wave
from service.models.base import UTCDateTime, utcnow
from service.models.response import random_id


class WaveNotOpen(Exception):
    """The wave does not take answers (not open yet, or closing or closed); nothing was stored."""

    def __init__(self, state: str) -> None:
        super().__init__(f"the wave is {state}")
        self.state = state


@dataclass(frozen=True)
class Link:
    """What a link token opens: its invitation's unit and sealed attributes, its wave's state and window, and the
    answers the link saved so far (only while the wave is open: after that a link shows none)."""

    wave_id: int
    unit_id: int
    sealed_attributes: bytes
    state: str
    opens_at: datetime
    closes_at: datetime
    instrument: str
    version: int
    answers: dict[str, Any]
    complete: bool

    def clock_due(self, now: datetime) -> bool:
        """True when the clock opens the wave or starts closing it (``waves.advance`` would change it)."""
        return (self.state == "draft" and self.opens_at <= now < self.closes_at) or (
            self.state in ("draft", "open") and self.closes_at <= now
        )

    def with_wave(self, wave: Wave) -> Link:
        taking = wave.state == "open"
        return replace(
            self,
            state=wave.state,
            opens_at=wave.opens_at,
            closes_at=wave.closes_at,
            answers=self.answers if taking else {},
            complete=self.complete and taking,
        )


# The link's stored answers join only while its wave takes answers: a closed wave's link reads none of them.
_LINK = (
    select(
        Invitation.wave_id,
        Invitation.unit_id,
        Invitation.sealed_attributes,
        Wave.state,
        Wave.opens_at,
        Wave.closes_at,
        Wave.instrument,
        Wave.version,
        Response.answers,
        Response.complete,
    )
    .join(Wave, Wave.id == Invitation.wave_id)
    .outerjoin(
        Response,
        and_(Response.token_mac == bindparam("mac"), Response.wave_id == Wave.id, Wave.state == "open"),
    )
    .where(Invitation.token_hash == bindparam("token_hash"))
)


def open_link(db: Connection, token: str, secret: bytes) -> Link | None:
    """The invitation behind a link token, its wave and its stored answers, in one query, or None (implausible
    tokens are not looked up)."""
    if not links.plausible(token):
        return None
    row = db.execute(_LINK, {"token_hash": links.token_hash(token), "mac": links.token_mac(secret, token)}).first()
    if row is None:
        return None
    return Link(
        wave_id=row.wave_id,
        unit_id=row.unit_id,
        sealed_attributes=row.sealed_attributes,
        state=row.state,
        opens_at=row.opens_at,
        closes_at=row.closes_at,
        instrument=row.instrument,
        version=row.version,
        answers=dict(row.answers or {}),
        complete=bool(row.complete),
    )


# Saving ------------------------------------------------------------------------------------------------------
#
# A save must never land after its wave stopped taking answers: the close job builds the table from what is
# stored when the wave froze, so an answer stored after that would be thanked for and yet be missing from the
# results. On PostgreSQL the statement takes a share lock on the wave row: freezing the wave (an UPDATE of that
# row) waits for saves holding it, and a save that meets a freeze waits for it and then sees the new state. On
# SQLite every write transaction holds the database's one write lock (BEGIN IMMEDIATE), so the check and the
# write cannot interleave with a freeze.
#
# The first save of a link inserts its row; a later one merges the page into it (an item answered ``None`` is
# removed); a response once complete stays complete. Concurrent saves of one link meet on the unique
# ``token_mac``: one inserts, the others merge. A response that a continuous wave's published period took
# (``service.waves.periods``) is no longer the link's wave's: it is final, and a save stores nothing.

_ROW_PARAMS = (
    bindparam("wave_id", type_=Integer()),
    bindparam("now", type_=UTCDateTime()),
    bindparam("id", type_=String()),
    bindparam("unit_id", type_=Integer()),
    bindparam("attributes", type_=JSON()),
    bindparam("token_mac", type_=String()),
    bindparam("answers", type_=JSON()),
    bindparam("complete", type_=Boolean()),
    bindparam("answered_on", type_=Date()),
)
_SAVE_PG = text(
    """
    WITH open_wave AS (
        SELECT id FROM waves WHERE id = :wave_id AND state = 'open' AND closes_at > :now FOR SHARE
    ), saved AS (
        INSERT INTO responses AS r (id, wave_id, unit_id, attributes, token_mac, answers, complete, answered_on)
        SELECT :id, id, :unit_id, :attributes, :token_mac, :answers, :complete, :answered_on FROM open_wave
        ON CONFLICT (token_mac) DO UPDATE SET
            answers = ((r.answers::jsonb - CAST(:removed AS text[])) || excluded.answers::jsonb)::json,
            complete = r.complete OR excluded.complete,
            answered_on = excluded.answered_on
        WHERE r.wave_id = excluded.wave_id
        RETURNING 1
    )
    SELECT (SELECT count(*) FROM open_wave) + (SELECT count(*) FROM saved)
    """
).bindparams(*_ROW_PARAMS, bindparam("removed", type_=ARRAY(String())))
# SQLite's json_patch is a merge patch (RFC 7396): a key whose value is null is removed, any other replaced.
_SAVE_SQLITE = text(
    """
    INSERT INTO responses (id, wave_id, unit_id, attributes, token_mac, answers, complete, answered_on)
    SELECT :id, :wave_id, :unit_id, :attributes, :token_mac, :answers, :complete, :answered_on
    WHERE EXISTS (SELECT 1 FROM waves WHERE id = :wave_id AND state = 'open' AND closes_at > :now)
    ON CONFLICT (token_mac) DO UPDATE SET
        answers = json_patch(responses.answers, :patch),
        complete = responses.complete OR excluded.complete,
        answered_on = excluded.answered_on
    WHERE responses.wave_id = excluded.wave_id
    """
).bindparams(*_ROW_PARAMS, bindparam("patch", type_=JSON()))


def store(
    db: Connection,
    link: Link,
    *,
    token: str,
    secret: bytes,
    answers: Mapping[str, object],
    complete: bool,
    now: datetime | None = None,
) -> None:
    """Merge ``answers`` into the link's one response (creating it on first save) in the caller's transaction;
    raises ``WaveNotOpen`` when the wave takes no answers, and then stores nothing.

    ``answers`` maps item ids to checked values (``service.forms.answers.parse_answers``); ``None`` removes an
    item's stored answer. ``complete=True`` marks the response complete.
    """
    _write(db, link, _params(link, token=token, secret=secret, answers=answers, complete=complete, now=now))


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
    """``store`` on a connection outside a transaction (``service.db.reading``), committed before it returns.

    On PostgreSQL the one statement is a transaction of its own (one round trip). On SQLite it is a short write
    transaction in the writers' queue; the values (the attributes unsealed) are worked out before the write lock
    is taken.
    """
    params = _params(link, token=token, secret=secret, answers=answers, complete=complete, now=now)
    if db.dialect.name == "postgresql":
        _write(db, link, params)
        return
    with writing(db):
        _write(db, link, params)


def _params(
    link: Link, *, token: str, secret: bytes, answers: Mapping[str, object], complete: bool, now: datetime | None
) -> dict[str, Any]:
    now = now or utcnow()
    return {
        "wave_id": link.wave_id,
        "now": now,
        "id": random_id(),
        "unit_id": link.unit_id,
        "attributes": links.unseal(token, link.sealed_attributes),
        "token_mac": links.token_mac(secret, token),
        "answers": {item_id: value for item_id, value in answers.items() if value is not None},
        "removed": [item_id for item_id, value in answers.items() if value is None],
        "patch": dict(answers),
        "complete": complete,
        "answered_on": now.date(),
    }


def _write(db: Connection, link: Link, params: dict[str, Any]) -> None:
    if db.dialect.name == "postgresql":
        saved = db.execute(_SAVE_PG, params).scalar_one() == 2
    else:
        saved = db.execute(_SAVE_SQLITE, params).rowcount == 1
    if not saved:
        raise WaveNotOpen("closed" if link.state == "open" else link.state)
