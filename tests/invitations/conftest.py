"""Fixtures for mail: an HR key and the org tree, a draft wave with participants, a real SMTP server."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from tests.factories import create_wave, invite, make_key, put_tree
from tests.mail import SmtpServer


@dataclass
class Draft:
    wave_id: int
    emails: list[str]
    hr: dict[str, str]


@pytest.fixture
def hr(app: FastAPI, client: TestClient) -> dict[str, str]:
    headers = make_key(app, "hr", "HR Mail")
    put_tree(client, headers)
    return headers


@pytest.fixture
def draft(client: TestClient, hr: dict[str, str]) -> Draft:
    """A draft career-safety wave with 12 participants in two teams."""
    wave = create_wave(client, hr)
    return Draft(wave["id"], invite(client, hr, wave["id"], per_team=6, teams=["team1", "team2"]), hr)


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    with SmtpServer() as server:
        yield server
