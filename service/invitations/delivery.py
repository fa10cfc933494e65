"""The mail job: send what is due, one message at a time, by one worker at a time, throttled, resumable.

What is due is read from the database, whoever opened the wave (HR or the clock): invitations of open waves not
yet mailed, then reminder rounds HR asked for. Each message's outcome is recorded right after the server accepts
it, so a sender killed between two messages resumes where it stopped (nobody mailed twice, nobody skipped); the
one window left is between the server's acceptance and that record. Messages go in token-hash order, which is
random: the order of sending says nothing about the order of HR's upload.

A reminder goes to a participant whose response is not complete. That is found out here and nowhere else: the
job unseals the invitation's token, computes the response's token MAC and looks it up. Nothing of it is
written down; a round's progress is kept sealed (see ``ReminderRound``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from service import links
from service.config import Settings
from service.db import transaction
from service.instruments.loader import Instruments
from service.invitations import contact, lock, mail
from service.invitations.sender import Refused, Sender, ServerUnavailable, open_sender
from service.models import Invitation, ReminderRound, Response, Wave
from service.models.base import utcnow

log = logging.getLogger("peil")

MAX_RETRIES = 8  # temporary refusals of one message (a 4xx) before Peil gives up on it
FIRST_RETRY = timedelta(minutes=1)
LONGEST_RETRY = timedelta(hours=1)
REMINDER_BATCH = 50
INVITATION_BATCH = 200
_CURSOR = b"reminder-cursor"


@dataclass
class Pass:
    """What one run of the job did, for the log and the tests (never shown to HR)."""

    sent: int = 0  # invitations the server accepted
    failed: int = 0  # invitations refused for good
    paused: timedelta | None = None  # the mail server was unavailable: nobody sends before this has passed
    busy: bool = False  # another worker is sending


class Throttle:
    """At most ``rate`` messages a second: each ``wait`` returns no sooner than 1/rate after the previous one."""

    def __init__(
        self, rate: float, clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep
    ) -> None:
        self.interval = 1.0 / rate
        self.clock, self.sleep = clock, sleep
        self.next_at: float | None = None

    def wait(self) -> None:
        now = self.clock()
        if self.next_at is not None and now < self.next_at:
            self.sleep(self.next_at - now)
            now = self.next_at
        self.next_at = now + self.interval


class LeaseLost(Exception):
    """Another worker took over the mail lock (this one stalled past its lease): stop sending at once."""


def deliver(
    factory: sessionmaker[Session],
    settings: Settings,
    secret: bytes,
    instruments: Instruments,
    *,
    sender: Sender | None = None,
    owner: str | None = None,
    lease: timedelta = lock.LEASE,
    now: Callable[[], datetime] = utcnow,
    sleep: Callable[[float], None] = time.sleep,
    waves: Collection[int] | None = None,
) -> Pass:
    """One run of the job: everything due now (of ``waves`` only, when given), unless another worker is at it or
    the server is being waited for."""
    done = Pass()
    if not _work_due(factory, now(), waves):
        return done
    owner, acquired_at = owner or lock.new_owner(), now()
    if not lock.acquire(factory, owner, acquired_at, lease):
        done.busy = True
        return done
    transport = sender or open_sender(settings.mail_target())
    job = _Job(
        factory, settings, secret, instruments, transport, owner, lease, now, Throttle(settings.mail_rate, sleep=sleep)
    )
    job.waves, job.renewed_at = waves, acquired_at
    try:
        job.invitations(done)
        job.reminders()
    except ServerUnavailable as exc:
        done.paused = lock.pause(factory, owner, now())
        log.warning("mail: %s; trying again in %d s", exc, done.paused.total_seconds())
    except LeaseLost:
        log.warning("mail: another worker took over sending; this one stops")
    finally:
        job.sender.close()
        lock.release(factory, owner)
    return done


def _due_invitations(now: datetime, waves: Collection[int] | None, after: str = "") -> Any:
    """Invitations to mail, in token-hash order after ``after``: pending, of an open wave whose window runs, not
    waiting for a retry (a pass goes on from the last one it took, so it never reads past those it sent)."""
    statement = (
        select(Invitation.id, Invitation.token_hash, Wave.id, Wave.closes_at, Wave.instrument, Wave.version)
        .join(Wave, Wave.id == Invitation.wave_id)
        .where(
            Wave.state == "open",
            Wave.closes_at > now,
            Invitation.state == "pending",
            Invitation.sealed_contact.is_not(None),
            (Invitation.retry_at.is_(None)) | (Invitation.retry_at <= now),
            Invitation.token_hash > after,
        )
    )
    return statement if waves is None else statement.where(Invitation.wave_id.in_(list(waves)))


def _due_rounds(now: datetime, waves: Collection[int] | None) -> Any:
    """Reminder rounds whose 48 hours have passed and that do not wait for a retry."""
    statement = (
        select(ReminderRound.id, ReminderRound.wave_id)
        .where(
            ReminderRound.finished_at.is_(None),
            ReminderRound.not_before <= now,
            (ReminderRound.retry_at.is_(None)) | (ReminderRound.retry_at <= now),
        )
        .order_by(ReminderRound.id)
    )
    return statement if waves is None else statement.where(ReminderRound.wave_id.in_(list(waves)))


def _work_due(factory: sessionmaker[Session], now: datetime, waves: Collection[int] | None) -> bool:
    """A cheap look before taking the lock: most runs find nothing to do and write nothing."""
    with factory() as session:
        return session.execute(_due_invitations(now, waves).limit(1)).first() is not None or (
            session.execute(_due_rounds(now, waves).limit(1)).first() is not None
        )


def _retry_delay(retries: int) -> timedelta:
    return min(FIRST_RETRY * (1 << min(retries, 10)), LONGEST_RETRY)


class _Job:
    def __init__(
        self,
        factory: sessionmaker[Session],
        settings: Settings,
        secret: bytes,
        instruments: Instruments,
        sender: Sender,
        owner: str,
        lease: timedelta,
        now: Callable[[], datetime],
        throttle: Throttle,
    ) -> None:
        self.factory, self.settings, self.secret, self.instruments = factory, settings, secret, instruments
        self.sender, self.owner, self.lease, self.now, self.throttle = sender, owner, lease, now, throttle
        self.waves: Collection[int] | None = None
        self.renewed_at: datetime | None = None
        self.failures_reset = False

    # Sending --------------------------------------------------------------------------------------------------

    def _send(self, kind: mail.Kind, person: contact.Contact, wave_id: int, closes_at: datetime, key: Any) -> None:
        """Build and hand over one message, under the lease and the throttle; raises Refused or ServerUnavailable."""
        instrument = self.instruments[key].instrument
        message = mail.build(
            kind,
            contact=person,
            instrument=instrument,
            closes_at=closes_at,
            base_url=self.settings.base_url,
            sender=self.settings.mail_sender(),
        )
        now = self.now()
        # Renewed whenever a tenth of the lease has gone by: every message starts with most of it ahead, far
        # more than one message can take, and a fast sender does not write the lock row for each message.
        if self.renewed_at is None or now - self.renewed_at > self.lease / 10:
            if not lock.renew(self.factory, self.owner, now, self.lease):
                raise LeaseLost
            self.renewed_at = now
        self.throttle.wait()
        self.sender.send(message, f"wave-{wave_id}-{kind}")
        if not self.failures_reset:
            lock.recovered(self.factory, self.owner)
            self.failures_reset = True

    # Invitations ----------------------------------------------------------------------------------------------

    def invitations(self, done: Pass) -> None:
        """Every pending invitation of an open wave, until none is due."""
        after = ""
        while True:
            with self.factory() as session:
                query = _due_invitations(self.now(), self.waves, after).order_by(Invitation.token_hash)
                batch = session.execute(query.limit(INVITATION_BATCH)).all()
            if not batch:
                return
            for invitation_id, token_hash, wave_id, closes_at, instrument, version in batch:
                after = token_hash
                self._invite(done, invitation_id, wave_id, closes_at, (instrument, version))

    def _invite(self, done: Pass, invitation_id: int, wave_id: int, closes_at: datetime, key: Any) -> None:
        with self.factory() as session:  # still to send: the wave has not closed, nobody removed them meanwhile
            pending = select(Invitation.sealed_contact, Invitation.retries).where(
                Invitation.id == invitation_id, Invitation.state == "pending"
            )
            row = session.execute(pending).first()
        if row is None or row.sealed_contact is None:
            return
        try:
            self._send("invitation", contact.unseal(self.secret, row.sealed_contact), wave_id, closes_at, key)
        except Refused as refusal:
            if self._refused(invitation_id, row.retries, refusal):
                done.failed += 1
                log.warning("mail: an invitation of wave %d was refused for good (SMTP %d)", wave_id, refusal.code)
            return
        self._record(invitation_id, state="sent", retries=0, retry_at=None)
        done.sent += 1

    def _refused(self, invitation_id: int, retries: int, refusal: Refused) -> bool:
        """Record a refusal; True when the invitation has failed for good."""
        if refusal.permanent or retries + 1 >= MAX_RETRIES:
            self._record(invitation_id, state="failed", retries=0, retry_at=None)
            return True
        self._record(invitation_id, retries=retries + 1, retry_at=self.now() + _retry_delay(retries))
        return False

    def _record(self, invitation_id: int, **values: Any) -> None:
        with transaction(self.factory) as session:
            session.execute(
                update(Invitation)
                .where(Invitation.id == invitation_id, Invitation.state == "pending")
                .values(**values)
                .execution_options(synchronize_session=False)
            )

    # Reminders ------------------------------------------------------------------------------------------------

    def reminders(self) -> None:
        """Work through every reminder round that is due."""
        with self.factory() as session:
            rounds = session.execute(_due_rounds(self.now(), self.waves)).all()
        for round_id, wave_id in rounds:
            self._round(round_id, wave_id)

    def _round(self, round_id: int, wave_id: int) -> bool:
        """Remind, in token-hash order from the round's sealed cursor, each participant without a complete
        response; True when the round is finished, False when it waits for a retry."""
        with self.factory() as session:
            wave = session.get(Wave, wave_id)
            row = session.get(ReminderRound, round_id)
            if row is None or row.finished_at is not None:
                return False
            cursor = self._open_cursor(row.sealed_cursor)
            retries = row.retries
        if wave is None or wave.state != "open" or wave.closes_at <= self.now():
            self._save_round(round_id, cursor, finished=True)
            return True
        key = (wave.instrument, wave.version)
        while batch := self._not_submitted(wave_id, cursor):
            for invitation_id, token_hash, person in batch:
                if person is not None and self._reachable(invitation_id):
                    try:
                        self._send("reminder", person, wave_id, wave.closes_at, key)
                    except Refused as refusal:
                        if not refusal.permanent and retries + 1 < MAX_RETRIES:
                            self._save_round(round_id, cursor, retries=retries + 1, retry_at=_retry_delay(retries))
                            return False
                        log.warning("mail: a reminder of wave %d was refused (SMTP %d)", wave_id, refusal.code)
                    retries = 0
                cursor = token_hash
                if person is not None:
                    self._save_round(round_id, cursor)
            self._save_round(round_id, cursor)
        self._save_round(round_id, cursor, finished=True)
        log.info("mail: a reminder round of wave %d finished", wave_id)
        return True

    def _not_submitted(self, wave_id: int, cursor: str) -> list[tuple[int, str, contact.Contact | None]]:
        """The next invitations after ``cursor`` that were mailed, each with its contact, or None for one whose
        response is complete (it is passed over)."""
        with self.factory() as session:
            rows = session.execute(
                select(Invitation.id, Invitation.token_hash, Invitation.sealed_contact)
                .where(
                    Invitation.wave_id == wave_id,
                    Invitation.state == "sent",
                    Invitation.sealed_contact.is_not(None),
                    Invitation.token_hash > cursor,
                )
                .order_by(Invitation.token_hash)
                .limit(REMINDER_BATCH)
            ).all()
            # (the query asks for a sealed contact and a token hash: neither is None here)
            people = {i: contact.unseal(self.secret, cast(bytes, sealed)) for i, _h, sealed in rows}
            macs = {links.token_mac(self.secret, person.token): i for i, person in people.items()}
            # A continuous wave's published periods hold the responses moved out of it: those count as answered.
            waves = select(Wave.id).where(or_(Wave.id == wave_id, Wave.parent_id == wave_id))
            complete = session.scalars(
                select(Response.token_mac).where(
                    Response.wave_id.in_(waves), Response.complete.is_(True), Response.token_mac.in_(list(macs))
                )
            )
            submitted = {macs[mac] for mac in complete}
        return [(i, cast(str, token_hash), None if i in submitted else people[i]) for i, token_hash, _s in rows]

    def _reachable(self, invitation_id: int) -> bool:
        """Still mailable now: the wave has not closed and the participant was not removed meanwhile."""
        with self.factory() as session:
            sealed = session.scalar(select(Invitation.sealed_contact).where(Invitation.id == invitation_id))
        return sealed is not None

    def _open_cursor(self, sealed: bytes | None) -> str:
        return "" if sealed is None else contact.unseal_bytes(self.secret, _CURSOR, sealed).decode().strip()

    def _save_round(
        self, round_id: int, cursor: str, *, finished: bool = False, retries: int = 0, retry_at: timedelta | None = None
    ) -> None:
        now = self.now()
        values: dict[str, Any] = {
            "sealed_cursor": None if finished else contact.seal_bytes(self.secret, _CURSOR, cursor.encode()),
            "retries": retries,
            "retry_at": None if retry_at is None else now + retry_at,
        }
        if finished:
            values["finished_at"] = now
        with transaction(self.factory) as session:
            session.execute(
                update(ReminderRound)
                .where(ReminderRound.id == round_id, ReminderRound.finished_at.is_(None))
                .values(**values)
                .execution_options(synchronize_session=False)
            )
