"""Background jobs inside `peil serve`: the wave clock (and, when configured, the export)."""

from __future__ import annotations

import logging

from apscheduler.schedulers.background import BackgroundScheduler
from sqlalchemy.orm import Session, sessionmaker

from service.config import Settings
from service.db import transaction
from service.waves import service as waves

log = logging.getLogger("peil")


def tick(factory: sessionmaker[Session]) -> None:
    """Open and close waves whose window says so. Every worker ticks; a wave closes exactly once."""
    try:
        with transaction(factory) as session:
            changed = waves.advance_all(session)
        if changed:
            log.info("clock: %d wave(s) changed state", changed)
    except Exception:
        log.exception("clock tick failed; retrying at the next tick")


def start_scheduler(settings: Settings, factory: sessionmaker[Session]) -> BackgroundScheduler:
    scheduler = BackgroundScheduler(timezone="UTC")
    scheduler.add_job(
        tick,
        "interval",
        seconds=settings.clock_interval_seconds,
        args=[factory],
        id="clock",
        max_instances=1,
        coalesce=True,
    )
    scheduler.start()
    return scheduler
