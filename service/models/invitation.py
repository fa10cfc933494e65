"""Invitations: a participant of a wave, their unit, their attributes sealed under their link token, its SHA-256,
their contact sealed under the service secret while mail may still be sent, and where their mail stands."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, LargeBinary, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from service.models.base import Base

# pending: the invitation mail is still to be sent (when the wave is open); sent: the mail server accepted it;
# failed: refused for good (a 5xx, or too many temporary refusals); removed: taken out of an open wave by HR.
STATES = ("pending", "sent", "failed", "removed")


class Invitation(Base):
    __tablename__ = "invitations"
    __table_args__ = (
        CheckConstraint("state IN ('pending', 'sent', 'failed', 'removed')", name="state"),
        UniqueConstraint("wave_id", "email_mac"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    wave_id: Mapped[int] = mapped_column(ForeignKey("waves.id", ondelete="CASCADE"), index=True)
    unit_id: Mapped[int] = mapped_column(ForeignKey("units.id", ondelete="RESTRICT"), index=True)
    sealed_attributes: Mapped[bytes] = mapped_column(LargeBinary)  # links.seal(token, attributes)
    token_hash: Mapped[str | None] = mapped_column(String(64), unique=True)  # None once removed: the link is dead
    # contact.seal(secret, Contact(email, language, token)) and contact.email_mac(secret, wave, email): kept while
    # mail may still be sent for the wave, erased (None) when it closes or the participant is removed.
    sealed_contact: Mapped[bytes | None] = mapped_column(LargeBinary)
    email_mac: Mapped[str | None] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(8), default="pending", index=True)
    # Temporary refusals of the pending invitation mail, and when to try again; cleared once it is sent.
    retries: Mapped[int] = mapped_column(default=0)
    retry_at: Mapped[datetime | None]
