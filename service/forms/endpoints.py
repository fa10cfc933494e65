"""GET and POST /s/{token}: the survey form behind a personal link, one section per page, in Dutch or English.

Statuses: 200 a page of the form or the thank-you page; 303 after a saved step, to the next page of the same
link (the Location is relative, ``?page=N&lang=L``, so the token appears in no other URL); 404 an unknown
link (one page for every unknown string); 200 on GET and 409 on POST for a wave that is not open yet;
410 a closed wave; 413 a form too large; 422 answers that cannot be taken (the page again, errors marked,
nothing stored); 429 too many unknown links from one address, with Retry-After.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.templating import Jinja2Templates
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.responses import Response as HTTPResponse

from service import errors
from service.clients import client_address
from service.db import reading
from service.forms import i18n, service
from service.forms.i18n import Lang
from service.forms.storage import Link
from service.forms.throttle import LinkMisses, Verdict
from service.forms.views import page_view, thanks_view
from service.instruments.schema import Instrument
from service.models.base import utcnow

router = APIRouter(tags=["form"], include_in_schema=False)
templates = Jinja2Templates(directory=Path(__file__).parent / "templates")
templates.env.auto_reload = False  # templates ship with the code: no stat() of every template on every page

# The largest honest form is a few text answers of at most 10,000 characters each; percent-encoding can
# triple a character's bytes. Anything beyond this is not a person filling in a survey.
FORM_MAX_BYTES = 512 * 1024
FORM_MAX_FIELDS = 1_000
_LENGTH = re.compile(r"[0-9]{1,12}")
NO_INDEX = {"X-Robots-Tag": "noindex, nofollow"}


# Dependencies -------------------------------------------------------------------------------------------


async def _gate(request: Request) -> Verdict:
    """Slow down or refuse an address that keeps trying unknown links (before any database work)."""
    misses: LinkMisses = request.app.state.link_misses
    verdict = misses.check(client_address(request))
    if verdict.delay and not verdict.retry_after:
        await asyncio.sleep(verdict.delay)
    return verdict


@dataclass
class Submitted:
    """The posted fields (every value of a repeated name, in order), or why they could not be read."""

    fields: dict[str, list[str]] = field(default_factory=dict)
    trouble: int = 0  # an HTTP status when the body could not be read: 413, 415 or 422

    def first(self, name: str) -> str | None:
        values = self.fields.get(name)
        return values[0] if values else None


async def _submitted(request: Request) -> Submitted:
    """Read a url-encoded or multipart form body of at most FORM_MAX_BYTES and FORM_MAX_FIELDS fields."""
    if request.method != "POST":
        return Submitted()
    length = request.headers.get("content-length")
    if length is not None and (not _LENGTH.fullmatch(length) or int(length) > FORM_MAX_BYTES):
        return Submitted(trouble=413)
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > FORM_MAX_BYTES:
            return Submitted(trouble=413)
    media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    pairs: list[tuple[str, str]]
    try:
        if media in ("application/x-www-form-urlencoded", ""):
            pairs = parse_qsl(
                bytes(body).decode("utf-8"),
                keep_blank_values=True,
                encoding="utf-8",
                errors="strict",
                max_num_fields=FORM_MAX_FIELDS,
            )
        elif media == "multipart/form-data":

            async def stream() -> AsyncGenerator[bytes, None]:
                yield bytes(body)

            parser = MultiPartParser(Headers(scope=request.scope), stream(), max_files=0, max_fields=FORM_MAX_FIELDS)
            form = await parser.parse()
            pairs = [(k, v) for k, v in form.multi_items() if isinstance(v, str)]
        else:
            return Submitted(trouble=415)
    except (UnicodeDecodeError, ValueError, MultiPartException):
        return Submitted(trouble=422)
    fields: dict[str, list[str]] = {}
    for name, value in pairs:
        fields.setdefault(name, []).append(value)
    return Submitted(fields=fields)


# Pages ---------------------------------------------------------------------------------------------------


def _render(
    request: Request,
    name: str,
    lang: Lang,
    context: dict[str, Any],
    status: int = 200,
    headers: dict[str, str] | None = None,
) -> HTMLResponse:
    context = {
        "lang": lang,
        "other_lang": i18n.other(lang),
        "other_language_name": i18n.LANGUAGE_NAMES[i18n.other(lang)],
        "w": i18n.WORDS[lang],
        "root": request.scope.get("root_path", ""),
        **context,
    }
    return templates.TemplateResponse(
        request, name, context, status_code=status, headers={**NO_INDEX, **(headers or {})}
    )


def _message(
    request: Request,
    lang: Lang,
    kind: str,
    status: int,
    *,
    text: str | None = None,
    headers: dict[str, str] | None = None,
) -> HTMLResponse:
    words = i18n.WORDS[lang]
    return _render(
        request,
        "message.html",
        lang,
        {"title": words[f"{kind}_title"], "text": text or words[f"{kind}_text"], "kind": kind},
        status,
        headers,
    )


def _not_found(request: Request, lang: Lang) -> HTMLResponse:
    """The one page for every unknown link: it says nothing about the string it was given."""
    request.app.state.link_misses.miss(client_address(request))
    return _message(request, lang, "not_found", 404)


def _too_many(request: Request, lang: Lang, retry_after: int) -> HTMLResponse:
    text = i18n.WORDS[lang]["too_many_text"].format(seconds=retry_after)
    return _message(request, lang, "too_many", 429, text=text, headers={"Retry-After": str(retry_after)})


def _unavailable(request: Request, lang: Lang | None) -> HTMLResponse:
    """The database is restarting or overloaded: 503 with Retry-After, as a page (the API answers in JSON).

    In the language the request asked for; when it asked for neither, in Dutch and in English.
    """
    headers = {"Retry-After": str(errors.RETRY_AFTER_SECONDS)}
    if lang is not None:
        return _message(request, lang, "unavailable", 503, headers=headers)
    words, also = i18n.WORDS[i18n.DEFAULT], i18n.WORDS[i18n.other(i18n.DEFAULT)]
    context = {
        "title": words["unavailable_title"],
        "text": words["unavailable_text"],
        "kind": "unavailable",
        "also": {
            "lang": i18n.other(i18n.DEFAULT),
            "title": also["unavailable_title"],
            "text": also["unavailable_text"],
        },
    }
    return _render(request, "message.html", i18n.DEFAULT, context, 503, headers)


def _not_taking_answers(request: Request, lang: Lang, link: Link, *, posted: bool) -> HTMLResponse:
    """A wave that is not open yet (200 to look at, 409 to post to) or closing or closed (410)."""
    if link.state in ("closing", "closed"):
        return _message(request, lang, "closed", 410)
    words = i18n.WORDS[lang]
    planned = link.opens_at > utcnow()
    text = (
        words["not_open_text"].format(opens=i18n.when(link.opens_at, lang)) if planned else words["not_open_unplanned"]
    )
    return _message(request, lang, "not_open", 409 if posted else 200, text=text)


def _page(request: Request, lang: Lang, link: Link, page: service.Page, *, notice: str | None = None) -> HTMLResponse:
    view = page_view(
        _instrument(request, link),
        link.closes_at,
        lang,
        page.number,
        page.values,
        page.problems,
        form_error=page.form_error,
    )
    return _render(request, "page.html", lang, {"v": view, "notice": notice}, page.status)


def _thanks(request: Request, lang: Lang, link: Link) -> HTMLResponse:
    """The thank-you page: the same for every link of a wave, so rendered once per wave, language and window."""
    key = (link.instrument, link.version, link.closes_at, lang, request.scope.get("root_path", ""))
    body = _thanks_pages.get(key)
    if body is None:
        view = thanks_view(_instrument(request, link), link.closes_at, lang)
        body = bytes(_render(request, "thanks.html", lang, {"v": view}).body)
        if len(_thanks_pages) >= 256:  # a wave's window rarely changes: a bound, not an eviction policy
            _thanks_pages.clear()
        _thanks_pages[key] = body
    return HTMLResponse(body, headers=NO_INDEX)


_thanks_pages: dict[tuple[Any, ...], bytes] = {}


def _next(page: int | str, lang: Lang, *, check: bool = False) -> RedirectResponse:
    # A relative reference: the browser stays on this link's own URL and the token is written nowhere else.
    location = f"?page={page}&lang={lang}" + ("&check=1" if check else "")
    return RedirectResponse(location, status_code=303, headers=NO_INDEX)


def _instrument(request: Request, link: Link) -> Instrument:
    instrument: Instrument = request.app.state.instruments[(link.instrument, link.version)].instrument
    return instrument


def _step(request: Request, lang: Lang, link: Link, step: service.Step, *, posted: bool) -> HTTPResponse:
    """Render what a step of the form says to show."""
    match step:
        case service.Next(number, check):
            return _next(number, lang, check=check)
        case service.Thanks():
            return _thanks(request, lang, link)
        case service.NotOpen(found):
            return _not_taking_answers(request, lang, found, posted=posted)
    notice = None
    if step.sent_before:
        notice = i18n.WORDS[lang]["already_sent"].format(closes=i18n.when(link.closes_at, lang))
    return _page(request, lang, link, step, notice=notice)


# Routes --------------------------------------------------------------------------------------------------
#
# Both routes are plain functions (FastAPI runs them in its thread pool, one hop per request) and do their
# database work on one connection outside a transaction (``reading``): looking up a link never queues
# behind SQLite's writers, and on PostgreSQL a link's first save is a single statement.


@router.get("/s/{token:path}", summary="The survey form behind a link", response_class=HTMLResponse)
async def show_form(token: str, request: Request) -> HTTPResponse:
    """Show a page of the form (``?page=N&lang=L&check=1``), pre-filled with the stored answers. Changes nothing:
    mail scanners prefetch links."""
    verdict = await _gate(request)
    return await run_in_threadpool(_show, token, request, verdict)


def _show(token: str, request: Request, verdict: Verdict) -> HTTPResponse:
    query = request.query_params
    language = i18n.pick(query.get("lang"), request.headers.get("accept-language"))
    if verdict.retry_after:
        return _too_many(request, language, verdict.retry_after)
    try:
        with reading(request.app.state.engine) as db:
            link = service.find(db, token, request.app.state.secret)
    except errors.DATABASE_ERRORS as exc:
        if not errors.database_unavailable(exc):
            raise
        return _unavailable(request, i18n.asked_for(query.get("lang"), request.headers.get("accept-language")))
    if link is None:
        return _not_found(request, language)
    step = service.show(link, _instrument(request, link), query.get("page"), check=query.get("check") == "1")
    return _step(request, language, link, step, posted=False)


@router.post("/s/{token:path}", summary="Save answers behind a link", response_class=HTMLResponse)
async def save_form(token: str, request: Request) -> HTTPResponse:
    """Save a page (``_page`` and ``_action`` next/back/finish) or, without ``_page``, the whole survey."""
    # The gate and the body are awaited here rather than declared as dependencies (as in ``show_form``): on the
    # busiest routes that saves FastAPI's dependency resolution. The rest, database work included, runs in the
    # thread pool in one hop.
    verdict = await _gate(request)
    form = await _submitted(request)
    return await run_in_threadpool(_save, token, request, verdict, form)


def _save(token: str, request: Request, verdict: Verdict, form: Submitted) -> HTTPResponse:
    asked = i18n.asked_for(
        form.first("_lang") or request.query_params.get("lang"), request.headers.get("accept-language")
    )
    language = asked or i18n.DEFAULT
    if verdict.retry_after:
        return _too_many(request, language, verdict.retry_after)
    secret: bytes = request.app.state.secret
    try:
        with reading(request.app.state.engine) as db:
            link = service.find(db, token, secret)
            if link is None:
                return _not_found(request, language)
            instrument = _instrument(request, link)
            step = service.submit(db, link, instrument, _posted(form, instrument), token=token, secret=secret)
    except errors.DATABASE_ERRORS as exc:
        if not errors.database_unavailable(exc):
            raise
        return _unavailable(request, asked)
    return _step(request, language, link, step, posted=True)


def _posted(form: Submitted, instrument: Instrument) -> service.Posted:
    """The post as the form's steps take it: a ``_page`` naming no page of the form is a malformed post."""
    raw = form.first("_page")
    number = service.page_number(raw, len(instrument.sections))
    trouble = form.trouble or (422 if raw is not None and number is None else 0)
    return service.Posted(form.fields, number, form.first("_action"), trouble)
