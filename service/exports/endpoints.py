"""GET /exports (the run history) and POST /exports (run one now), for the hr role."""

from __future__ import annotations

import threading
from concurrent.futures import Future

from fastapi import APIRouter, Query, Request, Response
from sqlalchemy.orm import Session, sessionmaker

from service.auth import HR
from service.config import Settings
from service.db import SessionDep
from service.deps import SettingsDep
from service.errors import Conflict, Unprocessable
from service.exports.schemas import ExportRequest, ExportRunOut, ExportRuns
from service.exports.service import ExportBusy, list_runs, run_export
from service.models import ExportRun

router = APIRouter(tags=["exports"])

# How long POST /exports waits for its run to finish before it answers 202 with the run still running. A file
# export of 100,000 respondents takes about a second; a SQL export of as many rows can take minutes, longer
# than a proxy keeps a request open.
POST_WAIT_SECONDS = 10.0


@router.get("/exports", summary="Export runs", responses={401: {}, 403: {}})
def get_runs(_key: HR, session: SessionDep, limit: int = Query(default=100, ge=1, le=1000)) -> ExportRuns:
    """Export runs, newest first: status, when, which waves, rows per table, target, error."""
    return ExportRuns(runs=[ExportRunOut.model_validate(r) for r in list_runs(session, limit)])


def _start_run(
    factory: sessionmaker[Session], settings: Settings, actor: str, body: ExportRequest
) -> tuple[int, Future[ExportRun]]:
    """Run the export in its own thread; its run id once recorded, and the run when it ends.

    Refusals (another run holds the lock, an unknown wave) come before the run starts and are raised here.
    The thread is not a daemon: a server shutting down lets a run finish rather than leave it half done (a
    killed run would be recorded as failed and repaired by the next one anyway).
    """
    started: Future[int] = Future()
    finished: Future[ExportRun] = Future()

    def work() -> None:
        try:
            finished.set_result(
                run_export(
                    factory,
                    settings,
                    trigger="api",
                    actor=actor,
                    full=body.full,
                    waves=body.waves,
                    started=started.set_result,
                )
            )
        except BaseException as exc:
            if not started.done():
                started.set_exception(exc)
            finished.set_exception(exc)

    threading.Thread(target=work, name="export-api", daemon=False).start()
    return started.result(), finished


@router.post(
    "/exports",
    status_code=201,
    summary="Run an export now",
    responses={
        202: {"description": "still running after POST_WAIT_SECONDS: poll GET /exports", "model": ExportRunOut},
        401: {},
        403: {},
        409: {},
        422: {},
    },
)
def post_run(
    key: HR,
    session: SessionDep,
    settings: SettingsDep,
    request: Request,
    response: Response,
    body: ExportRequest | None = None,
) -> ExportRunOut:
    """Run the export now (incremental unless ``full``): 201 with the run once it has finished, or 202 with the
    run still running if it takes longer than 10 s; 409 while another runs.

    A run that fails is answered with ``status: failed`` and its error; the previous export is untouched.
    """
    # The run commits its own progress from other sessions: end this request's transaction first, so that on
    # SQLite (one writer at a time) it doesn't hold the write lock the run needs.
    session.commit()
    try:
        run_id, finished = _start_run(request.app.state.sessionmaker, settings, key.name, body or ExportRequest())
    except ExportBusy as exc:
        raise Conflict(str(exc), code="export_running") from exc
    except ValueError as exc:
        raise Unprocessable(str(exc)) from exc
    try:
        return ExportRunOut.model_validate(finished.result(timeout=POST_WAIT_SECONDS))
    except TimeoutError:
        response.status_code = 202
        return ExportRunOut.model_validate(session.get_one(ExportRun, run_id))
