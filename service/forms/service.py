"""The form's steps: what a link shows, and what a posted page saves and leads to. The routes parse the request
and render what these return; nothing here knows HTTP or templates.

A step is one of: a page of the form (``Page``), a redirect to another page of the same link after a save
(``Next``), the thank-you page (``Thanks``), or the wave's own page when it takes no answers (``NotOpen``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.orm import Session

from service.db import writing
from service.forms.answers import Problem, first_page_with, missing_required, parse_answers
from service.forms.storage import Link, WaveNotOpen, open_link, save
from service.instruments.schema import Instrument
from service.models.base import utcnow
from service.waves import service as waves


@dataclass(frozen=True)
class Page:
    """A page of the form, pre-filled with ``values`` (fields as posted, or as stored), problems marked."""

    number: int
    values: Mapping[str, Sequence[str]]
    problems: list[Problem] = field(default_factory=list)
    status: int = 200
    form_error: bool = False  # the post could not be read at all
    sent_before: bool = False  # the link's answers were sent already: say they may still be changed


@dataclass(frozen=True)
class Next:
    """Saved: go on to page ``number`` (``check``: mark its required items still unanswered)."""

    number: int
    check: bool = False


@dataclass(frozen=True)
class Thanks:
    """The answers are complete."""


@dataclass(frozen=True)
class NotOpen:
    """The wave takes no answers (not yet, or no longer): ``link`` says its state and window."""

    link: Link


Step = Page | Next | Thanks | NotOpen


@dataclass(frozen=True)
class Posted:
    """A post as the route read it: the fields, the page it came from (None for the whole survey in one post),
    the button pressed, and an HTTP status when the body could not be read or named no page of the form."""

    fields: Mapping[str, Sequence[str]]
    page: int | None
    action: str | None = None
    trouble: int = 0


def find(db: Connection, token: str, secret: bytes) -> Link | None:
    """The link behind ``token`` (None for an unknown one), with the clock applied: a wave whose window has begun
    opens, one whose window has ended starts closing (the state changes; the close job builds its table)."""
    link = open_link(db, token, secret)
    if link is not None and link.clock_due(utcnow()):
        with writing(db), Session(bind=db) as session:
            link = link.with_wave(waves.advance(session, waves.get(session, link.wave_id)))
            session.flush()
    return link


def show(link: Link, instrument: Instrument, page: str | None, *, check: bool) -> Step:
    """What a GET of the link shows: the thank-you page once the answers are complete (unless a page is asked
    for), else a page pre-filled with the stored answers. Changes nothing: mail scanners prefetch links."""
    if link.state != "open":
        return NotOpen(link)
    if link.complete and page in (None, "done"):
        return Thanks()
    number = page_number(page, len(instrument.sections)) or 1
    problems = missing_required(instrument.sections[number - 1].items, link.answers) if check else []
    return Page(number, as_values(link.answers), problems, sent_before=link.complete)


def submit(db: Connection, link: Link, instrument: Instrument, posted: Posted, *, token: str, secret: bytes) -> Step:
    """Check and save a posted page (or the whole survey), and say where the person goes next.

    A page with problems is shown again with them marked, nothing saved. "Back" saves what was given without
    asking for required items. "Next" saves and goes on. On the last page the answers are complete when no page
    misses a required answer; otherwise the page is saved and the first page still missing one is shown.
    """
    if link.state != "open":
        return NotOpen(link)
    if posted.trouble:
        return Page(posted.page or 1, as_values(link.answers), status=posted.trouble, form_error=True)
    if posted.page is None:
        return _whole_survey(db, link, instrument, posted, token=token, secret=secret)
    answers, problems = parse_answers(instrument.sections[posted.page - 1].items, posted.fields)
    if not problems and posted.action != "back":
        problems = missing_required(instrument.sections[posted.page - 1].items, answers)
    if problems:
        return Page(posted.page, posted.fields, problems, status=422)
    if posted.action == "back":
        step: Step = Next(max(1, posted.page - 1))
    elif posted.page < len(instrument.sections):
        step = Next(posted.page + 1)
    else:
        missing = missing_required(instrument.items, _merged(link.answers, answers))
        step = Next(first_page_with(instrument, (p.item_id for p in missing)), check=True) if missing else Thanks()
    return _saved(db, link, answers, complete=isinstance(step, Thanks), token=token, secret=secret) or step


def _whole_survey(
    db: Connection, link: Link, instrument: Instrument, posted: Posted, *, token: str, secret: bytes
) -> Step:
    answers, problems = parse_answers(instrument.items, posted.fields)
    problems = problems or missing_required(instrument.items, answers)
    if problems:
        first = first_page_with(instrument, (p.item_id for p in problems))
        return Page(first, posted.fields, problems, status=422)
    return _saved(db, link, answers, complete=True, token=token, secret=secret) or Thanks()


def _saved(
    db: Connection, link: Link, answers: dict[str, Any], *, complete: bool, token: str, secret: bytes
) -> NotOpen | None:
    """Save and commit (before the next page is rendered); None when saved, else the wave that stopped taking
    answers between the look-up and the save."""
    try:
        save(db, link, token=token, secret=secret, answers=answers, complete=complete)
    except WaveNotOpen as exc:
        found = open_link(db, token, secret)
        # Still open: the link's answers went into a published period of a continuous wave, and are final.
        return NotOpen(found if found is not None and found.state != "open" else replace(link, state=exc.state))
    return None


def _merged(stored: Mapping[str, Any], answers: Mapping[str, Any]) -> dict[str, Any]:
    """The link's answers once ``answers`` are saved into ``stored`` (``None`` removes an item)."""
    merged = {**stored, **answers}
    return {item_id: value for item_id, value in merged.items() if value is not None}


def page_number(raw: str | None, pages: int) -> int | None:
    """The page a request names (1-based), or None when it names none of the form's ``pages``."""
    if raw is None or not raw.isascii() or not raw.isdigit() or len(raw) > 4 or not 1 <= int(raw) <= pages:
        return None
    return int(raw)


def as_values(stored: Mapping[str, Any]) -> dict[str, list[str]]:
    """Stored answers in the shape of submitted fields, to pre-fill the form."""
    return {
        item_id: [str(a) for a in answer] if isinstance(answer, list) else [str(answer)]
        for item_id, answer in stored.items()
    }
