"""The HR pages under /hr: sign in and out, the waves, a wave's heatmap (and its CSV), a unit, the flags.

Server-rendered, no scripts; every figure comes from the stored result table through the API's own answers, and
every read of results or comments is audited as the API's are (``via: pages``).
A page that cannot be shown answers with a page, never JSON: signing in is a redirect to the form, a wave or
unit outside what the key may read is the same 404 page as one that does not exist.

Statuses: 200 a page; 303 after signing in or out, or to the sign-in form; 401 a key that cannot sign in;
403 a form without its token; 404 nothing to see here; 409 a wave without results yet; 429 too many wrong keys
from one address, with Retry-After; 503 the database is unavailable.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Form, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.routing import APIRoute
from fastapi.templating import Jinja2Templates

from service import audit, errors
from service.clients import client_address
from service.db import SessionDep
from service.deps import InstrumentsDep, SettingsDep
from service.forms import i18n as form_i18n
from service.forms.i18n import Lang
from service.forms.throttle import LinkMisses, Verdict
from service.hr import session as signin
from service.hr import views
from service.hr.download import heatmap_csv
from service.hr.i18n import WORDS
from service.hr.session import BadFormToken, SignedIn, SignInRequired, Viewer
from service.results.service import stored_table

log = logging.getLogger("peil")
templates = Jinja2Templates(directory=Path(__file__).parent / "templates")
templates.env.auto_reload = False
NO_INDEX = {"X-Robots-Tag": "noindex, nofollow"}
HOME = "/hr/waves"


class PageRoute(APIRoute):
    """A page route: whatever goes wrong is answered with a page in the reader's language, not with JSON."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def page(request: Request) -> Response:
            try:
                return await handler(request)
            except SignInRequired:
                target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
                return RedirectResponse(_root(request) + "/hr/login?" + urlencode({"next": target}), status_code=303)
            except BadFormToken:
                return message(request, 403)
            except RequestValidationError:
                return message(request, 404)  # a path or query no page has (a wave id that is not a number)
            except errors.PeilError as exc:
                return message(request, exc.status)
            except errors.DATABASE_ERRORS as exc:
                if not errors.database_unavailable(exc):
                    raise
                return message(request, 503, {"Retry-After": str(errors.RETRY_AFTER_SECONDS)})

        return page


router = APIRouter(prefix="/hr", route_class=PageRoute, include_in_schema=False)


def _root(request: Request) -> str:
    return str(request.scope.get("root_path", ""))


def _lang(request: Request, viewer: SignedIn | None = None) -> Lang:
    if viewer is not None:
        return viewer.lang
    chosen: Lang | None = getattr(request.state, "hr_lang", None)
    return chosen or form_i18n.pick(request.query_params.get("lang"), request.headers.get("accept-language"))


def render(
    request: Request,
    name: str,
    context: dict[str, Any],
    *,
    viewer: SignedIn | None = None,
    lang: Lang | None = None,
    status: int = 200,
    headers: dict[str, str] | None = None,
) -> HTMLResponse:
    language = lang or _lang(request, viewer)
    words = WORDS[language]
    who = None
    if viewer is not None:
        role = words[f"role_{viewer.role}"].format(unit=viewer.scope.unit)
        who = words["signed_in_as"].format(name=viewer.key_name, role=role)
    here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    context = {
        "lang": language,
        "other_lang": form_i18n.other(language),
        "w": words,
        "root": _root(request),
        "viewer": viewer,
        "who": who,
        "here": here,
        **context,
    }
    return templates.TemplateResponse(
        request, name, context, status_code=status, headers={**NO_INDEX, **(headers or {})}
    )


def message(request: Request, status: int, headers: dict[str, str] | None = None) -> HTMLResponse:
    words = WORDS[_lang(request)]
    kind = str(status) if f"error_title_{status}" in words else "other"
    context = {"title": words[f"error_title_{kind}"], "text": words[f"error_text_{kind}"]}
    return render(request, "message.html", context, status=status, headers=headers)


def _safe_next(target: str | None) -> str:
    """Where to go after signing in: a path of these pages, never another site."""
    if target and target.startswith("/hr/") and not target.startswith("//") and "\\" not in target:
        return target
    return HOME


# Signing in and out -------------------------------------------------------------------------------------


async def _gate(request: Request) -> Verdict:
    """Slow down, then refuse, an address that keeps trying wrong keys (before any database work)."""
    misses: LinkMisses = request.app.state.login_misses
    verdict = misses.check(client_address(request))
    if verdict.delay and not verdict.retry_after:
        await asyncio.sleep(verdict.delay)
    return verdict


Gate = Annotated[Verdict, Depends(_gate)]


def _login_page(
    request: Request, settings: SettingsDep, lang: Lang, *, problem: str | None = None, status: int = 200
) -> HTMLResponse:
    token, cookie = signin.login_token(request)
    context = {
        "csrf": token,
        "next": _safe_next(request.query_params.get("next")),
        "problem": problem,
        "bye": request.query_params.get("bye") == "1",
    }
    response = render(request, "login.html", context, lang=lang, status=status)
    if cookie is not None:
        signin.set_login_cookie(response, settings, cookie)
    return response


@router.get("", summary="The HR pages")
@router.get("/", summary="The HR pages")
def home(request: Request) -> RedirectResponse:
    return RedirectResponse(_root(request) + HOME, status_code=303)


@router.get("/login", summary="Sign in with an API key", response_class=HTMLResponse)
def login_form(request: Request, session: SessionDep, settings: SettingsDep) -> Response:
    """The sign-in form (a signed-in browser goes straight on)."""
    if signin.current(request, session) is not None:
        return RedirectResponse(_root(request) + _safe_next(request.query_params.get("next")), status_code=303)
    return _login_page(request, settings, _lang(request))


@router.post("/login", summary="Sign in", response_class=HTMLResponse)
def sign_in(
    request: Request,
    verdict: Gate,
    session: SessionDep,
    settings: SettingsDep,
    key: Annotated[str, Form(max_length=200)] = "",
    csrf: Annotated[str, Form(alias="_csrf", max_length=100)] = "",
    next_page: Annotated[str, Form(alias="next", max_length=2000)] = "",
    lang: Annotated[str, Form(max_length=5)] = "",
) -> Response:
    """Check the key; open a session and set its cookie. The key is read from the form body only."""
    language = form_i18n.pick(lang, request.headers.get("accept-language"))
    words = WORDS[language]
    if verdict.retry_after:
        text = words["too_many_text"].format(seconds=verdict.retry_after)
        context = {"title": words["too_many_title"], "text": text}
        return render(request, "message.html", context, lang=language, status=429,
                      headers={"Retry-After": str(verdict.retry_after)})  # fmt: skip
    if not signin.login_token_holds(request, csrf):
        return _login_page(request, settings, language, problem=words["login_expired"], status=403)
    found = signin.key_for_sign_in(session, key)
    if found is None:
        request.app.state.login_misses.miss(client_address(request))
        return _login_page(request, settings, language, problem=words["login_failed"], status=401)
    token = signin.start(session, found, language)
    audit.record(session, found, "hr.signed_in")
    response = RedirectResponse(_root(request) + _safe_next(next_page), status_code=303)
    signin.set_session_cookie(response, settings, request.app.state.secret, token)
    return response


@router.post("/logout", summary="Sign out", response_class=HTMLResponse)
def sign_out(
    request: Request,
    viewer: Viewer,
    session: SessionDep,
    settings: SettingsDep,
    csrf: Annotated[str, Form(alias="_csrf", max_length=100)] = "",
) -> Response:
    """End the session on the server and forget the cookie."""
    signin.check_form(viewer, csrf)
    signin.end(session, viewer)
    response = RedirectResponse(_root(request) + "/hr/login?bye=1", status_code=303)
    signin.clear_cookie(response, settings)
    return response


@router.post("/lang", summary="Switch language", response_class=HTMLResponse)
def switch_language(
    request: Request,
    viewer: Viewer,
    session: SessionDep,
    csrf: Annotated[str, Form(alias="_csrf", max_length=100)] = "",
    lang: Annotated[str, Form(max_length=5)] = "",
    next_page: Annotated[str, Form(alias="next", max_length=2000)] = "",
) -> Response:
    """Read the pages in the other language from now on."""
    signin.check_form(viewer, csrf)
    signin.set_lang(session, viewer, "en" if lang == "en" else "nl")
    return RedirectResponse(_root(request) + _safe_next(next_page), status_code=303)


# Pages --------------------------------------------------------------------------------------------------


@router.get("/waves", summary="The waves", response_class=HTMLResponse)
def waves_page(request: Request, viewer: Viewer, session: SessionDep, instruments: InstrumentsDep) -> Response:
    """Every wave with its instrument, window, state, participation and, once closed, its results."""
    rows = views.waves_page(session, viewer, instruments)
    return render(request, "waves.html", {"rows": rows}, viewer=viewer)


OpenUnits = Annotated[list[str] | None, Query(alias="open", max_length=2000)]
FoldedUnits = Annotated[list[str] | None, Query(alias="fold", max_length=2000)]
By = Annotated[str | None, Query(max_length=40)]


@router.get("/waves/{wave_id}", summary="A wave's heatmap", response_class=HTMLResponse)
def heatmap_page(
    wave_id: int,
    request: Request,
    viewer: Viewer,
    session: SessionDep,
    instruments: InstrumentsDep,
    by: By = None,
    opened: OpenUnits = None,
    folded: FoldedUnits = None,
) -> Response:
    """Units (as a tree) by constructs: mean, n, change; hidden cells say why. Cut by one attribute."""
    wave, table = stored_table(session, wave_id)
    instrument = instruments[(wave.instrument, wave.version)].instrument
    page = views.heatmap_page(session, viewer, wave, table, instrument, by, (opened, folded))
    audit.record(session, viewer.key, "results.read", wave_id, view="heatmap", by=page.by, via="pages")
    return render(request, "heatmap.html", {"v": page}, viewer=viewer)


@router.get("/waves/{wave_id}/heatmap.csv", summary="The heatmap as CSV")
def heatmap_download(wave_id: int, viewer: Viewer, session: SessionDep, by: By = None) -> Response:
    """The same table as the page, every unit the viewer may read (and with ``by`` their cuts), as CSV."""
    _wave, table = stored_table(session, wave_id)
    answer = heatmap_csv(table, viewer.scope, by)
    audit.record(session, viewer.key, "results.read", wave_id, view="heatmap", by=by, via="pages")
    return answer


@router.get("/waves/{wave_id}/units/{unit_key}", summary="A unit's results", response_class=HTMLResponse)
def unit_page(
    wave_id: int, unit_key: str, request: Request, viewer: Viewer, session: SessionDep, instruments: InstrumentsDep
) -> Response:
    """Per construct: mean and interval, favourable share, answers, change, trend; choices, flags, comments."""
    wave, table = stored_table(session, wave_id)
    instrument = instruments[(wave.instrument, wave.version)].instrument
    page = views.unit_page(session, viewer, wave, table, unit_key, instrument, instruments)
    audit.record(session, viewer.key, "results.read", wave_id, view="results", unit=unit_key, via="pages")
    if page.comments is not None:
        audit.record(session, viewer.key, "comments.read", wave_id, unit=unit_key, via="pages")
    return render(request, "unit.html", {"v": page}, viewer=viewer)


@router.get("/waves/{wave_id}/flags", summary="Teams needing attention", response_class=HTMLResponse)
def flags_page(
    wave_id: int, request: Request, viewer: Viewer, session: SessionDep, instruments: InstrumentsDep
) -> Response:
    """The flags the viewer may read, most severe first, each with its rule, figures and message."""
    wave, table = stored_table(session, wave_id)
    instrument = instruments[(wave.instrument, wave.version)].instrument
    flags = views.flags_page(session, viewer, table, instrument)
    audit.record(session, viewer.key, "results.read", wave_id, view="flags", via="pages")
    info = views.wave_info(wave, instrument, viewer)
    return render(request, "flags.html", {"flags": flags, "wave": info}, viewer=viewer)
