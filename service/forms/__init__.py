"""The web form behind personal links: /s/{token}, its templates, its stylesheet and its two languages."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from service.forms.throttle import LinkMisses

STATIC_DIR = Path(__file__).parent / "static"


def install(app: FastAPI) -> None:
    """Mount the form's routes at /s/{token} and its stylesheet at /static/peil.css."""
    from service.forms.endpoints import router  # the router imports the app's dependencies

    settings = app.state.settings
    app.state.link_misses = LinkMisses(settings.link_miss_limit, settings.link_miss_window)
    app.include_router(router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
