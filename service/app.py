"""create_app(): settings, database, instruments, middleware, one error handler, the routers."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial

from fastapi import FastAPI

from service import errors
from service.config import Settings, get_settings
from service.db import make_engine, make_sessionmaker
from service.instruments.loader import load_definitions
from service.instruments.registry import publish
from service.middleware import BodyLimit, SecurityHeaders
from service.scheduler import start_scheduler, wake

log = logging.getLogger("peil")


def create_app(settings: Settings | None = None, *, scheduler: bool = True) -> FastAPI:
    settings = settings or get_settings()
    engine = make_engine(settings.database_url)
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

    app = FastAPI(
        title="Peil",
        version="1",
        summary="Employee pulse surveys on careers and psychological safety, with proven anonymity.",
        lifespan=lifespan,
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
    app.add_middleware(SecurityHeaders)
    app.add_middleware(BodyLimit, limit=settings.max_body_bytes)
    return app
