"""Every router of the service, in one place."""

from __future__ import annotations

from fastapi import FastAPI

from service import forms, hr
from service.audit.endpoints import router as audit
from service.exports.endpoints import router as exports
from service.health import router as health
from service.instruments.endpoints import router as instruments
from service.keys.endpoints import router as keys
from service.outcomes.endpoints import router as outcomes
from service.pilots.endpoints import router as pilots
from service.results.endpoints import router as results
from service.units.endpoints import router as units
from service.waves.endpoints import router as waves

API = "/api/v1"


def include_routers(app: FastAPI) -> None:
    # The form first: routes are tried in order, and a survey's busiest hour is all form posts.
    forms.install(app)
    hr.install(app)
    app.include_router(health)
    for router in (instruments, units, waves, results, outcomes, pilots, keys, audit, exports):
        app.include_router(router, prefix=API)
