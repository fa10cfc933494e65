"""API keys over the API, for the admin role: list, create, revoke."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, StringConstraints

from service import audit
from service.auth import Admin
from service.db import SessionDep
from service.errors import NotFound
from service.keys import repository

router = APIRouter(tags=["keys"])


class KeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: Literal["hr", "dashboard", "admin"]
    name: Annotated[str, StringConstraints(min_length=1, max_length=100, strip_whitespace=True)]


class Key(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    role: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


class KeyCreated(Key):
    key: str


class KeyList(BaseModel):
    keys: list[Key]


@router.get("/keys", summary="List API keys", responses={401: {}, 403: {}})
def list_keys(_key: Admin, session: SessionDep) -> KeyList:
    """Every key's name, role and use; never the key itself."""
    return KeyList(keys=[Key.model_validate(k) for k in repository.list_all(session)])


@router.post("/keys", status_code=201, summary="Create an API key", responses={401: {}, 403: {}, 422: {}})
def create_key(body: KeyCreate, admin: Admin, session: SessionDep) -> KeyCreated:
    """The new key is in this answer once; only its hash is stored."""
    row, key = repository.create(session, role=body.role, name=body.name)
    audit.record(session, admin, "key.created", key_id=row.id, role=row.role, name=row.name)
    return KeyCreated(**Key.model_validate(row).model_dump(), key=key)


@router.delete("/keys/{key_id}", summary="Revoke an API key", responses={401: {}, 403: {}, 404: {}})
def revoke_key(key_id: int, admin: Admin, session: SessionDep) -> Key:
    """The key stops working at once."""
    row = repository.revoke(session, key_id)
    if row is None:
        raise NotFound(f"no key {key_id}")
    audit.record(session, admin, "key.revoked", key_id=row.id)
    return Key.model_validate(row)
