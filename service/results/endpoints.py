"""Results of closed waves: the unit's cells, the heatmap, flags, comments and trends, in JSON or CSV."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response

from service import audit
from service.auth import HR, ResultsReader, ResultsScope
from service.db import SessionDep
from service.deps import InstrumentsDep, wants_csv
from service.errors import NotFound
from service.results import published, schemas, tabular
from service.results.service import stored_table
from service.units import service as units

router = APIRouter(tags=["results"])

ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "no or unknown API key"},
    403: {"description": "the key's role may not call this"},
    404: {"description": "no such wave or unit (for a manager key: none in its part), or no stored results"},
    409: {"description": "the wave is not closed (results exist only for closed waves) or still closing"},
}


def _json(rendered: published.Rendered[Any]) -> Response:
    """The answer's JSON as rendered once for this table (it was validated against its model then)."""
    return Response(rendered.json, media_type="application/json")


UnitKey = Annotated[str | None, Query(max_length=100, description="a unit's key; default: the organisation(s)")]


@router.get(
    "/waves/{wave_id}/results",
    summary="A unit's results, optionally cut by one attribute",
    response_model=schemas.Results,
    responses={**ERRORS, 422: {"description": "unknown attribute"}, **tabular.CSV_RESPONSE},
)
def get_results(
    wave_id: int,
    key: ResultsReader,
    scope: ResultsScope,
    session: SessionDep,
    request: Request,
    unit: UnitKey = None,
    by: Annotated[str | None, Query(max_length=40, description="one of the wave's attributes")] = None,
) -> schemas.Results | Response:
    """The unit's total cell (n, constructs, items, eNPS, change) and with `by` its cuts; hidden cells marked.
    A manager key reads its own unit (the default) and the units below it."""
    _wave, table = stored_table(session, wave_id)
    out = published.results(table, unit or scope.unit, by, published.within(table, scope))
    audit.record(session, key, "results.read", wave_id, view="results", unit=unit, by=by)
    return tabular.results(out) if wants_csv(request) else out


@router.get(
    "/waves/{wave_id}/heatmap",
    summary="Units x constructs",
    response_model=schemas.Heatmap,
    responses={**ERRORS, **tabular.CSV_RESPONSE},
)
def get_heatmap(
    wave_id: int, key: ResultsReader, scope: ResultsScope, session: SessionDep, request: Request
) -> schemas.Heatmap | Response:
    """Every unit's mean, favourable share and n per construct; hidden cells say so and why. A manager key
    gets its organisation's row (the reference line) and the rows of its own part."""
    _wave, table = stored_table(session, wave_id)
    audit.record(session, key, "results.read", wave_id, view="heatmap")
    rendered = published.heatmap_view(table, scope)
    return tabular.heatmap(rendered.out) if wants_csv(request) else _json(rendered)


@router.get(
    "/waves/{wave_id}/flags",
    summary="Teams needing attention",
    response_model=schemas.Flags,
    responses={**ERRORS, **tabular.CSV_RESPONSE},
)
def get_flags(
    wave_id: int, key: ResultsReader, scope: ResultsScope, session: SessionDep, request: Request
) -> schemas.Flags | Response:
    """Each flag's unit, construct, rule, severity, evidence and message (Dutch and English); a manager key
    gets those of its own part."""
    _wave, table = stored_table(session, wave_id)
    audit.record(session, key, "results.read", wave_id, view="flags")
    rendered = published.flags_view(table, scope)
    return tabular.flags(rendered.out) if wants_csv(request) else _json(rendered)


@router.get(
    "/waves/{wave_id}/comments",
    summary="Free-text answers of a unit",
    response_model=schemas.Comments,
    responses={**ERRORS, **tabular.CSV_RESPONSE},
)
def get_comments(
    wave_id: int, key: HR, session: SessionDep, request: Request, unit: UnitKey = None
) -> schemas.Comments | Response:
    """Free text only for groups of at least twice the minimum group size, shuffled, without metadata."""
    _wave, table = stored_table(session, wave_id)
    out = published.comments(table, unit)
    audit.record(session, key, "comments.read", wave_id, unit=unit)
    return tabular.comments(out) if wants_csv(request) else out


@router.get(
    "/waves/{wave_id}/drivers",
    summary="What goes with eNPS and the intention to stay, and where to look first",
    response_model=schemas.Drivers,
    responses={**ERRORS, **tabular.CSV_RESPONSE},
)
def get_drivers(
    wave_id: int,
    key: ResultsReader,
    scope: ResultsScope,
    session: SessionDep,
    request: Request,
    unit: Annotated[str | None, Query(max_length=100, description="a unit's key; default: all with drivers")] = None,
) -> schemas.Drivers | Response:
    """Per unit of at least 30 respondents: each construct's correlation with the outcomes, and its focus areas.
    A manager key reads those of its own unit and the units below it."""
    _wave, table = stored_table(session, wave_id)
    out = published.drivers(table, unit, published.within(table, scope))
    audit.record(session, key, "results.read", wave_id, view="drivers", unit=unit)
    return tabular.drivers(out) if wants_csv(request) else out


@router.get(
    "/units/{unit_key}/trend",
    summary="A construct over closed waves",
    response_model=schemas.Trend,
    responses={
        401: ERRORS[401],
        403: ERRORS[403],
        404: {"description": "no such unit"},
        422: {"description": "no instrument has the construct"},
        **tabular.CSV_RESPONSE,
    },
)
def get_trend(
    unit_key: str,
    construct: Annotated[str, Query(min_length=1, max_length=64)],
    key: ResultsReader,
    scope: ResultsScope,
    session: SessionDep,
    request: Request,
    instruments: InstrumentsDep,
) -> schemas.Trend | Response:
    """The construct in the unit, wave by wave (oldest first), each point as that wave's table published it.
    A manager key reads the units of its own part (by the org tree as it is now)."""
    inside = scope.within(units.parents(session))
    if inside is not None and unit_key not in inside:
        raise NotFound(f"no unit {unit_key!r}")
    out = published.trend(session, unit_key, construct, instruments)
    audit.record(session, key, "results.read", view="trend", unit=unit_key, construct=construct)
    return tabular.trend(out) if wants_csv(request) else out
