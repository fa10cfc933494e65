"""GET /healthz: answers without a key; checks the database."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel
from sqlalchemy import text

from service.db import SessionDep

router = APIRouter(tags=["health"])


class Health(BaseModel):
    status: str
    database: str


@router.get("/healthz", summary="Liveness and database check")
def healthz(session: SessionDep) -> Health:
    """Answers 200 when the service and its database answer."""
    session.execute(text("SELECT 1"))
    return Health(status="ok", database=session.get_bind().dialect.name)
