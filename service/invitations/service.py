"""Invitations' bookkeeping that requests and the wave's close call: mail counts, reminder requests, erasure."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from service.errors import Conflict
from service.models import Invitation, ReminderRound, Wave
from service.models.base import utcnow
from service.waves.schemas import MailCounts

REMINDER_GAP = timedelta(hours=48)  # at most one reminder per participant in this time


def mail_counts(session: Session, wave_id: int) -> MailCounts:
    """How many of the wave's invitation mails wait, went, failed for good, or were withdrawn (no addresses)."""
    rows = session.execute(
        select(Invitation.state, func.count()).where(Invitation.wave_id == wave_id).group_by(Invitation.state)
    )
    return MailCounts(**{state: count for state, count in rows})


def queue_reminders(session: Session, wave: Wave, now: datetime | None = None) -> None:
    """Queue one reminder round for the open ``wave``: the mail job reminds whoever has not sent their answers.

    A round starts no sooner than 48 hours after the wave's previous round finished, so nobody is reminded twice
    within 48 hours; while a round waits or runs, asking again adds nothing. What the round will do (who, how
    many) is known only to the job, which finds out by unsealing each invitation's token as it goes.
    """
    now = now or utcnow()
    if wave.state != "open":
        raise Conflict(f"only an open wave's participants can be reminded; this one is {wave.state}")
    rounds = session.scalars(select(ReminderRound).where(ReminderRound.wave_id == wave.id)).all()
    if any(r.finished_at is None for r in rounds):
        return
    finished = [r.finished_at for r in rounds if r.finished_at is not None]
    not_before = max([now, *(when + REMINDER_GAP for when in finished)])
    session.add(ReminderRound(wave_id=wave.id, requested_at=now, not_before=not_before, retries=0))
    session.flush()


def erase_contacts(session: Session, wave_id: int, now: datetime | None = None) -> None:
    """Erase the wave's sealed emails and tokens (and the emails' hashes), and end its reminder rounds.

    Called in the transaction that closes the wave: after it no mail can go out for the wave, and without a
    participant's link (in their mailbox only) nobody, Peil included, can pair their invitation with a response.
    """
    session.execute(
        update(Invitation)
        .where(Invitation.wave_id == wave_id)
        .values(sealed_contact=None, email_mac=None, retry_at=None)
        .execution_options(synchronize_session=False)
    )
    session.execute(
        update(ReminderRound)
        .where(ReminderRound.wave_id == wave_id, ReminderRound.finished_at.is_(None))
        .values(finished_at=now or utcnow(), sealed_cursor=None)
        .execution_options(synchronize_session=False)
    )
