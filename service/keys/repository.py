"""Queries on API keys."""

from __future__ import annotations

import hashlib
import secrets

from sqlalchemy import select
from sqlalchemy.orm import Session

from service.models import ApiKey, Unit
from service.models.api_key import ROLES
from service.models.base import utcnow

KEY_PREFIX = "peil_"


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def create(session: Session, *, role: str, name: str, unit: str | None = None) -> tuple[ApiKey, str]:
    """Create a key; returns the row and the key itself, which is shown once and never stored.

    A ``manager`` key needs the key of its unit (it reads that unit and everything below it); no other role
    takes one. ValueError says what is wrong.
    """
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}")
    unit_id = None
    if role == "manager":
        if unit is None:
            raise ValueError("a manager key needs a unit: the key of the unit it may read")
        unit_id = session.scalar(select(Unit.id).where(Unit.key == unit))
        if unit_id is None:
            raise ValueError(f"no unit {unit!r}")
    elif unit is not None:
        raise ValueError("only a manager key has a unit")
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    row = ApiKey(name=name, role=role, key_hash=hash_key(key), unit_id=unit_id)
    session.add(row)
    session.flush()
    return row, key


def find_active(session: Session, key: str) -> ApiKey | None:
    row = session.scalar(select(ApiKey).where(ApiKey.key_hash == hash_key(key)))
    if row is None or row.revoked_at is not None:
        return None
    return row


def unit_of(session: Session, key: ApiKey) -> str | None:
    """The key of a manager key's unit; None for every other role."""
    if key.unit_id is None:
        return None
    return session.scalar(select(Unit.key).where(Unit.id == key.unit_id))


def unit_keys(session: Session) -> dict[int, str]:
    """Unit ids to unit keys, for listing keys with their units."""
    return {unit_id: key for unit_id, key in session.execute(select(Unit.id, Unit.key))}


def list_all(session: Session) -> list[ApiKey]:
    return list(session.scalars(select(ApiKey).order_by(ApiKey.id)))


def revoke(session: Session, key_id: int) -> ApiKey | None:
    row = session.get(ApiKey, key_id)
    if row is not None and row.revoked_at is None:
        row.revoked_at = utcnow()
    return row
