"""Where mail goes: an SMTP server (``smtp://``, STARTTLS when offered; ``smtps://``, TLS from the start) or a
folder (``file:///folder``, one RFC 5322 ``.eml`` file per message), and what a refusal means.

Two kinds of trouble are told apart, because they are handled apart: ``ServerUnavailable`` (the server is down,
refuses the connection, the login or the sender address) is nobody's message's fault, so the job pauses and
every message waits; ``Refused`` is the server's answer about one message (4xx: later; 5xx: never). Neither
carries the server's text, which may quote the address.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import smtplib
import ssl
from email.message import EmailMessage
from email.policy import SMTP
from pathlib import Path
from typing import Protocol
from urllib.parse import unquote, urlsplit

from service.models.base import utcnow

TIMEOUT_SECONDS = 20.0  # per SMTP command; well inside the mail lock's lease


class ServerUnavailable(Exception):
    """The mail server cannot take mail now; the message is not at fault and is sent later."""


class Refused(Exception):
    """The server refused one message: ``permanent`` for a 5xx (never sent), else a 4xx (sent later)."""

    def __init__(self, code: int) -> None:
        super().__init__(f"refused with SMTP {code}")
        self.code = code
        self.permanent = code >= 500


class Sender(Protocol):
    def send(self, message: EmailMessage, label: str) -> None:
        """Hand ``message`` over; returns once the target has accepted it. ``label`` names a file, no more."""

    def close(self) -> None: ...


def open_sender(url: str, *, tls: ssl.SSLContext | None = None) -> Sender:
    """The sender for a ``PEIL_MAIL_URL``; nothing is connected before the first message."""
    parts = urlsplit(url)
    if parts.scheme == "file":
        return FileSender(folder_of(url))
    if parts.scheme in ("smtp", "smtps"):
        return SmtpSender(url, tls=tls)
    raise ValueError("PEIL_MAIL_URL must be smtp://user:password@host:port, smtps://... or file:///folder")


def folder_of(url: str) -> Path:
    parts = urlsplit(url)
    if parts.netloc not in ("", "localhost") or not parts.path.startswith("/"):
        raise ValueError("a file:// mail target names an absolute folder: file:///srv/peil/outbox")
    return Path(unquote(parts.path))


def check_target(url: str, *, tls: ssl.SSLContext | None = None) -> None:
    """Raise ``ServerUnavailable`` (saying why, without the password) unless mail can be handed to ``url`` now."""
    if urlsplit(url).scheme == "file":
        folder = folder_of(url)
        try:
            folder.mkdir(parents=True, exist_ok=True)
            probe = folder / f".peil-probe-{secrets.token_hex(4)}"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as exc:
            raise ServerUnavailable(f"cannot write mail to {folder}: {exc.strerror or type(exc).__name__}") from exc
        return
    sender = SmtpSender(url, tls=tls)
    try:
        sender.connect().noop()
    finally:
        sender.close()


class FileSender:
    """Writes each message to ``folder`` as an ``.eml`` file, whole or not at all (written aside, then renamed)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def send(self, message: EmailMessage, label: str) -> None:
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            name = f"{utcnow():%Y%m%dT%H%M%S%f}-{label}-{secrets.token_hex(4)}.eml"
            partial = self.folder / f".{name}.partial"
            partial.write_bytes(message.as_bytes(policy=SMTP))
            os.replace(partial, self.folder / name)
        except OSError as exc:
            raise ServerUnavailable(
                f"cannot write mail to {self.folder}: {exc.strerror or type(exc).__name__}"
            ) from exc

    def close(self) -> None:
        return None


class SmtpSender:
    """One SMTP connection, opened on the first message and again after the server drops it."""

    def __init__(self, url: str, *, tls: ssl.SSLContext | None = None) -> None:
        parts = urlsplit(url)
        self.implicit_tls = parts.scheme == "smtps"
        self.host = parts.hostname or "localhost"
        self.port = parts.port or (465 if self.implicit_tls else 25)
        self.user = unquote(parts.username) if parts.username else None
        self.password = unquote(parts.password or "")
        self.tls = tls or ssl.create_default_context()
        self._smtp: smtplib.SMTP | None = None

    @property
    def where(self) -> str:
        return f"{self.host}:{self.port}"

    def connect(self) -> smtplib.SMTP:
        """Connect, greet, STARTTLS when offered (never a password in clear), log in when a user is given."""
        smtp: smtplib.SMTP | None = None
        try:
            if self.implicit_tls:
                smtp = smtplib.SMTP_SSL(self.host, self.port, timeout=TIMEOUT_SECONDS, context=self.tls)
            else:
                smtp = smtplib.SMTP(self.host, self.port, timeout=TIMEOUT_SECONDS)
            smtp.ehlo()
            encrypted = self.implicit_tls
            if not encrypted and smtp.has_extn("starttls"):
                smtp.starttls(context=self.tls)
                smtp.ehlo()
                encrypted = True
            if self.user is not None:
                if not encrypted:
                    raise ServerUnavailable(f"the mail server {self.where} offers no STARTTLS: no password in clear")
                smtp.login(self.user, self.password)
        except ServerUnavailable:
            _quietly_close(smtp)
            raise
        except (smtplib.SMTPException, OSError) as exc:
            _quietly_close(smtp)
            raise ServerUnavailable(f"cannot use the mail server {self.where}: {_why(exc)}") from None
        return smtp

    def send(self, message: EmailMessage, label: str) -> None:
        if self._smtp is None:
            self._smtp = self.connect()
        try:
            self._smtp.send_message(message)
        except smtplib.SMTPRecipientsRefused as exc:
            code = next(iter(exc.recipients.values()))[0]
            raise self._refusal(code) from None
        except smtplib.SMTPDataError as exc:
            raise self._refusal(exc.smtp_code) from None
        except smtplib.SMTPSenderRefused as exc:
            self.close()
            raise ServerUnavailable(
                f"the mail server {self.where} refuses the sender address (SMTP {exc.smtp_code}): check PEIL_MAIL_FROM"
            ) from None
        except (smtplib.SMTPException, OSError) as exc:
            self.close()
            raise ServerUnavailable(f"the mail server {self.where} failed: {_why(exc)}") from None

    def _refusal(self, code: int) -> Exception:
        if code == 421:  # "service not available, closing the channel": the server's trouble, not the message's
            self.close()
            return ServerUnavailable(f"the mail server {self.where} is closing the connection (SMTP 421)")
        return Refused(code)

    def close(self) -> None:
        smtp, self._smtp = self._smtp, None
        if smtp is not None:
            try:
                smtp.quit()
            except (smtplib.SMTPException, OSError):
                _quietly_close(smtp)


def _quietly_close(smtp: smtplib.SMTP | None) -> None:
    if smtp is not None:
        with contextlib.suppress(OSError):
            smtp.close()


def _why(exc: BaseException) -> str:
    """What went wrong, without the server's text (it may quote an address) or any password."""
    if isinstance(exc, smtplib.SMTPResponseException):
        return f"{type(exc).__name__} (SMTP {exc.smtp_code})"
    if isinstance(exc, OSError) and exc.strerror:
        return f"{type(exc).__name__}: {exc.strerror}"
    return type(exc).__name__
