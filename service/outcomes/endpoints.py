"""PUT /outcomes (counts per unit and period, JSON or CSV), GET /outcomes (the guarded KPIs)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response

from service import audit
from service.auth import HR, Reader
from service.db import SessionDep
from service.deps import SettingsDep, wants_csv
from service.outcomes import service, tabular
from service.outcomes.schemas import Outcomes, OutcomesUpload, UploadResult
from service.results.tabular import CSV_RESPONSE
from service.waves import service as waves

router = APIRouter(tags=["outcomes"])

ERRORS: dict[int | str, dict[str, Any]] = {401: {}, 403: {}}


async def _raw_body(request: Request) -> bytes:
    return await request.body()


RawBody = Annotated[bytes, Depends(_raw_body)]


def _upload_schema() -> dict[str, Any]:
    """The JSON body's schema with its one nested model written in place (no $defs to resolve)."""
    schema = OutcomesUpload.model_json_schema()
    row = schema.pop("$defs")["OutcomeIn"]
    schema["properties"]["outcomes"]["items"] = row
    return schema


_UPLOAD_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": _upload_schema()},
            "text/csv": {"schema": {"type": "string", "description": f"header: {','.join(service.COLUMNS)}"}},
        },
    }
}


@router.put(
    "/outcomes",
    summary="Upload counts per unit and period",
    responses={**ERRORS, 413: {}, 422: {"description": "a bad row: nothing is stored, every problem has its row"}},
    openapi_extra=_UPLOAD_BODY,
)
def put_outcomes(key: HR, body: RawBody, request: Request, session: SessionDep, settings: SettingsDep) -> UploadResult:
    """Counts per unit (its own people) and period (JSON or CSV); each period given replaces its earlier upload."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    rows = service.parse_csv(body) if content_type == "text/csv" else service.parse_json(body)
    result = service.upload(session, rows, settings.min_group_size)
    audit.record(session, key.name, "outcomes.uploaded", rows=result.rows, periods=[p.period for p in result.periods])
    return result


@router.get(
    "/outcomes",
    summary="Retention, internal mobility and time to promotion per unit and period",
    response_model=Outcomes,
    responses={**ERRORS, 404: {"description": "no such unit, wave or uploaded period"}, 422: {}, **CSV_RESPONSE},
)
def get_outcomes(
    key: Reader,
    session: SessionDep,
    request: Request,
    unit: Annotated[str | None, Query(max_length=100, description="a unit's key; default: every unit")] = None,
    period: Annotated[str | None, Query(max_length=7, description="2026-03 or 2026-Q1; default: every period")] = None,
    wave: Annotated[int | None, Query(description="only periods whose span holds this wave's window")] = None,
) -> Outcomes | Response:
    """Each period's figures, rolled up per unit, under the guard (hidden units say so and why)."""
    shown = waves.get(session, wave) if wave is not None else None
    out = service.published(session, unit=unit, period=period, wave=shown)
    audit.record(session, key, "results.read", wave, view="outcomes", unit=unit, period=period)
    return tabular.outcomes(out) if wants_csv(request) else out
