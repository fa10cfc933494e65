"""Background jobs inside `peil serve`: the wave clock, the close worker, the mail job (and, when configured,
the export)."""

from __future__ import annotations

import logging
from datetime import timedelta

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger
from sqlalchemy.orm import Session, sessionmaker

from service.config import Settings
from service.db import transaction
from service.instruments.loader import Instruments
from service.invitations.delivery import deliver
from service.models.base import utcnow
from service.waves import close
from service.waves import service as waves

log = logging.getLogger("peil")

CLOSE_JOB = "close"


def tick(factory: sessionmaker[Session], scheduler: BackgroundScheduler | None = None) -> None:
    """Open waves and start closing waves whose window says so (every worker ticks; each change happens once),
    then wake the close worker if a wave started closing."""
    try:
        with transaction(factory) as session:
            changed = waves.advance_all(session)
        if changed:
            log.info("clock: %d wave(s) changed state", changed)
            if scheduler is not None:
                wake(scheduler)
    except Exception:
        log.exception("clock tick failed; retrying at the next tick")


def mail_job(settings: Settings, factory: sessionmaker[Session], instruments: Instruments) -> None:
    """Send what is due: invitations of open waves (whoever opened them), then reminder rounds. Every worker runs
    it; the mail lock lets one send at a time, so PEIL_MAIL_RATE holds for the whole service."""
    try:
        done = deliver(factory, settings, settings.secret(), instruments)
    except Exception:
        log.exception("mail job failed; retrying at its next run")
        return
    if done.sent or done.failed:
        log.info("mail: %d invitation(s) sent, %d refused for good", done.sent, done.failed)


def close_job(settings: Settings, factory: sessionmaker[Session], instruments: Instruments) -> None:
    """The close worker's turn: close every closing wave it can claim (``service.waves.close``)."""
    try:
        close.run_due(factory, instruments, lease=timedelta(seconds=settings.close_lease_seconds))
    except Exception:
        log.exception("close worker: could not look for closing waves; retrying at the next turn")


def wake(scheduler: BackgroundScheduler) -> None:
    """Run the close worker now rather than at its next turn (a wave has just started closing)."""
    scheduler.modify_job(CLOSE_JOB, next_run_time=utcnow())


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
    settings: Settings, factory: sessionmaker[Session], instruments: Instruments
) -> BackgroundScheduler:
    scheduler = BackgroundScheduler(timezone="UTC")
    every = {"seconds": settings.clock_interval_seconds, "max_instances": 1, "coalesce": True}
    scheduler.add_job(tick, "interval", args=[factory, scheduler], id="clock", **every)
    # Also at each turn of the clock: closes that failed and are due again, and waves whose worker died.
    scheduler.add_job(close_job, "interval", args=[settings, factory, instruments], id=CLOSE_JOB, **every)
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
