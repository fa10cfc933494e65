"""Signing in to the HR pages: the cookie's flags, the key kept out of URLs and pages, form tokens on every POST,
throttled wrong keys, eight idle hours, signing out on the server, revoked keys."""

from __future__ import annotations

from datetime import timedelta

from fastapi import FastAPI, Response
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from service.config import Settings
from service.db import transaction
from service.forms.throttle import LinkMisses
from service.hr import session as signin
from service.hr.endpoints import router
from service.keys import repository
from service.models import AuditEntry, HrSession, Unit
from service.models.base import utcnow
from tests.hr.conftest import form_token, new_key, sign_in


def test_sign_in_sets_a_strict_session_cookie_and_keeps_the_key_out_of_sight(app: FastAPI, pages: TestClient) -> None:
    key = new_key(app, "hr")
    form = pages.get("/hr/login?next=/hr/waves")
    assert form.status_code == 200 and 'type="password"' in form.text
    login_cookie = form.headers["set-cookie"]
    assert "HttpOnly" in login_cookie and "SameSite=strict" in login_cookie and "Path=/hr" in login_cookie
    done = pages.post(
        "/hr/login",
        data={"key": key, "_csrf": form_token(form.text), "next": "/hr/waves", "lang": "en"},
        follow_redirects=False,
    )
    assert done.status_code == 303 and done.headers["location"] == "/hr/waves"
    cookie = next(c for c in done.headers.get_list("set-cookie") if c.startswith(f"{signin.COOKIE}="))
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/hr" in cookie
    assert "Secure" not in cookie  # PEIL_BASE_URL is http here
    assert key not in cookie
    page = pages.get("/hr/waves")
    assert page.status_code == 200 and "Signed in as hr on the pages (HR)" in page.text
    assert key not in page.text and key not in str(page.url)
    with app.state.sessionmaker() as session:
        stored = session.scalars(select(HrSession)).all()
        assert len(stored) == 1 and stored[0].lang == "en"
        value = pages.cookies.get(signin.COOKIE)
        assert value is not None and stored[0].id not in value  # the database keeps a hash of the token
        assert session.scalar(select(AuditEntry.action).where(AuditEntry.action == "hr.signed_in"))


def test_cookie_is_secure_when_the_base_url_is_https() -> None:
    response = Response()
    settings = Settings(base_url="https://peil.example.org")
    signin.set_session_cookie(response, settings, b"s" * 32, "token")
    assert all("Secure" in c for c in response.headers.getlist("set-cookie"))


def test_pages_need_a_session(pages: TestClient) -> None:
    response = pages.get("/hr/waves/1?by=location", follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/hr/login?next=%2Fhr%2Fwaves%2F1%3Fby%3Dlocation"
    forged = pages.get("/hr/waves", cookies={signin.COOKIE: "abc.def"}, follow_redirects=False)
    assert forged.status_code == 303
    assert pages.get("/hr", follow_redirects=False).headers["location"] == "/hr/waves"


def test_wrong_keys_are_refused_then_throttled(app: FastAPI, pages: TestClient) -> None:
    app.state.login_misses = LinkMisses(limit=4, window=60)
    admin = new_key(app, "admin")  # admin keys manage keys; they read no results
    for attempt in ("peil_not-a-key", admin, "", "peil_still-not"):
        refused = sign_in(pages, attempt)
        assert refused.status_code == 401, attempt
        assert "cannot sign in here" in refused.text or "kan zich hier niet aanmelden" in refused.text
        assert not attempt or attempt not in refused.text
    assert signin.COOKIE not in pages.cookies
    throttled = sign_in(pages, new_key(app, "hr"))  # even a good key waits until the window passes
    assert throttled.status_code == 429 and int(throttled.headers["retry-after"]) >= 1


def test_every_post_needs_its_form_token(app: FastAPI, pages: TestClient) -> None:
    key = new_key(app, "dashboard")
    pages.get("/hr/login")
    no_token = pages.post("/hr/login", data={"key": key, "_csrf": "forged"}, follow_redirects=False)
    assert no_token.status_code == 403 and signin.COOKIE not in pages.cookies
    assert sign_in(pages, key).status_code == 303
    for path, data in (("/hr/logout", {}), ("/hr/lang", {"lang": "en"})):
        assert pages.post(path, data={**data, "_csrf": "forged"}).status_code == 403, path
        assert pages.post(path, data=data).status_code == 403, path
    assert pages.get("/hr/waves").status_code == 200  # still signed in


def test_sign_out_ends_the_session_on_the_server(app: FastAPI, pages: TestClient) -> None:
    assert sign_in(pages, new_key(app, "hr")).status_code == 303
    stolen = pages.cookies.get(signin.COOKIE)
    waves = pages.get("/hr/waves")
    out = pages.post("/hr/logout", data={"_csrf": form_token(waves.text)}, follow_redirects=False)
    assert out.status_code == 303 and out.headers["location"] == "/hr/login?bye=1"
    with app.state.sessionmaker() as session:
        assert session.scalars(select(HrSession)).all() == []
    pages.cookies.clear()
    replayed = pages.get("/hr/waves", cookies={signin.COOKIE: stolen}, follow_redirects=False)
    assert replayed.status_code == 303 and replayed.headers["location"].startswith("/hr/login")


def test_a_session_ends_after_eight_idle_hours_and_with_its_key(app: FastAPI, pages: TestClient) -> None:
    key = new_key(app, "hr")
    assert sign_in(pages, key).status_code == 303
    with transaction(app.state.sessionmaker) as session:
        session.execute(update(HrSession).values(last_seen_at=utcnow() - timedelta(hours=7, minutes=59)))
    assert pages.get("/hr/waves").status_code == 200  # seen now: eight more hours
    with transaction(app.state.sessionmaker) as session:
        session.execute(update(HrSession).values(last_seen_at=utcnow() - timedelta(hours=8, minutes=1)))
    assert pages.get("/hr/waves", follow_redirects=False).status_code == 303

    assert sign_in(pages, key).status_code == 303
    with transaction(app.state.sessionmaker) as session:
        row = repository.find_active(session, key)
        assert row is not None
        repository.revoke(session, row.id)
    assert pages.get("/hr/waves", follow_redirects=False).status_code == 303


def test_sign_in_goes_back_to_pages_of_its_own_only(app: FastAPI, pages: TestClient) -> None:
    key = new_key(app, "hr")
    for target, expected in (
        ("/hr/waves/7", "/hr/waves/7"),
        ("//evil.example/hr/", "/hr/waves"),
        ("https://evil.example/", "/hr/waves"),
        ("/api/v1/units", "/hr/waves"),
    ):
        pages.cookies.clear()
        assert sign_in(pages, key, next_page=target).headers["location"] == expected, target


def test_language_is_chosen_by_a_form_and_kept(app: FastAPI, pages: TestClient) -> None:
    assert "Meld je aan" in pages.get("/hr/login").text  # Dutch by default
    assert "Sign in with your Peil API key" in pages.get("/hr/login?lang=en").text
    sign_in(pages, new_key(app, "hr"), lang="nl")
    waves = pages.get("/hr/waves")
    assert '<html lang="nl">' in waves.text
    switched = pages.post(
        "/hr/lang", data={"_csrf": form_token(waves.text), "lang": "en", "next": "/hr/waves"}, follow_redirects=False
    )
    assert switched.status_code == 303 and switched.headers["location"] == "/hr/waves"
    assert '<html lang="en">' in pages.get("/hr/waves").text


def _page_routes() -> set[tuple[str, str]]:
    return {(method, route.path) for route in router.routes for method in route.methods}  # type: ignore[attr-defined]


# Every page route: who gets in. The sign-in form is open to all; every other page needs a session of an
# hr, dashboard or manager key (admin keys cannot sign in, see above).
OPEN_PAGES = {("GET", "/hr/login"), ("POST", "/hr/login"), ("GET", "/hr"), ("GET", "/hr/")}


def test_every_page_route_needs_a_session(app: FastAPI, pages: TestClient) -> None:
    routes = _page_routes()
    assert ("GET", "/hr/waves/{wave_id}/units/{unit_key}") in routes and len(routes) == 11
    for method, path in sorted(routes - OPEN_PAGES):
        url = path.format(wave_id=1, unit_key="org")
        response = pages.request(method, url, follow_redirects=False)
        assert response.status_code == 303 and response.headers["location"].startswith("/hr/login"), (method, path)
    with transaction(app.state.sessionmaker) as session:
        session.add(Unit(key="lone-unit", name="Lone unit"))
    for role in ("hr", "dashboard", "manager"):
        pages.cookies.clear()
        assert sign_in(pages, new_key(app, role, "lone-unit" if role == "manager" else None)).status_code == 303
        for method, path in sorted(routes - OPEN_PAGES):
            if method == "POST":
                continue  # the forms: tested above with and without their token
            response = pages.get(path.format(wave_id=999999, unit_key="org"), follow_redirects=False)
            assert response.status_code in (200, 404), (role, path, response.status_code)
