"""A real `peil serve` in its own process group (so SIGKILL takes master and workers), and HR's setup over HTTP.

The resilience tests treat the service as a user would: a subprocess on a free 127.0.0.1 port, started with
`peil serve --workers 2`, talked to with httpx. What was stored is read straight from the database, and a
response is found through ``token_mac`` (the test knows the secret and the tokens, nothing else does).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import Engine, create_engine, select
from sqlalchemy.orm import Session

from service import links
from service.db import transaction
from service.keys import repository
from service.models import Response
from tests.conftest import TEST_SECRET
from tests.factories import small_tree, wave_body
from tests.forms.answers import as_fields
from tests.mail import wait_for_mail

PEIL = Path(sys.executable).with_name("peil")
START_TIMEOUT = 30.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class LiveServer:
    """`peil serve` on ``database_url``; ``start`` and ``kill`` may alternate (same port, same database)."""

    database_url: str
    tmp: Path
    workers: int = 2
    port: int = field(default_factory=free_port)
    extra_env: dict[str, str] = field(default_factory=dict)
    mail_folder: Path | None = None
    process: subprocess.Popen[bytes] | None = None
    starts: int = 0

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def outbox(self) -> Path:
        """Where the service mails its participants (PEIL_MAIL_URL, a folder; replicas of one service share one)."""
        return self.mail_folder or self.tmp / "outbox"

    @property
    def log(self) -> Path:
        return self.tmp / f"server-{self.starts}.log"

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PEIL_")}
        env.update(
            PEIL_DATABASE_URL=self.database_url,
            PEIL_SECRET_KEY=TEST_SECRET,
            PEIL_ENV="test",
            PEIL_DATA_DIR=str(self.tmp),
            PEIL_BASE_URL=self.base,
            PEIL_MAIL_URL=self.outbox.as_uri(),
            PEIL_MAIL_RATE="1000",  # mail goes to the outbox folder, at once
            PEIL_MAIL_INTERVAL_SECONDS="0.2",
            **self.extra_env,
        )
        return env

    def start(self) -> None:
        self.starts += 1
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(
                [str(PEIL), "serve", "--host", "127.0.0.1", "--port", str(self.port), "--workers", str(self.workers)],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=self.env(),
                start_new_session=True,  # its own process group: the workers die with the master
            )
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            try:
                if httpx.get(f"{self.base}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"peil serve did not start: {self.log.read_text()[-3000:]}")
            time.sleep(0.1)

    def _signal_group(self, sig: int) -> None:
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, sig)

    def kill(self) -> None:
        """SIGKILL the master and every worker at once: no shutdown, no flush, no goodbye."""
        self._signal_group(signal.SIGKILL)
        if self.process is not None:
            self.process.wait(timeout=10)
        self._wait_for_group_gone()

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            self._signal_group(signal.SIGKILL)
            return
        self._signal_group(signal.SIGTERM)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._signal_group(signal.SIGKILL)
            self.process.wait(timeout=10)
        self._wait_for_group_gone()

    def _wait_for_group_gone(self) -> None:
        """Until no process of the group is left (workers are reaped by init after the master dies)."""
        if self.process is None:
            return
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                os.killpg(self.process.pid, 0)
            except ProcessLookupError:
                return
            self._signal_group(signal.SIGKILL)
            time.sleep(0.05)

    def logs(self) -> str:
        return "\n".join((self.tmp / f"server-{n}.log").read_text(errors="replace") for n in range(1, self.starts + 1))


@dataclass
class Setup:
    """A wave and its participants' links (from their mail)."""

    wave_id: int
    tokens: list[str]
    hr: dict[str, str]


def hr_key(engine: Engine, name: str = "hr-resilience") -> dict[str, str]:
    from sqlalchemy.orm import sessionmaker

    with transaction(sessionmaker(engine)) as session:
        _row, key = repository.create(session, role="hr", name=name)
    return {"Authorization": f"Bearer {key}"}


def setup_wave(server: LiveServer, hr: dict[str, str], invitations: int) -> Setup:
    """As HR over the API: the small tree, a career-safety wave, ``invitations`` participants spread over 7 teams,
    opened; their links as the service mailed them (into its outbox folder)."""
    with httpx.Client(base_url=server.base, headers=hr, timeout=60) as api:
        assert api.put("/api/v1/units", json={"units": small_tree()}).status_code == 200
        created = api.post("/api/v1/waves", json=wave_body())
        assert created.status_code == 201, created.text
        wave_id = created.json()["id"]
        rows = [
            {
                "unit_key": f"team{1 + i % 7}",
                "email": f"w{wave_id}-p{i}@example.com",
                "attributes": {"tenure_band": ["<1", "1-3", "3+"][i % 3], "location": ["A", "B"][i % 2]},
            }
            for i in range(invitations)
        ]
        uploaded = api.post(f"/api/v1/waves/{wave_id}/participants", json={"participants": rows})
        assert uploaded.status_code == 201, uploaded.text
        assert api.post(f"/api/v1/waves/{wave_id}/open").status_code == 200
    tokens = wait_for_mail(server.outbox, [row["email"] for row in rows])
    return Setup(wave_id, tokens, hr)


def wait_closed(base: str, hr: dict[str, str], wave_id: int, timeout: float = 60.0) -> dict[str, Any]:
    """The wave as HR sees it once its close job has marked it closed (the server's worker runs the job)."""
    deadline = time.monotonic() + timeout
    while True:
        wave: dict[str, Any] = httpx.get(f"{base}/api/v1/waves/{wave_id}", headers=hr, timeout=30).json()
        if wave["state"] == "closed":
            return wave
        if time.monotonic() > deadline:
            raise AssertionError(f"wave {wave_id} did not close within {timeout} s: {wave}")
        time.sleep(0.1)


def mac(token: str) -> str:
    return links.token_mac(TEST_SECRET.encode(), token)


def stored(engine: Engine, wave_id: int) -> dict[str, Response]:
    """The wave's responses by token_mac."""
    with Session(engine) as session:
        return {r.token_mac: r for r in session.scalars(select(Response).where(Response.wave_id == wave_id))}


def engine_for(url: str) -> Engine:
    return create_engine(url, pool_pre_ping=True)


def form(answers: dict[str, Any]) -> dict[str, Any]:
    """The whole survey as one form post (the form's no-``_page`` mode)."""
    return as_fields(answers, lang="en")
