"""The published result table of a closed wave: computed once by the scoring engine, stored, served."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from service.models.base import Base, utcnow


class WaveResult(Base):
    __tablename__ = "wave_results"

    wave_id: Mapped[int] = mapped_column(ForeignKey("waves.id", ondelete="CASCADE"), primary_key=True)
    built_at: Mapped[datetime] = mapped_column(default=utcnow)
    engine: Mapped[str] = mapped_column(String(32))
    table: Mapped[bytes] = mapped_column(LargeBinary)  # gzip-compressed JSON of scoring.ResultTable.to_dict()
    # The export's rows of that same table as Arrow IPC (service.exports.columns), derived when the table is
    # stored; null for a table stored before the column existed. Deferred: only the export reads it.
    columnar: Mapped[bytes | None] = mapped_column(LargeBinary, deferred=True)
