"""GET /instruments, GET /instruments/{slug}/{version}."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel

from service.auth import Reader
from service.deps import InstrumentsDep
from service.errors import NotFound

router = APIRouter(tags=["instruments"])


class InstrumentSummary(BaseModel):
    slug: str
    version: int
    title: dict[str, str]
    sha256: str
    items: int
    constructs: list[str]


class InstrumentList(BaseModel):
    instruments: list[InstrumentSummary]


@router.get("/instruments", summary="List instruments", responses={401: {}, 403: {}})
def list_instruments(_key: Reader, instruments: InstrumentsDep) -> InstrumentList:
    """Every published instrument version."""
    return InstrumentList(
        instruments=[
            InstrumentSummary(
                slug=slug,
                version=version,
                title=loaded.instrument.title.model_dump(),
                sha256=loaded.sha256,
                items=len(loaded.instrument.items),
                constructs=[c.id for c in loaded.instrument.constructs],
            )
            for (slug, version), loaded in sorted(instruments.items())
        ]
    )


@router.get("/instruments/{slug}/{version}", summary="One instrument", responses={401: {}, 403: {}, 404: {}})
def get_instrument(slug: str, version: int, _key: Reader, instruments: InstrumentsDep) -> dict[str, Any]:
    """The whole instrument definition, as in its file."""
    loaded = instruments.get((slug, version))
    if loaded is None:
        raise NotFound(f"no instrument {slug}/{version}")
    return {"sha256": loaded.sha256, **loaded.instrument.model_dump(mode="json", by_alias=True)}
