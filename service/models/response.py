"""Responses: the answers behind one link, tied to nothing but a keyed hash of the token.

A response holds no invitation or participant id, a random id, and while its wave is open the date of the last
change (no time). On SQLite the table has no rowid, so not even the physical order of rows follows the order of
answering. When the wave closes, its responses are written again as fresh rows, with new ids, in a random
order, without the date (``service.waves.close``): neither the order of rows on disk nor their transaction ids
nor a date then says when anyone answered.
"""

from __future__ import annotations

import uuid
from datetime import date
from typing import Any

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from service.models.base import Base


def random_id() -> str:
    return uuid.uuid4().hex


class Response(Base):
    __tablename__ = "responses"
    __table_args__ = {"sqlite_with_rowid": False}

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=random_id)
    wave_id: Mapped[int] = mapped_column(ForeignKey("waves.id", ondelete="CASCADE"), index=True)
    unit_id: Mapped[int] = mapped_column(ForeignKey("units.id", ondelete="RESTRICT"))
    attributes: Mapped[dict[str, Any]]
    token_mac: Mapped[str] = mapped_column(String(64), unique=True)
    answers: Mapped[dict[str, Any]]
    complete: Mapped[bool] = mapped_column(default=False)
    answered_on: Mapped[date | None]
