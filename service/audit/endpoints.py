"""GET /audit: the audit log of HR actions, for the admin role."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict
from sqlalchemy import select

from service.auth import Admin
from service.db import SessionDep
from service.models import AuditEntry

router = APIRouter(tags=["audit"])


class Entry(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    at: datetime
    key_name: str
    by_key_id: int | None
    action: str
    wave_id: int | None
    detail: dict[str, Any]


class AuditLog(BaseModel):
    entries: list[Entry]


@router.get("/audit", summary="The audit log", responses={401: {}, 403: {}})
def audit_log(
    _key: Admin, session: SessionDep, wave_id: int | None = None, limit: int = Query(default=200, ge=1, le=5000)
) -> AuditLog:
    """Actions and reads, newest first: key name and id, action, wave, time."""
    query = select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit)
    if wave_id is not None:
        query = query.where(AuditEntry.wave_id == wave_id)
    return AuditLog(entries=[Entry.model_validate(e) for e in session.scalars(query)])
