"""Settings from ``PEIL_*`` environment variables, read once into one object."""

from __future__ import annotations

import contextlib
import os
import secrets
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from service.clients import TrustedProxies, parse_networks

REPO_ROOT = Path(__file__).resolve().parent.parent
PLACEHOLDER_SECRET = "change-me"  # noqa: S105 - the placeholder we refuse outside development


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PEIL_", extra="ignore")

    # Unset means production when PEIL_SECRET_KEY is given, and a refusal to start when it is not: development
    # (a generated key, the API's docs open to all) must be asked for.
    env: Literal["development", "test", "production"] | None = None
    database_url: str = "sqlite:///peil.db"
    base_url: str = "http://127.0.0.1:8000"
    min_group_size: int = Field(default=5, ge=3)
    secret_key: SecretStr = SecretStr(PLACEHOLDER_SECRET)
    data_dir: Path = Path("data")
    definitions_dir: Path = REPO_ROOT / "survey_definitions"
    export_target: str | None = None
    export_cron: str | None = None
    max_body_bytes: int = Field(default=16 * 1024 * 1024, ge=1024)
    max_participants: int = Field(default=50_000, ge=1)
    # Wrong link tokens from one address: after `link_miss_limit` misses in `link_miss_window` seconds,
    # each further miss is slowed and then refused with 429 until the window passes.
    link_miss_limit: int = Field(default=20, ge=1)
    link_miss_window: float = Field(default=60.0, gt=0)
    clock_interval_seconds: float = Field(default=30.0, gt=0)
    # Where Peil's mail goes: smtp://user:password@host:port (STARTTLS when the server offers it), smtps://... (TLS
    # from the start) or file:///folder (one .eml file per message). Unset: data_dir/outbox, outside production.
    mail_url: SecretStr | None = None
    mail_from: str | None = None  # the From header; default "Peil <noreply@{the host of base_url}>"
    mail_rate: float = Field(default=10.0, gt=0)  # messages a second, over all workers
    mail_interval_seconds: float = Field(default=5.0, gt=0)  # how often the mail job looks for work
    # How long a closing wave stays with a close worker that stopped renewing its lease (it died) before
    # another worker takes it over.
    close_lease_seconds: float = Field(default=120.0, gt=0)
    # Reverse proxies whose X-Forwarded-For and X-Forwarded-Proto are believed: addresses or CIDRs, separated by
    # commas or spaces. Empty: the connection's peer is the client (see service/clients.py).
    trusted_proxies: Annotated[list[str], NoDecode] = []
    # SQLite: the write-ahead log is truncated once it outgrows this (service/db.py); 0 lets it grow unbounded.
    sqlite_wal_limit_mb: int = Field(default=64, ge=0)

    @field_validator("database_url")
    @classmethod
    def _known_driver(cls, url: str) -> str:
        if url.startswith("postgresql://"):
            url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
        if not url.startswith(("sqlite:", "postgresql+psycopg:")):
            raise ValueError("PEIL_DATABASE_URL must be sqlite:///... or postgresql+psycopg://...")
        return url

    @field_validator("mail_url")
    @classmethod
    def _known_mail_scheme(cls, url: SecretStr | None) -> SecretStr | None:
        if url is not None and urlsplit(url.get_secret_value()).scheme not in ("smtp", "smtps", "file"):
            raise ValueError("PEIL_MAIL_URL must be smtp://user:password@host:port, smtps://... or file:///folder")
        return url

    def mail_target(self) -> str:
        """Where mail goes: ``PEIL_MAIL_URL``, else (outside production) the folder ``data_dir/outbox``."""
        if self.mail_url is not None:
            return self.mail_url.get_secret_value()
        if self.is_production:
            raise ValueError(
                "PEIL_MAIL_URL must be set in production (smtp://user:password@host:port or smtps://...): "
                "Peil mails every participant their link itself"
            )
        return (self.data_dir / "outbox").resolve().as_uri()

    def mail_sender(self) -> str:
        host = urlsplit(self.base_url).hostname or "localhost"
        return self.mail_from or f"Peil <noreply@{host}>"

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _networks(cls, value: object) -> object:
        entries = value.replace(",", " ").split() if isinstance(value, str) else value
        if isinstance(entries, list):
            parse_networks(str(e) for e in entries)  # refuse a typo at start-up, naming it
        return entries

    def proxies(self) -> TrustedProxies:
        return TrustedProxies(parse_networks(self.trusted_proxies))

    @property
    def wal_limit(self) -> int | None:
        return self.sqlite_wal_limit_mb * 1024 * 1024 or None

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def is_development(self) -> bool:
        return self.env == "development"

    @property
    def is_production(self) -> bool:
        """Production, asked for or (PEIL_ENV unset, see ``env``) assumed."""
        return self.env in ("production", None)

    def secret(self) -> bytes:
        """The key under which response ids are derived from link tokens.

        It must never change for a running survey: a new key would turn every returning link into a new
        response. Outside development and tests a real key is required; in development one is generated once
        and kept in ``data_dir/.peil-secret`` so that ``make run`` works and restarts keep the same key.
        """
        value = self.secret_key.get_secret_value()
        if value != PLACEHOLDER_SECRET:
            if len(value) < 32:
                raise ValueError("PEIL_SECRET_KEY must be at least 32 characters")
            return value.encode()
        if self.env is None:
            raise ValueError(
                "PEIL_SECRET_KEY is not set: set it to a random value of at least 32 characters "
                "(e.g. `openssl rand -base64 48`), or set PEIL_ENV=development to run with a generated key"
            )
        if self.env == "production":
            raise ValueError("PEIL_SECRET_KEY must be set to a random value of at least 32 characters in production")
        return generated_secret(self.data_dir / ".peil-secret")


def generated_secret(path: Path) -> bytes:
    """The key kept in ``path``, created on first use readable by its owner only.

    The file is created with mode 0600 (never wider, not even for a moment), written whole under a temporary
    name and linked into place, so two processes starting at once agree on one key and none reads half a file.
    """
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f"{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        try:
            with os.fdopen(descriptor, "w") as out:
                out.write(secrets.token_urlsafe(48))
                out.flush()
                os.fsync(out.fileno())
            with contextlib.suppress(FileExistsError):  # another process was first: its key is the key
                os.link(temporary, path)
        finally:
            temporary.unlink(missing_ok=True)
    if path.stat().st_mode & 0o077:
        raise ValueError(f"{path} holds the secret key but others may read it: chmod 600 {path}")
    value = path.read_text().strip()
    if len(value) < 32:
        raise ValueError(f"{path} holds no usable key (fewer than 32 characters)")
    return value.encode()


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
