"""Access logs never show a link token: the filter, and a live `peil serve` with its logging."""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from alembic import command

from service import links
from service.logs import Redact, log_config
from tests.conftest import TEST_SECRET, alembic_config


def test_filter_redacts_uvicorn_access_records() -> None:
    token = links.new_token()
    record = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        __file__,
        1,
        '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5000", "GET", f"/s/{token}?page=2&lang=en", "1.1", 200),
        None,
    )
    assert Redact().filter(record)
    line = record.getMessage()
    assert token not in line and '"GET /s/…?page=2&lang=en HTTP/1.1" 200' in line
    assert all("redact" in handler.get("filters", []) for handler in log_config()["handlers"].values())


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_live_server_logs_no_token(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'peil.db'}"
    command.upgrade(alembic_config(url), "head")
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PEIL_")}
    env.update(PEIL_DATABASE_URL=url, PEIL_SECRET_KEY=TEST_SECRET, PEIL_ENV="test", PEIL_DATA_DIR=str(tmp_path))
    peil = Path(sys.executable).with_name("peil")
    log = tmp_path / "server.log"
    with log.open("wb") as out:
        server = subprocess.Popen(
            [str(peil), "serve", "--host", "127.0.0.1", "--port", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )
        try:
            base = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 30
            while True:
                try:
                    if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if server.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"peil serve did not start: {log.read_text()[-2000:]}")
                time.sleep(0.2)
            token = links.new_token()
            assert httpx.get(f"{base}/s/{token}?lang=en", timeout=5).status_code == 404
            assert httpx.post(f"{base}/s/{token}", data={"_page": "1"}, timeout=5).status_code == 404
            time.sleep(0.3)
        finally:
            server.terminate()
            server.wait(timeout=10)
    output = log.read_text()
    assert token not in output
    assert '"GET /s/…?lang=en HTTP/1.1" 404' in output and '"POST /s/… HTTP/1.1" 404' in output


def test_filter_withholds_exception_text() -> None:
    """An exception is logged by its kinds and frames: its message, and those of its causes, never."""
    answer = "Mijn manager luistert nooit"
    try:
        try:
            raise ValueError(f"cannot store {answer!r}")
        except ValueError as inner:
            raise RuntimeError(f"while saving {answer}") from inner
    except RuntimeError as exc:
        caught = exc
    record = logging.LogRecord(
        "peil", logging.ERROR, __file__, 1, "save failed: %s", (caught,), (type(caught), caught, caught.__traceback__)
    )
    assert Redact().filter(record)
    line = logging.Formatter().format(record)
    assert answer not in line
    assert "save failed: builtins.RuntimeError" in line
    assert "builtins.ValueError (message withheld)" in line and "direct cause" in line
    assert "test_filter_withholds_exception_text" in line  # where it happened is kept
