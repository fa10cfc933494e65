"""Reminders: HR asks, the mail job reminds whoever has not answered; the answer says nothing of who or how many."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel

from service import audit
from service.auth import HR
from service.db import SessionDep
from service.invitations import service
from service.waves import service as waves

router = APIRouter(tags=["waves"])

ERRORS: dict[int | str, dict[str, Any]] = {401: {}, 403: {}, 404: {}, 409: {}}


class RemindersQueued(BaseModel):
    wave_id: int
    queued: bool
    message: str


@router.post(
    "/waves/{wave_id}/reminders", status_code=202, summary="Remind those who have not answered", responses=ERRORS
)
def queue_reminders(wave_id: int, key: HR, session: SessionDep) -> RemindersQueued:
    """Queue a reminder, with the same personal link, for every participant of the open wave who has not sent their
    answers; each participant gets at most one every 48 hours. Peil tells nobody who or how many."""
    wave = waves.advance(session, waves.get(session, wave_id, for_update=True))
    service.queue_reminders(session, wave)
    audit.record(session, key, "reminders.requested", wave.id)
    return RemindersQueued(
        wave_id=wave.id,
        queued=True,
        message="Reminders are queued for the participants who have not sent their answers "
        "(at most one per participant every 48 hours).",
    )
