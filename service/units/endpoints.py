"""PUT /units, GET /units: the org tree."""

from __future__ import annotations

from fastapi import APIRouter

from service import audit
from service.auth import HR, Reader
from service.db import SessionDep
from service.units import service
from service.units.schemas import UnitOut, Units, UnitsPut, UnitsPutResult

router = APIRouter(tags=["units"])


@router.put("/units", summary="Upsert the org tree", responses={401: {}, 403: {}, 413: {}, 422: {}})
def put_units(body: UnitsPut, key: HR, session: SessionDep) -> UnitsPutResult:
    """Insert or update units; an unknown parent, a cycle or a duplicate key refuses the whole request."""
    created, updated = service.upsert(session, body.units)
    audit.record(session, key, "units.upserted", created=created, updated=updated)
    return UnitsPutResult(created=created, updated=updated, total=len(service.load_tree(session).keys))


@router.get("/units", summary="The org tree", responses={401: {}, 403: {}})
def get_units(_key: Reader, session: SessionDep) -> Units:
    """Every unit, parents before children."""
    tree = service.load_tree(session)
    return Units(
        units=[
            UnitOut(key=key, name=name, parent_key=tree.keys[p] if p >= 0 else None)
            for key, name, p in zip(tree.keys, tree.names, tree.parent, strict=True)
        ]
    )
