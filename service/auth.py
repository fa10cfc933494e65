"""Who may call: API keys as ``Authorization: Bearer <key>``, roles as typed dependencies."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Annotated

from fastapi import Depends, Request

from service.db import SessionDep
from service.errors import Forbidden, Unauthorized
from service.keys import repository
from service.models import ApiKey
from service.models.api_key import ROLES
from service.models.base import utcnow

LAST_USED_RESOLUTION = timedelta(minutes=1)  # record use at most once a minute: no write on every read


def _bearer(request: Request) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, key = header.partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        raise Unauthorized("an API key is required: Authorization: Bearer <key>")
    return key.strip()


def require(*roles: str) -> Callable[[Request, SessionDep], ApiKey]:
    def dependency(request: Request, session: SessionDep) -> ApiKey:
        key = repository.find_active(session, _bearer(request))
        if key is None:
            raise Unauthorized("unknown or revoked API key")
        if key.role not in roles:
            raise Forbidden(f"this needs the {' or '.join(roles)} role; the key has the {key.role} role")
        now = utcnow()
        if key.last_used_at is None or now - key.last_used_at > LAST_USED_RESOLUTION:
            key.last_used_at = now
        request.state.api_key_name = key.name
        return key

    dependency.__name__ = f"require_{'_'.join(roles)}"
    return dependency


HR = Annotated[ApiKey, Depends(require("hr"))]
Reader = Annotated[ApiKey, Depends(require("hr", "dashboard"))]
Admin = Annotated[ApiKey, Depends(require("admin"))]
AnyKey = Annotated[ApiKey, Depends(require(*ROLES))]
