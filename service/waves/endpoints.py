"""Waves: create, list, get, update, open, close; participants (never their links); participation."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, BackgroundTasks, Depends, Request, Response

from service import audit
from service.auth import HR, Reader, ResultsScope
from service.db import SessionDep
from service.deps import InstrumentsDep, SettingsDep, wants_csv
from service.errors import Unprocessable
from service.invitations.service import mail_counts
from service.results.tabular import CSV_RESPONSE
from service.spreadsheets import csv_text
from service.waves import participants, periods, service
from service.waves.participation import as_csv, within
from service.waves.participation import participation as participation_of
from service.waves.schemas import (
    ParticipantsRemoval,
    ParticipantsRemoved,
    ParticipantsUploaded,
    Participation,
    Period,
    UnitCount,
    Wave,
    WaveCreate,
    WaveList,
    WaveUpdate,
)

router = APIRouter(tags=["waves"])

ERRORS: dict[int | str, dict[str, Any]] = {401: {}, 403: {}, 404: {}}


async def _raw_body(request: Request) -> bytes:
    return await request.body()


RawBody = Annotated[bytes, Depends(_raw_body)]


def _out(session: SessionDep, wave: Any) -> Wave:
    out = Wave.model_validate(wave)
    out.invited = service.invited_count(session, wave.id)
    out.mail = mail_counts(session, wave.id)
    out.scope = service.scope_key(session, wave)
    if wave.kind == "continuous":
        out.periods = [
            Period(wave_id=p.id, name=p.name, starts_at=p.opens_at, ends_at=p.closes_at, state=p.state)
            for p in periods.published(session, wave)
        ]
    return out


@router.post("/waves", status_code=201, summary="Create a wave", responses={**ERRORS, 422: {}})
def create_wave(
    body: WaveCreate, key: HR, session: SessionDep, settings: SettingsDep, instruments: InstrumentsDep
) -> Wave:
    """A new wave in the draft state."""
    wave = service.create(session, body, instruments, settings.min_group_size)
    audit.record(session, key, "wave.created", wave.id, instrument=f"{wave.instrument}/{wave.version}")
    return _out(session, wave)


@router.get("/waves", summary="List waves", responses=ERRORS)
def list_waves(_key: Reader, session: SessionDep) -> WaveList:
    """Every wave, oldest first, with the clock applied."""
    service.advance_all(session)
    return WaveList(waves=[_out(session, w) for w in service.list_waves(session)])


@router.get("/waves/{wave_id}", summary="One wave", responses=ERRORS)
def get_wave(wave_id: int, _key: Reader, session: SessionDep) -> Wave:
    """The wave, with the clock applied."""
    return _out(session, service.advance(session, service.get(session, wave_id)))


@router.patch("/waves/{wave_id}", summary="Change a wave", responses={**ERRORS, 409: {}, 422: {}})
def update_wave(wave_id: int, body: WaveUpdate, key: HR, session: SessionDep) -> Wave:
    """Change name or window; min_group_size and attributes only while the wave is a draft."""
    wave = service.advance(session, service.get(session, wave_id, for_update=True))
    service.update_wave(session, wave, body)
    audit.record(session, key, "wave.updated", wave.id, fields=sorted(body.model_fields_set))
    return _out(session, wave)


@router.post("/waves/{wave_id}/open", summary="Open a wave now", responses={**ERRORS, 409: {}})
def open_wave(wave_id: int, key: HR, session: SessionDep) -> Wave:
    """draft -> open; the mail job then sends every participant their link (never within this request)."""
    wave = service.advance(session, service.get(session, wave_id, for_update=True))
    service.open_wave(session, wave)
    audit.record(session, key, "wave.opened", wave.id)
    return _out(session, wave)


@router.post("/waves/{wave_id}/close", status_code=202, summary="Close a wave now", responses={**ERRORS, 409: {}})
def close_wave(wave_id: int, key: HR, session: SessionDep, request: Request, after: BackgroundTasks) -> Wave:
    """open -> closing, at once: the wave takes no more answers, and the close job builds and stores its result
    table in the background, then marks it closed (results answer 409 until then; `GET /waves/{id}` shows how
    the job goes)."""
    wave = service.advance(session, service.get(session, wave_id, for_update=True))
    service.close_wave(session, wave)
    audit.record(session, key, "wave.closed", wave.id)
    wake = request.app.state.wake_close_worker
    if wake is not None:
        after.add_task(wake)  # once the response is sent, so after the commit
    return _out(session, wave)


_PARTICIPANTS_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["participants"],
                    "properties": {
                        "participants": {
                            "type": "array",
                            "maxItems": 50000,
                            "items": {
                                "type": "object",
                                "required": ["unit_key", "email"],
                                "properties": {
                                    "unit_key": {"type": "string"},
                                    "email": {"type": "string", "format": "email"},
                                    "language": {"type": "string", "enum": ["nl", "en"]},
                                    "attributes": {"type": "object", "additionalProperties": {"type": "string"}},
                                },
                            },
                        }
                    },
                }
            },
            "text/csv": {
                "schema": {"type": "string", "description": "header: unit_key,email[,language],<attribute>,..."}
            },
        },
    }
}


@router.post(
    "/waves/{wave_id}/participants",
    status_code=201,
    summary="Add participants to a draft wave, or to an open continuous one",
    response_model=ParticipantsUploaded,
    responses={**ERRORS, 409: {}, 413: {}, 422: {}, 201: {"content": {"text/csv": {}}}},
    openapi_extra=_PARTICIPANTS_BODY,
)
def add_participants(
    wave_id: int, key: HR, body: RawBody, request: Request, session: SessionDep, settings: SettingsDep
) -> ParticipantsUploaded | Response:
    """Invite participants (JSON or CSV, all rows or none); answers counts per unit. Peil mails each their link
    when the wave opens (in an open continuous wave, within seconds): no link is in this answer, or anywhere HR
    can read."""
    wave = service.advance(session, service.get(session, wave_id, for_update=True))
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    rows = participants.parse_csv(body, wave.attributes) if content_type == "text/csv" else _json_rows(body)
    uploaded = participants.add_participants(
        session, wave, rows, secret=request.app.state.secret, max_rows=settings.max_participants
    )
    # An open continuous wave's additions are audited as such: each is someone invited while the wave runs.
    action = "participants.added" if wave.state == "open" else "participants.uploaded"
    audit.record(session, key, action, wave.id, count=uploaded.created)
    units = [UnitCount(unit_key=unit, created=n) for unit, n in sorted(uploaded.per_unit.items())]
    if wants_csv(request):
        lines = [[unit.unit_key, unit.created] for unit in units]
        return Response(csv_text(["unit_key", "created"], lines), status_code=201, media_type="text/csv")
    return ParticipantsUploaded(wave_id=wave.id, created=uploaded.created, units=units)


@router.post(
    "/waves/{wave_id}/participants/removals",
    summary="Take participants out of a wave",
    responses={**ERRORS, 409: {}, 422: {}},
)
def remove_participants(
    wave_id: int, body: ParticipantsRemoval, key: HR, request: Request, session: SessionDep
) -> ParticipantsRemoved:
    """Someone left: no more mail reaches them and their link stops working. In an open wave they stay counted as
    invited, so no figure tells whether they had answered; their response, if any, stays. All or nobody."""
    wave = service.advance(session, service.get(session, wave_id, for_update=True))
    removed = participants.remove_participants(session, wave, body.emails, secret=request.app.state.secret)
    audit.record(session, key, "participants.removed", wave.id, count=removed)
    return ParticipantsRemoved(wave_id=wave.id, removed=removed)


def _json_rows(body: bytes) -> list[dict[str, Any]]:
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise Unprocessable("the body is not valid JSON") from exc
    if not isinstance(document, dict) or not isinstance(document.get("participants"), list):
        raise Unprocessable('the body must be {"participants": [...]}')
    rows = document["participants"]
    return [row if isinstance(row, dict) else {"unit_key": None, "email": None} for row in rows]


@router.get(
    "/waves/{wave_id}/participation",
    summary="Participation per unit",
    response_model=Participation,
    responses={**ERRORS, **CSV_RESPONSE},
)
def get_participation(
    wave_id: int, scope: ResultsScope, session: SessionDep, request: Request
) -> Participation | Response:
    """Invited, responded and rate per unit, rolled up, under the results' guard (JSON, or CSV on request); a
    manager key gets the units of its own part."""
    out = within(participation_of(session, service.advance(session, service.get(session, wave_id))), scope)
    return as_csv(out) if wants_csv(request) else out
