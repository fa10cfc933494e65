"""Mail as a participant gets it: reading ``.eml`` files and a real SMTP server (aiosmtpd, in-process)."""

from __future__ import annotations

import re
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.parser import BytesParser
from email.policy import default
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from fastapi import FastAPI

from service.invitations.delivery import Pass, deliver
from service.invitations.sender import FileSender, Sender

LINK = re.compile(r"(https?://[^\s]+)/s/([A-Za-z0-9_-]{43})\?lang=(nl|en)")


@dataclass(frozen=True)
class Mail:
    """One message: to whom, what kind, the link it carries, and both bodies."""

    to: str
    subject: str
    kind: str  # invitation or reminder
    token: str
    language: str
    text: str
    html: str
    path: Path | None = None


def parse(data: bytes, path: Path | None = None) -> Mail:
    message = BytesParser(policy=default).parsebytes(data)
    assert isinstance(message, EmailMessage)
    text_part, html_part = message.get_body(("plain",)), message.get_body(("html",))
    assert text_part is not None and html_part is not None, "a mail has a text and an HTML body"
    text, html = text_part.get_content(), html_part.get_content()
    [(_base, token, language)] = set(LINK.findall(text))  # one link, the same wherever it appears
    assert set(LINK.findall(html)) == {(_base, token, language)}
    subject = str(message["Subject"])
    kind = "reminder" if subject.startswith(("Herinnering", "Reminder")) else "invitation"
    return Mail(str(message["To"]), subject, kind, token, language, text, html, path)


def outbox(folder: Path) -> list[Mail]:
    """Every message in an outbox folder, oldest first."""
    return [parse(path.read_bytes(), path) for path in sorted(folder.glob("*.eml"))]


def tokens_for(mails: Iterable[Mail], emails: list[str], kind: str = "invitation") -> list[str]:
    """Each address's link token, in the order of ``emails``; each address got exactly one message of ``kind``."""
    got: dict[str, list[str]] = {}
    for mail in mails:
        if mail.kind == kind:
            got.setdefault(mail.to, []).append(mail.token)
    assert {e: len(got.get(e, [])) for e in emails} == dict.fromkeys(emails, 1), "one message per participant"
    return [got[e][0] for e in emails]


def run_mail_job(app: FastAPI, sender: Sender, **options: Any) -> Pass:
    """The mail job of ``app``'s service, run once here (as the scheduler would) with ``sender``."""
    state = app.state
    return deliver(state.sessionmaker, state.settings, state.secret, state.instruments, sender=sender, **options)


def mail_links(app: FastAPI, emails: list[str]) -> list[str]:
    """Run the mail job into a fresh outbox and return the link tokens mailed to ``emails``, in their order."""
    folder = Path(tempfile.mkdtemp(prefix="outbox-", dir=app.state.settings.data_dir))
    run_mail_job(app, FileSender(folder))
    return tokens_for(outbox(folder), emails)


def wait_for_mail(folder: Path, emails: list[str], timeout: float = 30.0) -> list[str]:
    """Tokens of ``emails`` once a running service has mailed them all into ``folder``."""
    deadline = time.monotonic() + timeout
    while True:
        mails = outbox(folder) if folder.exists() else []
        if {m.to for m in mails if m.kind == "invitation"} >= set(emails) or time.monotonic() > deadline:
            return tokens_for(mails, emails)
        time.sleep(0.1)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Received:
    """What the SMTP server accepted: the envelope and the message, and whether it came over TLS."""

    sender: str
    recipients: list[str]
    mail: Mail
    tls: bool
    login: str | None


@dataclass
class SmtpServer:
    """aiosmtpd on a free 127.0.0.1 port. ``refuse(address)`` may answer a code for a recipient (e.g. "550 ...")
    and ``on_data(n)`` runs before the n-th message is accepted (it may answer a code to refuse it)."""

    port: int = field(default_factory=free_port)
    refuse: Callable[[str], str | None] = lambda _address: None
    on_data: Callable[[int], str | None] = lambda _n: None
    controller_options: dict[str, Any] = field(default_factory=dict)
    received: list[Received] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _controller: Controller | None = None

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: Any) -> str:
        answer = self.refuse(address)
        if answer is not None:
            return answer
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        with self._lock:
            answer = self.on_data(len(self.received) + 1)
            if answer is not None:
                return answer
            auth = session.auth_data  # aiosmtpd's LoginPassword when the client logged in
            login = auth.login.decode() if auth is not None else None
            self.received.append(
                Received(
                    envelope.mail_from,
                    list(envelope.rcpt_tos),
                    parse(envelope.original_content or envelope.content),
                    session.ssl is not None or server.transport.get_extra_info("ssl_object") is not None,
                    login,
                )
            )
        return "250 Message accepted for delivery"

    def start(self) -> SmtpServer:
        self._controller = Controller(self, hostname="127.0.0.1", port=self.port, **self.controller_options)
        self._controller.start()
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def __enter__(self) -> SmtpServer:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def mails(self) -> list[Mail]:
        with self._lock:
            return [r.mail for r in self.received]
