"""Reading and checking a page's answers: form fields in, each item's answer (or why it cannot be taken) out."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from scoring.spec import SCALE_BOUNDS
from service.instruments.schema import Instrument, Item

_NUMBER = re.compile(r"^[0-9]{1,2}$")
# Text answers may hold line breaks and tabs, no other control characters (PostgreSQL JSON refuses NUL, and
# nobody types the rest).
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


@dataclass(frozen=True)
class Problem:
    """Why one item's answer cannot be taken: ``code`` names the message, ``params`` fill it in."""

    item_id: str
    code: str  # required, scale, option, options, too_long, control
    params: dict[str, Any] = field(default_factory=dict)


def parse_answers(items: Iterable[Item], fields: Mapping[str, Sequence[str]]) -> tuple[dict[str, Any], list[Problem]]:
    """Each item's answer from the submitted fields, and the problems with malformed ones.

    ``fields`` maps a field name to all its submitted values (a multi item's choices repeat its name); names
    that are not item ids are ignored. The answer is ``None`` for an unanswered item (absent or empty), an
    int for a scaled item, an option id for ``single``, a list of option ids in the instrument's order for
    ``multi`` and the stripped text for ``text``.
    """
    answers: dict[str, Any] = {}
    problems: list[Problem] = []
    for item in items:
        values = list(fields.get(item.id, ()))
        answer, problem = _parse_item(item, values)
        if problem is not None:
            problems.append(problem)
        else:
            answers[item.id] = answer
    return answers, problems


def _parse_item(item: Item, values: list[str]) -> tuple[Any, Problem | None]:
    if item.type == "multi":
        options = [o.id for o in item.options]
        chosen = {v for v in values if v != ""}
        if len(values) > len(options) or not chosen <= set(options):
            return None, Problem(item.id, "options")
        return ([o for o in options if o in chosen] or None), None
    if len(values) > 1:
        return None, Problem(item.id, "option" if item.type == "single" else "scale", _bounds(item))
    value = values[0] if values else ""
    if item.type == "text":
        text = value.replace("\r\n", "\n").replace("\r", "\n").strip()
        if _CONTROL.search(text):
            return None, Problem(item.id, "control")
        if len(text) > item.max_length:
            return None, Problem(item.id, "too_long", {"length": len(text), "n": item.max_length})
        return (text or None), None
    if value == "":
        return None, None
    if item.type == "single":
        if value not in {o.id for o in item.options}:
            return None, Problem(item.id, "option")
        return value, None
    low, high = SCALE_BOUNDS[item.type]
    if not _NUMBER.fullmatch(value) or not low <= int(value) <= high:
        return None, Problem(item.id, "scale", {"low": low, "high": high})
    return int(value), None


def _bounds(item: Item) -> dict[str, Any]:
    low, high = SCALE_BOUNDS.get(item.type, (0, 0))
    return {"low": low, "high": high}


def missing_required(items: Iterable[Item], answers: Mapping[str, Any]) -> list[Problem]:
    """A problem for every required item without an answer in ``answers``."""
    return [Problem(item.id, "required") for item in items if item.required and answers.get(item.id) is None]


def first_page_with(instrument: Instrument, item_ids: Iterable[str]) -> int:
    """The 1-based page (section) holding the first of ``item_ids``, in the instrument's order."""
    wanted = set(item_ids)
    for page, section in enumerate(instrument.sections, start=1):
        if any(item.id in wanted for item in section.items):
            return page
    return 1
