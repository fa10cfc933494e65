"""Queries on API keys."""

from __future__ import annotations

import hashlib
import secrets

from sqlalchemy import select
from sqlalchemy.orm import Session

from service.models import ApiKey
from service.models.api_key import ROLES
from service.models.base import utcnow

KEY_PREFIX = "peil_"


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def create(session: Session, *, role: str, name: str) -> tuple[ApiKey, str]:
    """Create a key; returns the row and the key itself, which is shown once and never stored."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}")
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    row = ApiKey(name=name, role=role, key_hash=hash_key(key))
    session.add(row)
    session.flush()
    return row, key


def find_active(session: Session, key: str) -> ApiKey | None:
    row = session.scalar(select(ApiKey).where(ApiKey.key_hash == hash_key(key)))
    if row is None or row.revoked_at is not None:
        return None
    return row


def list_all(session: Session) -> list[ApiKey]:
    return list(session.scalars(select(ApiKey).order_by(ApiKey.id)))


def revoke(session: Session, key_id: int) -> ApiKey | None:
    row = session.get(ApiKey, key_id)
    if row is not None and row.revoked_at is None:
        row.revoked_at = utcnow()
    return row
