"""Settings from ``PEIL_*`` environment variables, read once into one object."""

from __future__ import annotations

import secrets
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parent.parent
PLACEHOLDER_SECRET = "change-me"  # noqa: S105 - the placeholder we refuse outside development


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PEIL_", extra="ignore")

    env: Literal["development", "test", "production"] = "development"
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
    # How long a closing wave stays with a close worker that stopped renewing its lease (it died) before
    # another worker takes it over.
    close_lease_seconds: float = Field(default=120.0, gt=0)

    @field_validator("database_url")
    @classmethod
    def _known_driver(cls, url: str) -> str:
        if url.startswith("postgresql://"):
            url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
        if not url.startswith(("sqlite:", "postgresql+psycopg:")):
            raise ValueError("PEIL_DATABASE_URL must be sqlite:///... or postgresql+psycopg://...")
        return url

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    def secret(self) -> bytes:
        """The key under which response ids are derived from link tokens.

        It must never change for a running survey: a new key would turn every returning link into a new
        response. Outside development a real key is required; in development one is generated once and kept
        in ``data_dir/.peil-secret`` so that ``make run`` works and restarts keep the same key.
        """
        value = self.secret_key.get_secret_value()
        if value != PLACEHOLDER_SECRET:
            if len(value) < 32:
                raise ValueError("PEIL_SECRET_KEY must be at least 32 characters")
            return value.encode()
        if self.env == "production":
            raise ValueError("PEIL_SECRET_KEY must be set to a random value of at least 32 characters in production")
        path = self.data_dir / ".peil-secret"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(secrets.token_urlsafe(48))
            path.chmod(0o600)
        return path.read_text().strip().encode()


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
