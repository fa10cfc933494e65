"""The web form over HTTP: pages, saving, coming back, validation, states, languages and headers."""

from __future__ import annotations

from urllib.parse import quote

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from service import links
from service.forms.i18n import WORDS
from tests.forms.answers import all_answers, answer_for, answers_for, as_fields
from tests.forms.conftest import Survey, checked, counts, responses

NL = {"accept-language": "nl"}


def _items_with_type(survey: Survey, *types: str):
    return [item for item in survey.instrument.items if item.type in types]


def test_get_changes_nothing(form_client: TestClient, survey: Survey, engine: Engine) -> None:
    before = counts(engine)
    for path in (survey.url(), f"{survey.url()}?page=2", f"{survey.url()}?page=99&lang=en", f"{survey.url()}?check=1"):
        response = form_client.get(path)
        assert response.status_code == 200, response.text
        assert 'method="post"' in response.text
    form_client.head(survey.url())
    assert counts(engine) == before
    assert responses(engine) == []


def test_first_page_shows_the_instrument_and_privacy(form_client: TestClient, survey: Survey) -> None:
    page = form_client.get(survey.url(), headers=NL).text
    instrument = survey.instrument
    assert '<html lang="nl">' in page
    assert instrument.title.nl in page
    assert WORDS["nl"]["privacy_text"][:60] in page and 'id="privacy"' in page
    assert instrument.sections[0].title.nl in page
    for item in instrument.sections[0].items:
        assert f'id="{item.id}--question"' in page  # one fieldset per question
    assert f'<progress max="{len(instrument.sections)}" value="1"' in page
    assert "<script" not in page
    assert '<link rel="stylesheet" href="/static/peil.css">' in page
    # Every page links to the privacy statement, which every page carries.
    later = form_client.get(f"{survey.url()}?page=2").text
    assert 'href="#privacy"' in later and 'id="privacy"' in later
    css = form_client.get("/static/peil.css")
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")


def test_every_choice_has_a_label(form_client: TestClient, survey: Survey) -> None:
    import re

    for page in range(1, len(survey.instrument.sections) + 1):
        html = form_client.get(f"{survey.url()}?page={page}").text
        inputs = re.findall(r'<input type="(?:radio|checkbox)" id="([^"]+)"', html)
        assert inputs
        for input_id in inputs:
            assert (
                f'<label class="choice{" choice-none" if input_id.endswith("--none") else ""}" for="{input_id}">'
                in html
            )
        assert html.count("<fieldset") == html.count("<legend") == len(survey.instrument.sections[page - 1].items)


def test_whole_survey_in_one_post(form_client: TestClient, survey: Survey, engine: Engine) -> None:
    answers = all_answers(survey.instrument)
    response = form_client.post(survey.url(), data=as_fields(answers, lang="en"))
    assert response.status_code == 200, response.text
    assert "Thank you!" in response.text
    [stored] = responses(engine)
    assert stored.answers == answers and stored.complete is True
    # Scaled answers are stored as ints, choices as option ids, multi as lists, text as str.
    for item in survey.instrument.items:
        assert type(stored.answers[item.id]) is type(answer_for(item))
    # Coming back to the link shows the thank-you page and lets the answers be changed.
    again = form_client.get(f"{survey.url()}?lang=en")
    assert again.status_code == 200 and "Thank you!" in again.text and "?page=1&amp;lang=en" in again.text


def test_page_by_page_with_back_and_change(form_client: TestClient, survey: Survey, engine: Engine) -> None:
    sections = survey.instrument.sections
    url = survey.url()
    first = answers_for(sections[0].items)
    response = form_client.post(url, data=as_fields(first, page=1, lang="nl", action="next"), follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == "?page=2&lang=nl"
    [stored] = responses(engine)
    assert stored.answers == first and stored.complete is False

    # Page 2, then Back: the answers of page 2 are saved too, and page 1 shows what was stored.
    second = answers_for(sections[1].items, variant=1)
    response = form_client.post(url, data=as_fields(second, page=2, lang="nl", action="back"), follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == "?page=1&lang=nl"
    assert responses(engine)[0].answers == {**first, **second}
    page1 = form_client.get(f"{url}?page=1&lang=nl").text
    scaled = next(i for i in sections[0].items if i.type in ("likert5", "likert7", "nps", "single"))
    assert checked(page1, scaled.id, first[scaled.id])

    # Change page 1, then walk to the end.
    changed = answers_for(sections[0].items, variant=2)
    response = form_client.post(url, data=as_fields(changed, page=1, lang="nl", action="next"), follow_redirects=False)
    assert response.status_code == 303
    final: dict = {**changed, **second}
    for number, section in enumerate(sections[1:], start=2):
        page_answers = answers_for(section.items, variant=3)
        final.update(page_answers)
        response = form_client.post(
            url, data=as_fields(page_answers, page=number, lang="nl", action="next"), follow_redirects=False
        )
        if number < len(sections):
            assert response.status_code == 303 and response.headers["location"] == f"?page={number + 1}&lang=nl"
        else:
            assert response.status_code == 200 and "Bedankt!" in response.text
    [stored] = responses(engine)
    assert stored.answers == final and stored.complete is True
    assert len(responses(engine)) == 1


def test_come_back_and_change_answers(form_client: TestClient, survey: Survey, engine: Engine) -> None:
    instrument = survey.instrument
    assert form_client.post(survey.url(), data=as_fields(all_answers(instrument))).status_code == 200
    section = instrument.sections[0]
    changed = answers_for(section.items, variant=4)
    # A later visit shows the stored answers, then saves a changed page: still complete, still one row.
    page = form_client.get(f"{survey.url()}?page=1").text
    item = next(i for i in section.items if i.type in ("likert5", "likert7", "nps", "single"))
    assert checked(page, item.id, all_answers(instrument)[item.id])
    response = form_client.post(survey.url(), data=as_fields(changed, page=1, action="next"), follow_redirects=False)
    assert response.status_code == 303
    [stored] = responses(engine)
    assert stored.complete is True
    assert {k: stored.answers[k] for k in changed} == changed
    again = form_client.get(f"{survey.url()}?page=1").text
    assert checked(again, item.id, changed[item.id])
    assert "kun je ze nog wijzigen" in again.lower() or "wijzigen tot" in again


def test_optional_answers_can_be_withdrawn(form_client: TestClient, survey: Survey, engine: Engine) -> None:
    sections = survey.instrument.sections
    number, section = next((n, s) for n, s in enumerate(sections, start=1) if any(not i.required for i in s.items))
    optional = [item for item in section.items if not item.required]
    answers = answers_for(section.items)
    form_client.post(survey.url(), data=as_fields(answers, page=number, action="next"))
    assert responses(engine)[0].answers == answers
    # Unchecked boxes and an emptied text send nothing; "prefer not to say" sends an empty value.
    withdrawn = {k: v for k, v in answers.items() if k != optional[0].id}
    fields = as_fields(withdrawn, page=number, action="next")
    if len(optional) > 1:
        fields[optional[1].id] = ""
    form_client.post(survey.url(), data=fields)
    stored = responses(engine)[0].answers
    assert all(item.id not in stored for item in optional[:2])
    assert len(stored) == len(answers) - min(2, len(optional))


def test_required_question_is_asked_again(form_client: TestClient, survey: Survey, engine: Engine) -> None:
    instrument = survey.instrument
    required = next(item for item in instrument.items if item.required)
    page = next(n for n, s in enumerate(instrument.sections, start=1) if required in s.items)
    answers = answers_for(instrument.sections[page - 1].items)
    del answers[required.id]
    response = form_client.post(survey.url(), data=as_fields(answers, page=page, lang="en", action="next"))
    assert response.status_code == 422
    html = response.text
    assert "Something needs your attention" in html and "<title>Error: " in html
    assert "Please answer this question; it is required." in html
    assert f'id="{required.id}--error"' in html and 'aria-invalid="true"' in html
    assert f'href="#{required.id}-' in html  # the error summary links to the question's first field
    assert f"{required.id}--error" in html.split(f'id="{required.id}--question"')[1].split(">")[0]
    assert responses(engine) == []
    # The whole survey without it: refused as well, nothing stored, nothing complete.
    everything = all_answers(instrument)
    del everything[required.id]
    response = form_client.post(survey.url(), data=as_fields(everything))
    assert response.status_code == 422 and f'id="{required.id}--error"' in response.text
    assert responses(engine) == []


def test_finish_returns_to_a_skipped_required_question(form_client: TestClient, survey: Survey, engine: Engine) -> None:
    instrument = survey.instrument
    sections = instrument.sections
    required = next(item for item in instrument.items if item.required)
    page = next(n for n, s in enumerate(sections, start=1) if required in s.items)
    last = len(sections)
    if page == last:
        pytest.skip("the first required question is on the last page")
    # Back skips the required check; go straight to the last page and finish.
    partial = answers_for(sections[page - 1].items)
    del partial[required.id]
    form_client.post(survey.url(), data=as_fields(partial, page=page, action="back"))
    response = form_client.post(
        survey.url(),
        data=as_fields(answers_for(sections[-1].items), page=last, action="finish"),
        follow_redirects=False,
    )
    assert response.status_code == 303 and response.headers["location"] == f"?page={page}&lang=nl&check=1"
    assert responses(engine)[0].complete is False
    shown = form_client.get(f"{survey.url()}{response.headers['location']}")
    assert shown.status_code == 200 and f'id="{required.id}--error"' in shown.text


@pytest.mark.parametrize(
    "bad",
    [
        {"type": "likert5", "value": "6"},
        {"type": "likert5", "value": "0"},
        {"type": "likert5", "value": "abc"},
        {"type": "likert5", "value": "3.0"},
        {"type": "likert5", "value": " 3"},
        {"type": "likert5", "value": ["2", "3"]},
        {"type": "likert7", "value": "8"},
        {"type": "nps", "value": "11"},
        {"type": "nps", "value": "-1"},
        {"type": "single", "value": "no_such_option"},
        {"type": "multi", "value": ["no_such_option"]},
        {"type": "multi", "value": "too_many"},
        {"type": "text", "value": "too_long"},
        {"type": "text", "value": "nul\x00byte"},
    ],
)
def test_malformed_values_store_nothing(form_client: TestClient, survey: Survey, engine: Engine, bad: dict) -> None:
    items = _items_with_type(survey, bad["type"])
    if not items:
        pytest.skip(f"the instrument has no {bad['type']} item")
    item = items[0]
    value = bad["value"]
    if value == "too_many":
        value = [o.id for o in item.options] + [item.options[0].id]
    elif value == "too_long":
        value = "x" * (item.max_length + 1)
    answers = as_fields(all_answers(survey.instrument))
    answers[item.id] = value
    response = form_client.post(survey.url(), data=answers)  # the whole survey
    assert response.status_code == 422, response.text
    assert f'id="{item.id}--error"' in response.text
    page = next(n for n, s in enumerate(survey.instrument.sections, start=1) if item in s.items)
    section_answers = {
        k: v for k, v in answers.items() if k in {i.id for i in survey.instrument.sections[page - 1].items}
    }
    response = form_client.post(survey.url(), data={**section_answers, "_page": str(page), "_action": "next"})
    assert response.status_code == 422
    assert responses(engine) == []


def test_text_at_the_limit_is_taken(form_client: TestClient, survey: Survey, engine: Engine) -> None:
    texts = _items_with_type(survey, "text")
    if not texts:
        pytest.skip("the instrument has no text item")
    answers = all_answers(survey.instrument)
    answers[texts[0].id] = "  " + "é" * texts[0].max_length + "\n"  # stripped, counted in characters
    assert form_client.post(survey.url(), data=as_fields(answers)).status_code == 200
    assert responses(engine)[0].answers[texts[0].id] == "é" * texts[0].max_length


def test_bad_forms_are_refused(form_client: TestClient, survey: Survey, engine: Engine) -> None:
    url = survey.url()
    assert form_client.post(url, data={"_page": "99"}).status_code == 422
    assert form_client.post(url, data={"_page": "x"}).status_code == 422
    assert (
        form_client.post(
            url, content=b"\xff\xfe=1", headers={"content-type": "application/x-www-form-urlencoded"}
        ).status_code
        == 422
    )
    assert form_client.post(url, content=b"{}", headers={"content-type": "application/json"}).status_code == 415
    assert (
        form_client.post(
            url, content=b"a=" + b"b" * (600 * 1024), headers={"content-type": "application/x-www-form-urlencoded"}
        ).status_code
        == 413
    )
    many = "&".join(f"f{n}=1" for n in range(1500)).encode()
    assert (
        form_client.post(url, content=many, headers={"content-type": "application/x-www-form-urlencoded"}).status_code
        == 422
    )
    assert responses(engine) == []


def test_unknown_fields_are_ignored_and_multipart_works(
    form_client: TestClient, survey: Survey, engine: Engine
) -> None:
    answers = all_answers(survey.instrument)
    fields = as_fields(answers)
    fields["not_an_item"] = "whatever"
    fields["_unknown_control"] = "x"
    response = form_client.post(survey.url(), data=fields)
    assert response.status_code == 200
    assert responses(engine)[0].answers == answers
    # The same as multipart/form-data, without files, from another link.
    boundary = "peilboundary"
    parts = []
    for name, value in as_fields(answers).items():
        for v in value if isinstance(value, list) else [value]:
            parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{v}\r\n')
    multipart = ("".join(parts) + f"--{boundary}--\r\n").encode()
    response = form_client.post(
        survey.url(1), content=multipart, headers={"content-type": f"multipart/form-data; boundary={boundary}"}
    )
    assert response.status_code == 200, response.text
    assert len(responses(engine)) == 2


UNKNOWN = [
    "x",
    "A" * 43,  # the shape of a real token
    links.new_token(),
    "a" * 5000,
    "ünïcødé-☃-токен",
    "../",
    "../../etc/passwd",
    "%00",
    "' OR 1=1 --",
    "<script>alert(1)</script>",
    "",
]


def test_unknown_links_get_one_page(app: FastAPI, form_client: TestClient, survey: Survey, engine: Engine) -> None:
    before = counts(engine)
    bodies = set()
    for token in UNKNOWN:
        app.state.link_misses.reset()  # this test is about the page, not the throttle
        for method in ("GET", "POST"):
            response = form_client.request(method, "/s/" + quote(token, safe=""), headers=NL)
            assert response.status_code == 404, (token, response.status_code)
            assert response.headers["content-type"].startswith("text/html")
            bodies.add(response.text)
    assert len(bodies) == 1
    body = bodies.pop()
    assert "Deze link werkt niet" in body and "<script" not in body
    assert counts(engine) == before


def test_wave_not_open_yet(form_client: TestClient, draft_survey: Survey, engine: Engine) -> None:
    response = form_client.get(draft_survey.url(), headers=NL)
    assert response.status_code == 200
    assert "nog niet open" in response.text and "<form" not in response.text
    response = form_client.post(draft_survey.url(), data=as_fields(all_answers(draft_survey.instrument)))
    assert response.status_code == 409 and "nog niet open" in response.text  # Dutch by default
    assert responses(engine) == []


def test_closed_wave(form_client: TestClient, survey: Survey, engine: Engine) -> None:
    form_client.post(survey.url(), data=as_fields(answers_for(survey.instrument.sections[0].items), page=1))
    stored = responses(engine)[0].answers
    closed = form_client.post(f"/api/v1/waves/{survey.wave_id}/close", headers=survey.hr)
    assert closed.status_code == 202, closed.text  # closing: the form takes no answers from now on
    response = form_client.get(f"{survey.url()}?lang=en")
    assert response.status_code == 410 and "This survey has closed" in response.text and "<form" not in response.text
    before = counts(engine)
    for data in (
        as_fields(all_answers(survey.instrument, variant=3)),
        as_fields(all_answers(survey.instrument), page=1),
    ):
        response = form_client.post(survey.url(), data=data)
        assert response.status_code == 410
    assert counts(engine) == before
    [after] = responses(engine)
    assert after.answers == stored and after.complete is False


def test_clock_closes_the_wave(form_client: TestClient, survey: Survey, engine: Engine) -> None:
    from datetime import UTC, datetime, timedelta

    from sqlalchemy import update

    from service.models import Wave

    with engine.begin() as conn:  # as if the window had passed without the scheduler noticing
        past = datetime.now(UTC) - timedelta(minutes=1)
        conn.execute(
            update(Wave).where(Wave.id == survey.wave_id).values(closes_at=past, opens_at=past - timedelta(days=1))
        )
    response = form_client.post(survey.url(), data=as_fields(all_answers(survey.instrument)))
    assert response.status_code == 410
    assert responses(engine) == []


def test_a_page_load_after_the_window_builds_nothing(form_client: TestClient, survey: Survey, engine: Engine) -> None:
    """A link opened after closes_at shows the closed page and at most freezes the wave: the close job, not the
    participant's request, builds the table."""
    from datetime import UTC, datetime, timedelta

    from sqlalchemy import select, update

    from service.models import AuditEntry, Wave, WaveResult

    form_client.post(survey.url(), data=as_fields(all_answers(survey.instrument)))
    with engine.begin() as conn:
        past = datetime.now(UTC) - timedelta(minutes=1)
        conn.execute(
            update(Wave).where(Wave.id == survey.wave_id).values(closes_at=past, opens_at=past - timedelta(days=1))
        )
    for _ in range(2):
        response = form_client.get(f"{survey.url()}?lang=en")
        assert response.status_code == 410 and "This survey has closed" in response.text
    with engine.connect() as conn:
        assert conn.scalar(select(Wave.state).where(Wave.id == survey.wave_id)) == "closing"
        assert conn.scalar(select(WaveResult.wave_id).where(WaveResult.wave_id == survey.wave_id)) is None
        audited = select(AuditEntry.key_name, AuditEntry.action).where(AuditEntry.wave_id == survey.wave_id)
        assert [tuple(row) for row in conn.execute(audited)].count(("clock", "wave.closed")) == 1  # the first load
    [kept] = responses(engine)
    assert kept.complete and kept.answered_on is not None  # untouched until the close job rewrites it


def test_clock_opens_the_wave_and_the_same_request_stores(
    form_client: TestClient, draft_survey: Survey, engine: Engine
) -> None:
    """The request that finds the window begun opens the wave, then stores on the same connection."""
    from datetime import UTC, datetime, timedelta

    from sqlalchemy import select, update

    from service.models import Wave

    with engine.begin() as conn:  # as if the window had begun without the scheduler noticing
        conn.execute(
            update(Wave)
            .where(Wave.id == draft_survey.wave_id)
            .values(opens_at=datetime.now(UTC) - timedelta(minutes=1))
        )
    answers = all_answers(draft_survey.instrument)
    response = form_client.post(draft_survey.url(), data=as_fields(answers))
    assert response.status_code == 200 and "Bedankt" in response.text
    with engine.connect() as conn:
        assert conn.scalar(select(Wave.state).where(Wave.id == draft_survey.wave_id)) == "open"
    [stored] = responses(engine)
    assert stored.complete and stored.answers == answers
    # A later page of the same link merges into that response (a write transaction after the reads).
    first_page = answers_for(draft_survey.instrument.sections[0].items, variant=4)
    response = form_client.post(draft_survey.url(), data=as_fields(first_page, page=1), follow_redirects=False)
    assert response.status_code == 303
    [again] = responses(engine)
    assert again.id == stored.id and again.complete and again.answers == {**answers, **first_page}


def test_database_unavailable_gives_a_page_with_retry_after(
    form_client: TestClient, survey: Survey, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A database that is down: the form answers 503 with Retry-After as a page, the API as JSON."""
    import sqlite3

    from sqlalchemy.exc import OperationalError

    from service.forms import service

    def down(*_args: object, **_kwargs: object) -> None:
        raise OperationalError("SELECT", {}, sqlite3.OperationalError("connection refused"))

    monkeypatch.setattr(service, "open_link", down)
    before = counts(engine)
    pages = {
        "both": form_client.get(survey.url()),
        "en": form_client.post(survey.url(), data=as_fields(all_answers(survey.instrument), lang="en")),
        "nl": form_client.get(survey.url(), headers=NL),
    }
    for page in pages.values():
        assert page.status_code == 503 and page.headers["content-type"].startswith("text/html")
        assert int(page.headers["retry-after"]) > 0 and "<form" not in page.text
    assert "Even niet bereikbaar" in pages["both"].text and "Briefly unavailable" in pages["both"].text
    assert "Briefly unavailable" in pages["en"].text and "Even niet" not in pages["en"].text
    assert "Even niet bereikbaar" in pages["nl"].text and "Briefly unavailable" not in pages["nl"].text
    assert counts(engine) == before

    monkeypatch.undo()
    engine.dispose()  # the API route below meets a database that refuses new connections
    with monkeypatch.context() as patched:
        patched.setattr(engine.pool, "connect", down)
        api = form_client.get(f"/api/v1/waves/{survey.wave_id}/participation", headers=survey.hr)
    assert api.status_code == 503 and api.json()["error"]["code"] == "unavailable"
    assert int(api.headers["retry-after"]) > 0


@pytest.mark.parametrize(
    ("query", "headers", "lang"),
    [
        ("", {}, "nl"),
        ("", {"accept-language": "en-GB,en;q=0.9"}, "en"),
        ("", {"accept-language": "de-DE, en;q=0.5, nl;q=0.8"}, "nl"),
        ("", {"accept-language": "fr, de"}, "nl"),
        ("", {"accept-language": "en;q=0"}, "nl"),
        ("?lang=en", {"accept-language": "nl"}, "en"),
        ("?lang=nl", {"accept-language": "en"}, "nl"),
        ("?lang=xx", {"accept-language": "en"}, "en"),
    ],
)
def test_language(form_client: TestClient, survey: Survey, query: str, headers: dict, lang: str) -> None:
    response = form_client.get(survey.url() + query, headers=headers)
    assert f'<html lang="{lang}">' in response.text
    assert survey.instrument.sections[0].title.get(lang) in response.text  # type: ignore[arg-type]
    assert f'<input type="hidden" name="_lang" value="{lang}">' in response.text
    other = "nl" if lang == "en" else "en"
    assert f'href="?page=1&amp;lang={other}"' in response.text


def test_language_is_kept_across_pages(form_client: TestClient, survey: Survey) -> None:
    answers = answers_for(survey.instrument.sections[0].items)
    response = form_client.post(survey.url(), data=as_fields(answers, page=1, lang="en"), headers=NL)
    assert '<html lang="en">' in response.text  # followed the redirect to ?page=2&lang=en
    assert survey.instrument.sections[1].title.en in response.text
    assert str(response.url).endswith("?page=2&lang=en")


def test_security_headers(form_client: TestClient, survey: Survey) -> None:
    pages = [
        form_client.get(survey.url()),
        form_client.post(survey.url(), data={"_page": "1"}),
        form_client.get("/s/unknown"),
        form_client.get("/static/peil.css"),
    ]
    for response in pages:
        headers = response.headers
        csp = headers["content-security-policy"]
        assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp and "form-action 'self'" in csp
        assert "script-src" not in csp
        assert headers["referrer-policy"] == "no-referrer"
        assert headers["cache-control"] == "no-store"
        assert headers["x-content-type-options"] == "nosniff"
        assert headers["x-frame-options"] == "DENY"
    assert pages[0].headers["x-robots-tag"].startswith("noindex")


def test_token_appears_in_no_other_url(form_client: TestClient, survey: Survey) -> None:
    token = survey.tokens[0]
    answers = answers_for(survey.instrument.sections[0].items)
    redirect = form_client.post(survey.url(), data=as_fields(answers, page=1), follow_redirects=False)
    assert token not in redirect.headers["location"]
    for page in (form_client.get(survey.url()).text, form_client.get(f"{survey.url()}?page=2").text):
        assert token not in page  # links are relative: ?page=N&lang=L, #privacy, /static/peil.css
        assert "http://" not in page and "https://" not in page
