"""Signing in to the HR pages with an API key: a server-side session behind a signed cookie, and form tokens.

The cookie holds a random token and its HMAC under the service's secret; the database keeps only the token's
SHA-256 (``hr_sessions``), so neither a copy of the database nor a forged cookie opens a session. The cookie
is HttpOnly, SameSite=Strict, Secure whenever ``PEIL_BASE_URL`` is https, and scoped to ``/hr``. A session
idle for eight hours ends; signing out deletes it at once; revoking the key ends every session it opened.
Every form carries a token (``csrf``) checked on its POST: the session's own, or before signing in, one kept
in a short-lived cookie of its own (double submit).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated

from fastapi import Depends, Request, Response
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from service.auth import Scope
from service.config import Settings
from service.db import SessionDep
from service.forms.i18n import Lang
from service.keys import repository
from service.models import ApiKey, HrSession
from service.models.base import utcnow

COOKIE = "peil_hr"
LOGIN_COOKIE = "peil_hr_login"  # the sign-in form's token, before there is a session
PATH = "/hr"
IDLE = timedelta(hours=8)
SEEN_RESOLUTION = timedelta(minutes=1)  # note activity at most once a minute: no write on every page
ROLES = ("hr", "dashboard", "manager")  # admin keys manage keys, they read no results


class SignInRequired(Exception):
    """No valid session: the page answers with a redirect to the sign-in form."""


class BadFormToken(Exception):
    """A POST whose form token does not match: refused (403)."""


@dataclass(frozen=True)
class SignedIn:
    """Who is looking at a page: the key (for the audit log), its name and role, what it may read, the session's
    form token and language."""

    session_id: str
    key_name: str
    role: str
    scope: Scope
    csrf: str
    lang: Lang
    key: ApiKey


def _mac(secret: bytes, purpose: str, token: str) -> str:
    digest = hmac.new(secret, f"{purpose}:{token}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def signed(secret: bytes, purpose: str, token: str) -> str:
    """``token.mac``: what a cookie holds."""
    return f"{token}.{_mac(secret, purpose, token)}"


def unsigned(secret: bytes, purpose: str, value: str | None) -> str | None:
    """The token of a cookie value whose signature holds, else None."""
    if not value or value.count(".") != 1:
        return None
    token, mac = value.split(".")
    return token if hmac.compare_digest(mac, _mac(secret, purpose, token)) else None


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _forget(response: Response, settings: Settings, name: str) -> None:
    response.delete_cookie(
        name, path=PATH, secure=settings.base_url.startswith("https://"), httponly=True, samesite="strict"
    )


def _set_cookie(response: Response, settings: Settings, name: str, value: str, max_age: int | None) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path=PATH,
        secure=settings.base_url.startswith("https://"),
        httponly=True,
        samesite="strict",
    )


# Sign-in form ------------------------------------------------------------------------------------------


def login_token(request: Request) -> tuple[str, str | None]:
    """The sign-in form's token: the one its cookie already holds, or a new one with the cookie value to set."""
    secret: bytes = request.app.state.secret
    token = unsigned(secret, LOGIN_COOKIE, request.cookies.get(LOGIN_COOKIE))
    if token is not None:
        return token, None
    token = secrets.token_urlsafe(24)
    return token, signed(secret, LOGIN_COOKIE, token)


def set_login_cookie(response: Response, settings: Settings, value: str) -> None:
    _set_cookie(response, settings, LOGIN_COOKIE, value, max_age=3600)


def login_token_holds(request: Request, posted: str | None) -> bool:
    """The posted sign-in form carries the token its cookie holds."""
    token = unsigned(request.app.state.secret, LOGIN_COOKIE, request.cookies.get(LOGIN_COOKIE))
    return token is not None and posted is not None and hmac.compare_digest(token, posted)


def key_for_sign_in(session: Session, key: str) -> ApiKey | None:
    """The active key of a role that reads results, or None."""
    found = repository.find_active(session, key.strip()) if key.strip() else None
    return found if found is not None and found.role in ROLES else None


def start(session: Session, key: ApiKey, lang: Lang) -> str:
    """Open a session for ``key``; returns the token for the cookie. Sessions idle too long are removed."""
    now = utcnow()
    session.execute(delete(HrSession).where(HrSession.last_seen_at < now - IDLE))
    session.execute(
        delete(HrSession).where(HrSession.key_id.in_(select(ApiKey.id).where(ApiKey.revoked_at.is_not(None))))
    )
    token = secrets.token_urlsafe(32)
    session.add(
        HrSession(
            id=_digest(token),
            key_id=key.id,
            csrf=secrets.token_urlsafe(24),
            lang=lang,
            created_at=now,
            last_seen_at=now,
        )
    )
    key.last_used_at = now
    session.flush()
    return token


def set_session_cookie(response: Response, settings: Settings, secret: bytes, token: str) -> None:
    """The session cookie (ends with the browser; the server ends the session after eight idle hours)."""
    _set_cookie(response, settings, COOKIE, signed(secret, COOKIE, token), max_age=None)
    _forget(response, settings, LOGIN_COOKIE)


def clear_cookie(response: Response, settings: Settings) -> None:
    _forget(response, settings, COOKIE)


# A signed-in request ------------------------------------------------------------------------------------


def current(request: Request, session: Session) -> SignedIn | None:
    """The request's live session, or None (no cookie, a forged one, idle too long, or its key revoked). Dead
    sessions are left for ``start`` to sweep: this request ends in a redirect that commits nothing."""
    token = unsigned(request.app.state.secret, COOKIE, request.cookies.get(COOKIE))
    if token is None:
        return None
    row = session.get(HrSession, _digest(token))
    if row is None:
        return None
    now = utcnow()
    key = session.get(ApiKey, row.key_id)
    if now - row.last_seen_at > IDLE or key is None or key.revoked_at is not None or key.role not in ROLES:
        return None
    if now - row.last_seen_at > SEEN_RESOLUTION:
        row.last_seen_at = now
    lang: Lang = "en" if row.lang == "en" else "nl"
    scope = Scope(unit=repository.unit_of(session, key))
    return SignedIn(row.id, key.name, key.role, scope, row.csrf, lang, key)


def end(session: Session, signed_in: SignedIn) -> None:
    """Sign out: the session is gone from the server, whatever the browser keeps."""
    session.execute(delete(HrSession).where(HrSession.id == signed_in.session_id))


def set_lang(session: Session, signed_in: SignedIn, lang: Lang) -> None:
    row = session.get(HrSession, signed_in.session_id)
    if row is not None:
        row.lang = lang


def check_form(signed_in: SignedIn, posted: str | None) -> None:
    """Every POST of a signed-in page carries the session's form token."""
    if posted is None or not hmac.compare_digest(posted, signed_in.csrf):
        raise BadFormToken


def _signed_in(request: Request, session: SessionDep) -> SignedIn:
    found = current(request, session)
    if found is None:
        raise SignInRequired
    request.state.hr_lang = found.lang  # for an error page of this request
    return found


Viewer = Annotated[SignedIn, Depends(_signed_in)]
