"""The audit log: record who did what (HR actions, reads of results and comments, keys), read it back (admin)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from service.models import ApiKey, AuditEntry


def record(session: Session, actor: ApiKey | str, action: str, wave_id: int | None = None, **detail: Any) -> None:
    """Note an action in the request's own transaction: it is logged if and only if it happened.

    ``actor`` is the API key that acted (its name and id are kept) or, for the command line and the clock, a
    name such as ``"peil keys create"``. ``detail`` says which objects, never what people answered.
    """
    if isinstance(actor, ApiKey):
        session.add(AuditEntry(key_name=actor.name, by_key_id=actor.id, action=action, wave_id=wave_id, detail=detail))
    else:
        session.add(AuditEntry(key_name=actor, action=action, wave_id=wave_id, detail=detail))
