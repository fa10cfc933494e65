"""Shared request dependencies as Annotated aliases."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from service.config import Settings
from service.instruments.loader import Instruments


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def _instruments(request: Request) -> Instruments:
    instruments: Instruments = request.app.state.instruments
    return instruments


SettingsDep = Annotated[Settings, Depends(_settings)]
InstrumentsDep = Annotated[Instruments, Depends(_instruments)]


def wants_csv(request: Request) -> bool:
    accept = request.headers.get("accept", "")
    return "text/csv" in accept and "application/json" not in accept
