"""The HR pages: /hr, signed in with an API key; results as a heatmap, units, flags and participation."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from service.forms.throttle import LinkMisses

STATIC_DIR = Path(__file__).parent / "static"


def install(app: FastAPI) -> None:
    """Mount the pages at /hr, their stylesheet at /hr/static, and the throttle of failed sign-ins (counted per
    address like unknown survey links, and as strictly)."""
    from service.hr.endpoints import router  # the router imports the app's dependencies

    settings = app.state.settings
    app.state.login_misses = LinkMisses(settings.link_miss_limit, settings.link_miss_window)
    app.include_router(router)
    app.mount("/hr/static", StaticFiles(directory=STATIC_DIR), name="hr-static")
