"""The audit log: record HR actions, read them back (admin)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from service.models import AuditEntry


def record(session: Session, key_name: str, action: str, wave_id: int | None = None, **detail: Any) -> None:
    """Note an HR action in the request's own transaction: it is logged if and only if it happened."""
    session.add(AuditEntry(key_name=key_name, action=action, wave_id=wave_id, detail=detail))
