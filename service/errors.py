"""One exception family carrying its status, and one JSON shape for every error: {"error": {"code", "message"}}."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DataError, DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import compile_path

from service.logs import describe, scrubbed_traceback

log = logging.getLogger("peil")


class PeilError(Exception):
    status = 400
    code = "bad_request"

    def __init__(self, message: str, *, details: list[dict[str, Any]] | None = None, code: str | None = None):
        super().__init__(message)
        self.message = message
        self.details = details
        if code is not None:
            self.code = code


class Unauthorized(PeilError):
    status, code = 401, "unauthorized"


class Forbidden(PeilError):
    status, code = 403, "forbidden"


class NotFound(PeilError):
    status, code = 404, "not_found"


class Conflict(PeilError):
    status, code = 409, "conflict"


class Unprocessable(PeilError):
    status, code = 422, "invalid"


class BodyTooLarge(Exception):
    """Raised by the body-limit middleware while a body is being read; becomes 413 however it surfaces."""


DATABASE_ERRORS = (PoolTimeout, DBAPIError)
RETRY_AFTER_SECONDS = 5  # what a 503 (database unavailable) asks the client to wait


def database_unavailable(exc: Exception) -> bool:
    """True (and logged) for a database that is restarting, unreachable or overloaded: the client should come
    back (503). False for a database error that is our fault (500)."""
    if isinstance(exc, DBAPIError) and not (exc.connection_invalidated or isinstance(exc, OperationalError)):
        return False
    log.warning("database unavailable: %s", type(exc).__name__)
    return True


def error_body(code: str, message: str, details: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message}
    if details:
        error["details"] = details
    return {"error": error}


_STATUS_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "invalid",
    429: "too_many_requests",
}


def _validation_details(exc: RequestValidationError) -> list[dict[str, Any]]:
    details = []
    for err in exc.errors()[:50]:
        loc = [str(p) for p in err.get("loc", ()) if p not in ("body",)]
        details.append({"field": ".".join(loc), "reason": str(err.get("msg", "invalid"))})
    return details


def _allowed_methods(request: Request) -> list[str]:
    """The methods the published API offers on the request's path (empty for paths outside the schema)."""
    path = request.scope.get("path", "")
    for template, operations in request.app.openapi().get("paths", {}).items():
        if compile_path(template)[0].match(path):
            return sorted(method.upper() for method in operations)
    return []


def install(app: FastAPI) -> None:
    """Register the handlers that turn every failure into the one JSON shape, without internal detail."""

    @app.exception_handler(PeilError)
    async def _peil(_request: Request, exc: PeilError) -> JSONResponse:
        headers = {"Retry-After": "5"} if exc.status in (429, 503) else None
        return JSONResponse(error_body(exc.code, exc.message, exc.details), status_code=exc.status, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        details = _validation_details(exc)
        message = "; ".join(f"{d['field'] or 'body'}: {d['reason']}" for d in details[:5]) or "invalid request"
        return JSONResponse(error_body("invalid", message, details), status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        status, headers = exc.status_code, exc.headers
        if status == 400 and isinstance(exc.__cause__, BodyTooLarge):  # FastAPI wraps errors of reading a body
            return JSONResponse(error_body("payload_too_large", "the request body is too large"), status_code=413)
        if status == 400:  # FastAPI's "error parsing the body" (e.g. bytes that are not UTF-8 JSON): bad input
            return JSONResponse(error_body("invalid", "the request body cannot be read"), status_code=422)
        if status == 405:
            allowed = _allowed_methods(request)
            if allowed:  # every method of the path, not only those of the first route that matched it
                headers = {**(headers or {}), "Allow": ", ".join(allowed)}
        code = _STATUS_CODES.get(status, "error")
        message = exc.detail if isinstance(exc.detail, str) else code.replace("_", " ")
        return JSONResponse(error_body(code, message), status_code=status, headers=headers)

    @app.exception_handler(OverflowError)
    @app.exception_handler(DataError)
    async def _out_of_range(_request: Request, _exc: Exception) -> JSONResponse:
        # A number too large for the database's integers (an id of 2**63, say): bad input, not a crash.
        return JSONResponse(error_body("invalid", "a value is out of range"), status_code=422)

    @app.exception_handler(PoolTimeout)
    @app.exception_handler(DBAPIError)
    async def _database(_request: Request, exc: Exception) -> JSONResponse:
        if not database_unavailable(exc):
            log.error("database error: %s\n%s", describe(exc), scrubbed_traceback(exc))
            return JSONResponse(error_body("internal", "internal error"), status_code=500)
        return JSONResponse(
            error_body("unavailable", "the database is unavailable; try again shortly"),
            status_code=503,
            headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
        )

    @app.exception_handler(Exception)
    async def _crash(_request: Request, exc: Exception) -> JSONResponse:
        log.error("unhandled error: %s\n%s", describe(exc), scrubbed_traceback(exc))
        return JSONResponse(error_body("internal", "internal error"), status_code=500)
