"""GET /exports (the run history) and POST /exports (run one now), for the hr role."""

from __future__ import annotations

from fastapi import APIRouter, Query, Request

from service.auth import HR
from service.db import SessionDep
from service.deps import SettingsDep
from service.errors import Conflict, Unprocessable
from service.exports.schemas import ExportRequest, ExportRunOut, ExportRuns
from service.exports.service import ExportBusy, list_runs, run_export

router = APIRouter(tags=["exports"])


@router.get("/exports", summary="Export runs", responses={401: {}, 403: {}})
def get_runs(_key: HR, session: SessionDep, limit: int = Query(default=100, ge=1, le=1000)) -> ExportRuns:
    """Export runs, newest first: status, when, which waves, rows per table, target, error."""
    return ExportRuns(runs=[ExportRunOut.model_validate(r) for r in list_runs(session, limit)])


@router.post("/exports", status_code=201, summary="Run an export now", responses={401: {}, 403: {}, 409: {}})
def post_run(
    key: HR, session: SessionDep, settings: SettingsDep, request: Request, body: ExportRequest | None = None
) -> ExportRunOut:
    """Run the export now (incremental unless ``full``) and answer with the run; 409 while another runs.

    A run that fails is answered with ``status: failed`` and its error; the previous export is untouched.
    """
    actor = key.name
    # The run commits its own progress from other sessions: end this request's transaction first, so that on
    # SQLite (one writer at a time) it doesn't hold the write lock the run needs.
    session.commit()
    body = body or ExportRequest()
    try:
        run = run_export(
            request.app.state.sessionmaker, settings, trigger="api", actor=actor, full=body.full, waves=body.waves
        )
    except ExportBusy as exc:
        raise Conflict(str(exc), code="export_running") from exc
    except ValueError as exc:
        raise Unprocessable(str(exc)) from exc
    return ExportRunOut.model_validate(run)
