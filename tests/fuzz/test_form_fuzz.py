"""Hypothesis feeds the web form random and malformed posts: never a 5xx, nothing stored from a refused post,
and whatever is stored is a valid answer to the item it is stored under. On SQLite and PostgreSQL.

Examples are random, new on every run (no ``derandomize``: a fixed set of examples finds nothing new after
its first run); a failure prints the seed and the example to replay it. 200 examples per test, everywhere.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, urlencode

from fastapi.testclient import TestClient
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine

from scoring.spec import SCALE_BOUNDS
from service.instruments.schema import Instrument, Item
from tests.forms.answers import all_answers, answers_for, as_fields
from tests.forms.conftest import Survey, responses

FUZZ = settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
CONTENT_TYPES = [
    "application/x-www-form-urlencoded",
    "application/x-www-form-urlencoded; charset=latin-1",
    "multipart/form-data; boundary=xyz",
    "multipart/form-data",
    "application/json",
    "text/plain",
    "",
]
NASTY = [
    "",
    " ",
    "0",
    "-1",
    "1e3",
    "١",  # an Arabic-Indic digit one
    "99999999999999999999",
    "NaN",
    "\x00",
    "a\x1bb",
    "<script>alert(1)</script>",
    "' OR 1=1 --",
    "é" * 3000,
    "%",
    "&=&=",
]


def _values(item: Item | None) -> st.SearchStrategy[list[str]]:
    """Lists of submitted values for one field: sometimes right for ``item``, mostly not."""
    good: list[str] = []
    if item is not None:
        good = [o.id for o in item.options] or [str(n) for n in range(0, 12)]
    one = st.one_of(st.sampled_from(good or ["x"]), st.sampled_from(NASTY), st.text(max_size=40))
    return st.lists(one, min_size=0, max_size=4)


@st.composite
def form_fields(draw: st.DrawFn, instrument: Instrument) -> list[tuple[str, str]]:
    items = list(instrument.items)
    names = st.one_of(
        st.sampled_from([i.id for i in items]),
        st.sampled_from(["_page", "_action", "_lang", "_check"]),
        st.text(max_size=12),
    )
    pairs: list[tuple[str, str]] = []
    by_id = {i.id: i for i in items}
    for name in draw(st.lists(names, max_size=30)):
        if name == "_page":
            values = draw(st.lists(st.sampled_from(["1", "2", "6", "7", "0", "-1", "x", "", "01", "9999"]), max_size=2))
        elif name == "_action":
            values = draw(st.lists(st.sampled_from(["next", "back", "finish", "", "delete"]), max_size=2))
        else:
            values = draw(_values(by_id.get(name)))
        pairs.extend((name, v) for v in values)
    return pairs


def _listed(value: Any) -> list[str]:
    return value if isinstance(value, list) else [value]


def _valid(item: Item, value: Any) -> bool:
    """An independent check of a stored answer's shape (not the service's own parser)."""
    if item.type in ("likert5", "likert7", "nps"):
        low, high = SCALE_BOUNDS[item.type]
        return type(value) is int and low <= value <= high
    options = [o.id for o in item.options]
    if item.type == "single":
        return value in options
    if item.type == "multi":
        return isinstance(value, list) and 0 < len(value) <= len(options) and set(value) <= set(options)
    return (
        isinstance(value, str)
        and 0 < len(value) <= item.max_length
        and not any(ord(c) < 32 and c not in "\n\t" for c in value)
    )


def _snapshot(engine: Engine) -> dict[str, tuple[Any, bool]]:
    return {r.token_mac: (r.answers, r.complete) for r in responses(engine)}


@FUZZ
@given(data=st.data())
def test_random_form_posts(form_client: TestClient, survey: Survey, engine: Engine, data: st.DataObject) -> None:
    instrument = survey.instrument
    fields = data.draw(form_fields(instrument))
    if data.draw(st.booleans()):  # a whole valid survey with random fields added or repeated: nearer the edge
        variant = data.draw(st.integers(0, 20))
        page = data.draw(st.integers(0, len(instrument.sections)))  # 0: the whole survey in one post
        if page:
            control = {"page": page, "action": data.draw(st.sampled_from(["next", "back", "finish"]))}
            chosen = as_fields(answers_for(instrument.sections[page - 1].items, variant), **control)
        else:
            chosen = as_fields(all_answers(instrument, variant))
        valid = [(k, v) for k, vs in chosen.items() for v in _listed(vs)]
        fields = valid + fields if data.draw(st.booleans()) else fields + valid
    content_type = data.draw(st.sampled_from(CONTENT_TYPES))
    if content_type.startswith("multipart") and "boundary=xyz" in content_type:
        body = "".join(f'--xyz\r\nContent-Disposition: form-data; name="{n}"\r\n\r\n{v}\r\n' for n, v in fields)
        raw = (body + "--xyz--\r\n").encode("utf-8", "surrogatepass")
    else:
        raw = urlencode(fields).encode()
    if data.draw(st.booleans()):
        raw = (
            data.draw(st.binary(max_size=300)) if data.draw(st.booleans()) else raw + data.draw(st.binary(max_size=50))
        )
    token = survey.tokens[data.draw(st.integers(0, len(survey.tokens) - 1))]
    query = data.draw(st.sampled_from(["", "?lang=en", "?page=3", "?lang=xx&page=99"]))

    before = _snapshot(engine)
    response = form_client.post(
        f"/s/{token}{query}", content=raw, headers={"content-type": content_type}, follow_redirects=False
    )
    assert response.status_code < 500, response.text[:500]
    after = _snapshot(engine)
    if response.status_code not in (200, 303):
        assert after == before, response.status_code  # a refused post stores nothing
    by_id = {i.id: i for i in instrument.items}
    for answers, _complete in after.values():
        for item_id, value in answers.items():
            assert item_id in by_id and _valid(by_id[item_id], value), (item_id, value)


@FUZZ
@given(
    token=st.text(max_size=80),
    body=st.binary(max_size=200),
    method=st.sampled_from(["GET", "POST"]),
)
@example(token=".", body=b"", method="GET")
def test_random_links(
    form_client: TestClient, survey: Survey, engine: Engine, token: str, body: bytes, method: str
) -> None:
    form_client.app.state.link_misses.reset()  # this test is about answers, not about the throttle
    before = _snapshot(engine)
    response = form_client.request(
        method,
        "/s/" + quote(token, safe="/"),
        content=body if method == "POST" else None,
        headers={"content-type": "application/x-www-form-urlencoded"},
        follow_redirects=False,
    )
    assert response.status_code < 500
    # 307: a token of dot segments ("." or "a/..") is resolved by the client, as by a browser, into "/s/", which
    # the router redirects to "/s" without reading the link.
    assert response.status_code in (200, 303, 307, 404, 405, 409, 410, 413, 415, 422, 429)
    assert _snapshot(engine) == before or response.status_code in (200, 303)
