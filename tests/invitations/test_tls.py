"""The SMTP connection: STARTTLS whenever the server offers it, TLS from the start for smtps://, a login only over
TLS, and a start-up check that refuses to run production without a reachable mail target."""

from __future__ import annotations

import ipaddress
import ssl
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from typer.testing import CliRunner

from service.cli import app as cli
from service.config import get_settings
from service.invitations.sender import ServerUnavailable, SmtpSender, check_target
from service.models import PublishedInstrument
from tests.conftest import TEST_SECRET
from tests.factories import open_wave
from tests.invitations.conftest import Draft
from tests.mail import SmtpServer, free_port, run_mail_job, tokens_for


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (its file, and its key's)."""
    folder = tmp_path_factory.mktemp("tls")
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = folder / "cert.pem", folder / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_file, key_file


def _server_context(certificate: tuple[Path, Path]) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*certificate)
    return context


def _client_context(certificate: tuple[Path, Path]) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(certificate[0]))


def _accept_peil(_server: object, _session: object, _envelope: object, _mechanism: str, data: object) -> AuthResult:
    ok = isinstance(data, LoginPassword) and (data.login, data.password) == (b"peil", b"s3cret/pw")
    return AuthResult(success=ok, handled=False, auth_data=data)


@pytest.mark.parametrize("implicit", [False, True], ids=["starttls", "smtps"])
def test_mail_goes_over_tls_with_a_login(
    app: FastAPI, client: TestClient, draft: Draft, certificate: tuple[Path, Path], implicit: bool
) -> None:
    # (aiosmtpd counts only STARTTLS as TLS for AUTH; its implicit-TLS listener needs telling that it is one too)
    tls = (
        {"ssl_context": _server_context(certificate), "auth_require_tls": False}
        if implicit
        else {"tls_context": _server_context(certificate)}
    )
    options = {**tls, "authenticator": _accept_peil, "auth_required": True}
    open_wave(client, draft.hr, draft.wave_id)
    with SmtpServer(controller_options=options) as smtp:
        scheme = "smtps" if implicit else "smtp"
        url = f"{scheme}://peil:s3cret%2Fpw@127.0.0.1:{smtp.port}"
        done = run_mail_job(app, SmtpSender(url, tls=_client_context(certificate)))
        assert done.sent == 12
        assert all(r.tls and r.login == "peil" for r in smtp.received)
        tokens_for(smtp.mails(), draft.emails)


def test_no_password_goes_out_in_clear(app: FastAPI, client: TestClient, draft: Draft) -> None:
    open_wave(client, draft.hr, draft.wave_id)
    with SmtpServer() as smtp:  # offers no STARTTLS
        done = run_mail_job(app, SmtpSender(f"smtp://peil:pw@127.0.0.1:{smtp.port}"))
        assert done.sent == 0 and done.paused is not None and smtp.received == []
        with pytest.raises(ServerUnavailable, match="no STARTTLS") as refused:
            check_target(f"smtp://peil:pw@127.0.0.1:{smtp.port}")
        assert "pw" not in str(refused.value)


@pytest.fixture
def peil(settings, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[tuple[CliRunner, pytest.MonkeyPatch]]:
    """`peil serve` as production would start it, on the test database (only its start-up checks run here)."""
    monkeypatch.setenv("PEIL_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("PEIL_SECRET_KEY", TEST_SECRET)
    monkeypatch.setenv("PEIL_ENV", "production")
    monkeypatch.setenv("PEIL_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("PEIL_MAIL_URL", raising=False)
    get_settings.cache_clear()
    yield CliRunner(), monkeypatch
    get_settings.cache_clear()


def _published(app: FastAPI) -> int:
    with app.state.sessionmaker() as session:
        return session.scalar(select(func.count()).select_from(PublishedInstrument)) or 0


def test_production_will_not_start_without_a_reachable_mail_target(
    app: FastAPI, client: TestClient, peil: tuple[CliRunner, pytest.MonkeyPatch]
) -> None:
    runner, env = peil
    with app.state.sessionmaker() as session:  # start from a database where nothing was published yet
        session.query(PublishedInstrument).delete()
        session.commit()
    unset = runner.invoke(cli, ["serve", "--port", str(free_port())])
    assert unset.exit_code == 1 and "PEIL_MAIL_URL must be set in production" in unset.output

    env.setenv("PEIL_MAIL_URL", f"smtp://peil:hunter2pw@127.0.0.1:{free_port()}")  # nothing listens there
    get_settings.cache_clear()
    down = runner.invoke(cli, ["serve", "--port", str(free_port())])
    assert down.exit_code == 1 and "cannot start" in down.output and "ConnectionRefusedError" in down.output
    assert "hunter2pw" not in down.output

    env.setenv("PEIL_MAIL_URL", "imap://mail.example.com")
    get_settings.cache_clear()
    wrong = runner.invoke(cli, ["serve", "--port", str(free_port())])
    assert wrong.exit_code != 0 and "PEIL_MAIL_URL must be smtp://" in str(wrong.output) + str(wrong.exception)
    assert _published(app) == 0  # refused before anything was written


def test_a_mail_folder_that_cannot_be_written_is_reported(tmp_path: Path) -> None:
    blocked = tmp_path / "file"
    blocked.write_text("not a folder")
    with pytest.raises(ServerUnavailable, match="cannot write mail"):
        check_target(blocked.as_uri() + "/outbox")
    check_target((tmp_path / "outbox").as_uri())
    assert (tmp_path / "outbox").is_dir()
