"""The messages: what the survey is, how long it takes, until when, the personal link, the form's privacy words."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from fastapi import FastAPI

from service.forms.i18n import WORDS, when
from service.invitations import mail
from service.invitations.contact import Contact
from service.links import new_token
from tests.mail import parse


@pytest.mark.parametrize("language", ["nl", "en"])
@pytest.mark.parametrize("kind", ["invitation", "reminder"])
def test_a_message_says_what_when_and_how_private(app: FastAPI, language: str, kind: str) -> None:
    instrument = app.state.instruments[("career-pulse", 1)].instrument
    person = Contact("ann@example.com", language, new_token())  # type: ignore[arg-type]
    closes = datetime(2026, 12, 15, 17, 0, tzinfo=UTC)
    message = mail.build(
        kind,  # type: ignore[arg-type]
        contact=person,
        instrument=instrument,
        closes_at=closes,
        base_url="https://peil.example.com/",
        sender="Peil <noreply@peil.example.com>",
    )
    got = parse(message.as_bytes())
    assert got.to == "ann@example.com" and got.kind == kind and got.token == person.token
    assert got.language == language and message["Content-Language"] == language
    assert str(message["From"]) == "Peil <noreply@peil.example.com>" and message["Auto-Submitted"] == "auto-generated"
    assert instrument.title.get(language) in got.subject  # type: ignore[arg-type]
    assert f"https://peil.example.com/s/{person.token}?lang={language}" in got.text
    for body in (got.text, got.html):
        assert instrument.description.get(language)[:50] in body  # type: ignore[arg-type]
        assert when(closes, language) in body  # type: ignore[arg-type]
    # The privacy promise in the very words of the form (the HTML escapes its apostrophes).
    assert WORDS[language]["privacy_text"] in got.text  # type: ignore[index]
    assert WORDS[language]["privacy_text"].replace("'", "&#x27;") in got.html  # type: ignore[index]
    assert "<script" not in got.html
