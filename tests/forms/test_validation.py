"""Reading answers from form fields, on a small instrument of every item type (no app, no database)."""

from __future__ import annotations

from typing import Any

import pytest

from service.forms import i18n
from service.forms.service import Problem, first_page_with, missing_required, parse_answers
from service.instruments.schema import Instrument


def _text(words: str) -> dict[str, str]:
    return {"nl": words, "en": words}


def _likert(n: int) -> list[dict[str, str]]:
    return [_text(f"point {i}") for i in range(1, n + 1)]


INSTRUMENT = Instrument.model_validate(
    {
        "slug": "tiny",
        "version": 1,
        "title": _text("Tiny"),
        "description": _text("A tiny instrument"),
        "privacy": _text("Private"),
        "scales": {"likert5": _likert(5), "likert7": _likert(7), "nps_low": _text("no"), "nps_high": _text("yes")},
        "constructs": [
            {"id": "c5", "name": _text("c5"), "scale": "likert5", "favourable": {"min": 4}},
            {"id": "c7", "name": _text("c7"), "scale": "likert7", "favourable": {"min": 5}},
            {"id": "cn", "name": _text("cn"), "scale": "nps", "favourable": {"min": 9}},
        ],
        "sections": [
            {
                "id": "one",
                "title": _text("One"),
                "items": [
                    {"id": "l5", "type": "likert5", "construct": "c5", "required": True, "text": _text("l5")},
                    {"id": "l7", "type": "likert7", "construct": "c7", "text": _text("l7")},
                ],
            },
            {
                "id": "two",
                "title": _text("Two"),
                "items": [
                    {"id": "n", "type": "nps", "construct": "cn", "text": _text("n")},
                    {
                        "id": "s",
                        "type": "single",
                        "text": _text("s"),
                        "options": [{"id": "a", "text": _text("a")}, {"id": "b", "text": _text("b")}],
                    },
                    {
                        "id": "m",
                        "type": "multi",
                        "text": _text("m"),
                        "required": True,
                        "options": [
                            {"id": "x", "text": _text("x")},
                            {"id": "y", "text": _text("y")},
                            {"id": "z", "text": _text("z")},
                        ],
                    },
                    {"id": "t", "type": "text", "text": _text("t"), "max_length": 5},
                ],
            },
        ],
    }
)


def _parse(fields: dict[str, Any]) -> tuple[dict[str, Any], list[Problem]]:
    listed = {k: v if isinstance(v, list) else [v] for k, v in fields.items()}
    return parse_answers(INSTRUMENT.items, listed)


def test_valid_answers_take_their_stored_types() -> None:
    answers, problems = _parse({"l5": "5", "l7": "1", "n": "0", "s": "b", "m": ["z", "x", "z"], "t": "  hé\r\nx "})
    assert problems == []
    assert answers == {"l5": 5, "l7": 1, "n": 0, "s": "b", "m": ["x", "z"], "t": "hé\nx"}


def test_empty_and_absent_are_unanswered() -> None:
    answers, problems = _parse({"l5": "", "s": "", "t": "   ", "unknown": "1", "_page": "2"})
    assert problems == []
    assert answers == {"l5": None, "l7": None, "n": None, "s": None, "m": None, "t": None}
    assert [p.item_id for p in missing_required(INSTRUMENT.items, answers)] == ["l5", "m"]


@pytest.mark.parametrize(
    ("fields", "code"),
    [
        ({"l5": "6"}, "scale"),
        ({"l5": "0"}, "scale"),
        ({"l5": "05x"}, "scale"),
        ({"l5": "+3"}, "scale"),
        ({"l5": "٣"}, "scale"),  # a digit, but not an ASCII one
        ({"l5": ["1", "2"]}, "scale"),
        ({"l7": "8"}, "scale"),
        ({"n": "11"}, "scale"),
        ({"n": "-0"}, "scale"),
        ({"s": "c"}, "option"),
        ({"s": ["a", "b"]}, "option"),
        ({"m": ["x", "w"]}, "options"),
        ({"m": ["x", "y", "z", "x"]}, "options"),  # more values than options
        ({"t": "123456"}, "too_long"),
        ({"t": "a\x00b"}, "control"),
    ],
)
def test_malformed_answers(fields: dict[str, Any], code: str) -> None:
    _answers, problems = _parse(fields)
    assert [(p.item_id, p.code) for p in problems] == [(next(iter(fields)), code)]


def test_first_page_with() -> None:
    assert first_page_with(INSTRUMENT, ["m"]) == 2
    assert first_page_with(INSTRUMENT, ["m", "l7"]) == 1
    assert first_page_with(INSTRUMENT, []) == 1


@pytest.mark.parametrize(
    ("header", "lang"),
    [
        ("", "nl"),
        ("en", "en"),
        ("en-US,en;q=0.9,nl;q=0.8", "en"),
        ("nl-BE, en;q=0.9", "nl"),
        ("de, en;q=0.1", "en"),
        ("en;q=0.5, nl;q=0.5", "en"),  # a tie goes to the first named
        ("en;q=0, nl;q=0", "nl"),
        ("en;q=abc", "nl"),
        ("*", "nl"),
        ("x" * 10_000, "nl"),
    ],
)
def test_accept_language(header: str, lang: str) -> None:
    assert i18n.from_accept_language(header) == lang
    assert i18n.pick("en", header) == "en" and i18n.pick("nl", header) == "nl"
