"""create_app(): settings, database, instruments, middleware, one error handler, the routers."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial

from fastapi import FastAPI
from fastapi.responses import JSONResponse

from service import errors
from service.auth import AnyKey
from service.clients import RealClient
from service.config import Settings, get_settings
from service.db import make_engine, make_sessionmaker
from service.instruments.loader import load_definitions
from service.instruments.registry import publish
from service.middleware import BodyLimit, SecurityHeaders
from service.scheduler import start_scheduler, wake

log = logging.getLogger("peil")


def create_app(settings: Settings | None = None, *, scheduler: bool = True) -> FastAPI:
    settings = settings or get_settings()
    engine = make_engine(settings.database_url, wal_limit=settings.wal_limit)
    factory = make_sessionmaker(engine)
    instruments = load_definitions(settings.definitions_dir)
    secret = settings.secret()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        publish(factory, instruments)
        jobs = start_scheduler(settings, factory, instruments) if scheduler else None
        app.state.wake_close_worker = None if jobs is None else partial(wake, jobs)  # for HR's close
        try:
            yield
        finally:
            if jobs is not None:
                jobs.shutdown(wait=False)
            engine.dispose()

    public_docs = settings.is_development
    app = FastAPI(
        title="Peil",
        version="1",
        summary="Employee pulse surveys on careers and psychological safety, with proven anonymity.",
        lifespan=lifespan,
        # Outside development the schema is for key holders only (below) and the browsable docs are off.
        openapi_url="/openapi.json" if public_docs else None,
        docs_url="/docs" if public_docs else None,
        redoc_url="/redoc" if public_docs else None,
    )
    app.state.settings = settings
    app.state.engine = engine
    app.state.sessionmaker = factory
    app.state.instruments = instruments
    app.state.secret = secret
    app.state.wake_close_worker = None  # runs the close worker now, once the lifespan has started it

    errors.install(app)
    from service.routes import include_routers

    include_routers(app)
    if not public_docs:
        serve_schema_to_keys(app)
    app.add_middleware(SecurityHeaders)
    app.add_middleware(BodyLimit, limit=settings.max_body_bytes)
    app.add_middleware(RealClient, proxies=settings.proxies())  # outermost: every layer sees the real client
    return app


def serve_schema_to_keys(app: FastAPI) -> None:
    """``GET /openapi.json`` for any active API key: what a client may call is no business of passers-by."""

    @app.get("/openapi.json", include_in_schema=False)
    def openapi(_key: AnyKey) -> JSONResponse:
        return JSONResponse(app.openapi())
