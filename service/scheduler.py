"""Background jobs inside `peil serve`: the wave clock, the mail job (and, when configured, the export)."""

from __future__ import annotations

import logging

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger
from sqlalchemy.orm import Session, sessionmaker

from service.config import Settings
from service.db import transaction
from service.instruments.loader import LoadedInstrument, load_definitions
from service.invitations.delivery import deliver
from service.models.base import utcnow
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


def mail_job(
    settings: Settings, factory: sessionmaker[Session], instruments: dict[tuple[str, int], LoadedInstrument]
) -> None:
    """Send what is due: invitations of open waves (whoever opened them), then reminder rounds. Every worker runs
    it; the mail lock lets one send at a time, so PEIL_MAIL_RATE holds for the whole service."""
    try:
        done = deliver(factory, settings, settings.secret(), instruments)
    except Exception:
        log.exception("mail job failed; retrying at its next run")
        return
    if done.sent or done.failed:
        log.info("mail: %d invitation(s) sent, %d refused for good", done.sent, done.failed)


def export_job(settings: Settings, factory: sessionmaker[Session]) -> None:
    """The scheduled export. Every worker and replica fires it; the lock lets the first one run it, once per
    cron slot (the minute it was due), and the others skip."""
    from service.exports.service import ExportBusy, run_export

    slot = utcnow().replace(second=0, microsecond=0)
    try:
        run = run_export(factory, settings, trigger="schedule", actor="scheduler", slot=slot)
    except ExportBusy:
        log.info("export: another worker runs the export for %s; skipped", slot.isoformat())
    except Exception:
        log.exception("export could not start; retrying at the next scheduled time")
    else:
        log.info("export run %d: %s", run.id, run.status)


def start_scheduler(
    settings: Settings,
    factory: sessionmaker[Session],
    instruments: dict[tuple[str, int], LoadedInstrument] | None = None,
) -> BackgroundScheduler:
    """The clock, the mail job (its messages name the instruments: loaded here unless given) and the export."""
    instruments = instruments if instruments is not None else load_definitions(settings.definitions_dir)
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
    scheduler.add_job(
        mail_job,
        "interval",
        seconds=settings.mail_interval_seconds,
        args=[settings, factory, instruments],
        id="mail",
        max_instances=1,
        coalesce=True,
    )
    if settings.export_cron:
        scheduler.add_job(
            export_job,
            CronTrigger.from_crontab(settings.export_cron, timezone="UTC"),
            args=[settings, factory],
            id="export",
            max_instances=1,
            coalesce=True,
            misfire_grace_time=300,
        )
    scheduler.start()
    return scheduler
