"""Behind a reverse proxy: the real client and scheme come from trusted proxies only (PEIL_TRUSTED_PROXIES),
and the link-guessing throttle counts per real client."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import ValidationError

from service.app import create_app
from service.clients import TrustedProxies, parse_networks
from service.config import Settings
from service.forms.throttle import LinkMisses
from tests.forms.conftest import Survey

PROXIES = TrustedProxies(parse_networks(["10.0.0.1", "172.16.0.0/12", "::1"]))


@pytest.mark.parametrize(
    ("peer", "forwarded_for", "proto", "expected"),
    [
        # No trusted proxy in front: the headers are the client's own words and change nothing.
        ("203.0.113.9", ["198.51.100.1"], "https", ("203.0.113.9", None)),
        ("203.0.113.9", [], None, ("203.0.113.9", None)),
        # One trusted proxy: the address it appended (the right-most) is the client; what the client sent
        # itself (left of it) is ignored.
        ("10.0.0.1", ["6.6.6.6, 198.51.100.1"], "https", ("198.51.100.1", "https")),
        ("10.0.0.1", ["6.6.6.6", "198.51.100.1"], "http", ("198.51.100.1", "http")),
        # A chain of trusted proxies: the right-most address that is not one of them.
        ("10.0.0.1", ["198.51.100.1, 172.20.1.2"], "https", ("198.51.100.1", "https")),
        ("10.0.0.1", ["6.6.6.6, 198.51.100.1, 172.20.1.2, 10.0.0.1"], None, ("198.51.100.1", None)),
        # Ports and brackets as proxies write them; IPv6; an IPv4-mapped peer.
        ("10.0.0.1", ["198.51.100.1:4711"], None, ("198.51.100.1", None)),
        ("::1", ["[2001:db8::7]:443"], "HTTPS", ("2001:db8::7", "https")),
        ("::ffff:10.0.0.1", ["198.51.100.1"], None, ("198.51.100.1", None)),
        # Garbage from the trusted side: keep the last trusted hop rather than a forged string.
        ("10.0.0.1", ["not-an-address"], "gopher", ("10.0.0.1", None)),
        ("10.0.0.1", ["evil, 172.20.1.2"], None, ("172.20.1.2", None)),
        # A trusted proxy that forwarded nothing is itself the client.
        ("10.0.0.1", [], None, ("10.0.0.1", None)),
    ],
)
def test_resolve(peer: str, forwarded_for: list[str], proto: str | None, expected: tuple[str, str | None]) -> None:
    assert PROXIES.resolve(peer, forwarded_for, proto) == expected


def test_setting_is_a_list_of_addresses_or_cidrs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PEIL_TRUSTED_PROXIES", "10.0.0.1, 192.168.0.0/16 ::1")
    assert Settings().trusted_proxies == ["10.0.0.1", "192.168.0.0/16", "::1"]
    assert Settings().proxies().trusts(parse_networks(["192.168.4.4"])[0].network_address)
    monkeypatch.setenv("PEIL_TRUSTED_PROXIES", "")
    assert Settings().trusted_proxies == []  # the default: nobody's headers are believed
    monkeypatch.setenv("PEIL_TRUSTED_PROXIES", "10.0.0.1,proxy.example")
    with pytest.raises(ValidationError, match=r"proxy\.example"):
        Settings()


@pytest.fixture
def proxied(app: FastAPI, settings: Settings, form_client: TestClient) -> Iterator[FastAPI]:
    """The service as deployed behind the proxy 10.0.0.1, on the test database, with a strict throttle."""
    behind = create_app(settings.model_copy(update={"trusted_proxies": ["10.0.0.1"]}), scheduler=False)
    behind.state.link_misses = LinkMisses(limit=4, window=60)
    yield behind
    behind.state.engine.dispose()


def _via(app: FastAPI, peer: str) -> TestClient:
    return TestClient(app, client=(peer, 40000), raise_server_exceptions=False)


def test_throttle_counts_each_client_behind_the_proxy(proxied: FastAPI, survey: Survey) -> None:
    with _via(proxied, "10.0.0.1") as proxy:
        guesser = {"x-forwarded-for": "198.51.100.1"}
        for n in range(4):
            assert proxy.get(f"/s/guess-{n}", headers=guesser).status_code == 404
        assert proxy.get("/s/guess-5", headers=guesser).status_code == 429
        # Everyone else behind the same proxy is not locked out with the guesser.
        colleague = {"x-forwarded-for": "198.51.100.2"}
        assert proxy.get(survey.url(), headers=colleague).status_code == 200
        assert proxy.get("/s/guess-6", headers=colleague).status_code == 404
        # The guesser cannot escape by writing another address to the left of the proxy's.
        assert proxy.get("/s/guess-7", headers={"x-forwarded-for": "1.2.3.4, 198.51.100.1"}).status_code == 429


def test_spoofed_headers_from_an_untrusted_peer_change_nothing(proxied: FastAPI, survey: Survey) -> None:
    with _via(proxied, "203.0.113.9") as direct:
        for n in range(4):
            spoofed = {"x-forwarded-for": f"198.51.100.{n}", "x-forwarded-proto": "https"}
            response = direct.get(f"/s/guess-{n}", headers=spoofed)
            assert response.status_code == 404
            assert "strict-transport-security" not in response.headers  # still plain http
        assert direct.get("/s/guess-5", headers={"x-forwarded-for": "198.51.100.200"}).status_code == 429


def test_scheme_from_a_trusted_proxy(proxied: FastAPI, survey: Survey) -> None:
    with _via(proxied, "10.0.0.1") as proxy:
        secure = proxy.get("/healthz", headers={"x-forwarded-for": "198.51.100.1", "x-forwarded-proto": "https"})
        assert secure.headers["strict-transport-security"] == "max-age=31536000"
        plain = proxy.get("/healthz", headers={"x-forwarded-for": "198.51.100.1"})
        assert "strict-transport-security" not in plain.headers
