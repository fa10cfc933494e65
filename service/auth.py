"""Who may call: API keys as ``Authorization: Bearer <key>``, roles as typed dependencies.

A ``manager`` key reads the results of its own unit and everything below it (``Scope``); for anything else it
gets 404, as if the route or the unit did not exist, so it learns nothing of what lies outside its part.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated

from fastapi import Depends, Request

from service.db import SessionDep
from service.errors import Forbidden, NotFound, Unauthorized
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
            if key.role == "manager":
                raise NotFound("Not Found")  # the answer to a path that does not exist
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
ResultsReader = Annotated[ApiKey, Depends(require("hr", "dashboard", "manager"))]


@dataclass(frozen=True)
class Scope:
    """The part of the organisation a key may read: all of it (``unit`` None), or a manager's unit and below."""

    unit: str | None = None

    def within(self, units: Iterable[tuple[str, str | None]]) -> set[str] | None:
        """The keys in scope among ``units`` ((key, parent) pairs of one tree, in any order); None: every unit.
        Empty when the manager's unit is not among them."""
        if self.unit is None:
            return None
        children: dict[str | None, list[str]] = {}
        known = set()
        for key, parent in units:
            children.setdefault(parent, []).append(key)
            known.add(key)
        if self.unit not in known:
            return set()
        inside, stack = set(), [self.unit]
        while stack:
            key = stack.pop()
            inside.add(key)
            stack.extend(children.get(key, ()))
        return inside


def scope_of(session: SessionDep, key: ResultsReader) -> Scope:
    return Scope(unit=repository.unit_of(session, key))


ResultsScope = Annotated[Scope, Depends(scope_of)]
