"""Participation of an open wave as last shown: refreshed at most hourly, so polling learns nothing finer."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey
from sqlalchemy.orm import Mapped, mapped_column

from service.models.base import Base


class ParticipationSnapshot(Base):
    __tablename__ = "participation_snapshots"

    wave_id: Mapped[int] = mapped_column(ForeignKey("waves.id", ondelete="CASCADE"), primary_key=True)
    computed_at: Mapped[datetime]
    # The shown cells (service.waves.participation): per unit its invitations and stepped rate, or why hidden.
    cells: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
