"""Pilots: declare, list, read, remove; and the effect on a construct or an outcome."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Response

from service import audit
from service.auth import HR, Reader
from service.db import SessionDep
from service.deps import InstrumentsDep
from service.errors import Unprocessable
from service.pilots import effects, service
from service.pilots.schemas import Effect, Pilot, PilotCreate, PilotList
from service.waves import service as waves

router = APIRouter(tags=["pilots"])

ERRORS: dict[int | str, dict[str, Any]] = {401: {}, 403: {}, 404: {"description": "no such pilot"}}


@router.post("/pilots", status_code=201, summary="Declare a pilot", responses={401: {}, 403: {}, 422: {}})
def create_pilot(body: PilotCreate, key: HR, session: SessionDep) -> Pilot:
    """Units (each with its subtree), a start date, and the units to compare with (default: the rest of the
    organisation)."""
    pilot = service.create(session, body)
    audit.record(session, key.name, "pilot.created", pilot_id=pilot.id, units=pilot.units)
    return Pilot.model_validate(pilot)


@router.get("/pilots", summary="List pilots", responses={401: {}, 403: {}})
def list_pilots(_key: Reader, session: SessionDep) -> PilotList:
    """Every pilot, oldest first."""
    return PilotList(pilots=[Pilot.model_validate(p) for p in service.list_pilots(session)])


@router.get("/pilots/{pilot_id}", summary="One pilot", responses=ERRORS)
def get_pilot(pilot_id: int, _key: Reader, session: SessionDep) -> Pilot:
    """The pilot as declared."""
    return Pilot.model_validate(service.get(session, pilot_id))


@router.delete("/pilots/{pilot_id}", status_code=204, summary="Remove a pilot", responses=ERRORS)
def delete_pilot(pilot_id: int, key: HR, session: SessionDep) -> Response:
    """The declaration goes; nothing it measured was stored."""
    service.delete(session, service.get(session, pilot_id))
    audit.record(session, key.name, "pilot.deleted", pilot_id=pilot_id)
    return Response(status_code=204)


@router.get(
    "/pilots/{pilot_id}/effect",
    summary="The pilot's effect on a construct or an outcome",
    responses={**ERRORS, 422: {"description": "give exactly one of construct and outcome, a known one"}},
)
def get_effect(
    pilot_id: int,
    key: Reader,
    session: SessionDep,
    instruments: InstrumentsDep,
    construct: Annotated[str | None, Query(max_length=64, description="a construct's id")] = None,
    outcome: Annotated[
        str | None, Query(max_length=32, description="retention, internal_mobility or time_to_promotion")
    ] = None,
) -> Effect:
    """Difference in differences with its interval, from published cells only; says so when the data can't tell."""
    pilot = service.get(session, pilot_id)
    if construct is not None and outcome is None:
        waves.advance_all(session)
        found = effects.construct_effect(session, pilot, construct, instruments)
    elif outcome is not None and construct is None:
        found = effects.outcome_effect(session, pilot, outcome)
    else:
        raise Unprocessable(
            "give exactly one of construct and outcome", details=[{"field": "construct", "reason": "one of two"}]
        )
    audit.record(session, key, "results.read", view="pilot_effect", pilot_id=pilot.id, measure=found.name)
    return found
