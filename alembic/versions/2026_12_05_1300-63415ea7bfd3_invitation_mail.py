"""invitation mail: sealed contacts and mail state on invitations, reminder rounds, the mail lock, a wave's language

Invitations that exist before this revision were handed out by HR as links: they count as sent, and have no
contact to mail.

Revision ID: 63415ea7bfd3
Revises: b3c1f2a9d8e4
Create Date: 2026-12-04 17:08:46.867090
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import service.models.base

revision: str = "63415ea7bfd3"
down_revision: str | None = "b3c1f2a9d8e4"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "mail_lock",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("owner", sa.String(length=100), nullable=True),
        sa.Column("locked_until", service.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("paused_until", service.models.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mail_lock")),
    )
    op.create_table(
        "reminder_rounds",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("wave_id", sa.Integer(), nullable=False),
        sa.Column("requested_at", service.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("not_before", service.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("sealed_cursor", sa.LargeBinary(), nullable=True),
        sa.Column("retries", sa.Integer(), nullable=False),
        sa.Column("retry_at", service.models.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("finished_at", service.models.base.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["wave_id"], ["waves.id"], name=op.f("fk_reminder_rounds_wave_id_waves"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reminder_rounds")),
    )
    with op.batch_alter_table("reminder_rounds", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_reminder_rounds_wave_id"), ["wave_id"], unique=False)

    # Existing rows take the server defaults (links HR handed out: sent; no retries); new rows get theirs from
    # the application, so the defaults are dropped again below.
    with op.batch_alter_table("invitations", schema=None) as batch_op:
        batch_op.add_column(sa.Column("sealed_contact", sa.LargeBinary(), nullable=True))
        batch_op.add_column(sa.Column("email_mac", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("state", sa.String(length=8), nullable=False, server_default="sent"))
        batch_op.add_column(sa.Column("retries", sa.Integer(), nullable=False, server_default="0"))
        batch_op.add_column(sa.Column("retry_at", service.models.base.UTCDateTime(timezone=True), nullable=True))
        batch_op.alter_column("token_hash", existing_type=sa.VARCHAR(length=64), nullable=True)
        batch_op.create_index(batch_op.f("ix_invitations_state"), ["state"], unique=False)
        batch_op.create_unique_constraint(batch_op.f("uq_invitations_wave_id_email_mac"), ["wave_id", "email_mac"])
        batch_op.create_check_constraint(
            op.f("ck_invitations_state"), "state IN ('pending', 'sent', 'failed', 'removed')"
        )
    with op.batch_alter_table("invitations", schema=None) as batch_op:
        batch_op.alter_column("state", existing_type=sa.String(length=8), server_default=None)
        batch_op.alter_column("retries", existing_type=sa.Integer(), server_default=None)

    with op.batch_alter_table("waves", schema=None) as batch_op:
        batch_op.add_column(sa.Column("language", sa.String(length=2), nullable=False, server_default="nl"))
    with op.batch_alter_table("waves", schema=None) as batch_op:
        batch_op.alter_column("language", existing_type=sa.String(length=2), server_default=None)


def downgrade() -> None:
    with op.batch_alter_table("waves", schema=None) as batch_op:
        batch_op.drop_column("language")

    # A removed participant's invitation has no link hash, which the older schema requires: it goes (its
    # response, tied to nothing, stays).
    op.execute("DELETE FROM invitations WHERE token_hash IS NULL")
    with op.batch_alter_table("invitations", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("ck_invitations_state"), type_="check")
        batch_op.drop_constraint(batch_op.f("uq_invitations_wave_id_email_mac"), type_="unique")
        batch_op.drop_index(batch_op.f("ix_invitations_state"))
        batch_op.alter_column("token_hash", existing_type=sa.VARCHAR(length=64), nullable=False)
        batch_op.drop_column("retry_at")
        batch_op.drop_column("retries")
        batch_op.drop_column("state")
        batch_op.drop_column("email_mac")
        batch_op.drop_column("sealed_contact")

    with op.batch_alter_table("reminder_rounds", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_reminder_rounds_wave_id"))
    op.drop_table("reminder_rounds")
    op.drop_table("mail_lock")
