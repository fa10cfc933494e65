"""Invitations: a participant of a wave, their unit, their attributes sealed under their token, and its SHA-256."""

from __future__ import annotations

from sqlalchemy import ForeignKey, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from service.models.base import Base


class Invitation(Base):
    __tablename__ = "invitations"

    id: Mapped[int] = mapped_column(primary_key=True)
    wave_id: Mapped[int] = mapped_column(ForeignKey("waves.id", ondelete="CASCADE"), index=True)
    unit_id: Mapped[int] = mapped_column(ForeignKey("units.id", ondelete="RESTRICT"), index=True)
    sealed_attributes: Mapped[bytes] = mapped_column(LargeBinary)  # links.seal(token, attributes)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
