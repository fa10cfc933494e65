"""API keys over the API, for the admin role: list, create, revoke."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, StringConstraints

from service import audit
from service.auth import Admin
from service.db import SessionDep
from service.errors import NotFound, Unprocessable
from service.keys import repository
from service.models import ApiKey

router = APIRouter(tags=["keys"])


class KeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: Literal["hr", "dashboard", "admin", "manager"]
    name: Annotated[str, StringConstraints(min_length=1, max_length=100, strip_whitespace=True)]
    unit: Annotated[str, StringConstraints(min_length=1, max_length=100)] | None = None  # manager keys only


class Key(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    role: str
    unit: str | None = None  # a manager key's unit
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


class KeyCreated(Key):
    key: str


class KeyList(BaseModel):
    keys: list[Key]


def _out(row: ApiKey, units: dict[int, str]) -> Key:
    out = Key.model_validate(row)
    out.unit = None if row.unit_id is None else units.get(row.unit_id)
    return out


@router.get("/keys", summary="List API keys", responses={401: {}, 403: {}})
def list_keys(_key: Admin, session: SessionDep) -> KeyList:
    """Every key's name, role, unit (manager keys) and use; never the key itself."""
    units = repository.unit_keys(session)
    return KeyList(keys=[_out(k, units) for k in repository.list_all(session)])


@router.post("/keys", status_code=201, summary="Create an API key", responses={401: {}, 403: {}, 422: {}})
def create_key(body: KeyCreate, admin: Admin, session: SessionDep) -> KeyCreated:
    """The new key is in this answer once; only its hash is stored. A manager key names its unit."""
    try:
        row, key = repository.create(session, role=body.role, name=body.name, unit=body.unit)
    except ValueError as exc:
        raise Unprocessable(str(exc), details=[{"field": "unit", "reason": str(exc)}]) from exc
    scoped: dict[str, Any] = {"unit": body.unit} if body.unit else {}  # a manager key's unit
    audit.record(session, admin, "key.created", key_id=row.id, role=row.role, name=row.name, **scoped)
    return KeyCreated(**{**Key.model_validate(row).model_dump(), "unit": body.unit}, key=key)


@router.delete("/keys/{key_id}", summary="Revoke an API key", responses={401: {}, 403: {}, 404: {}})
def revoke_key(key_id: int, admin: Admin, session: SessionDep) -> Key:
    """The key stops working at once."""
    row = repository.revoke(session, key_id)
    if row is None:
        raise NotFound(f"no key {key_id}")
    audit.record(session, admin, "key.revoked", key_id=row.id)
    return _out(row, repository.unit_keys(session))
