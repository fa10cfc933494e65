"""audit by key id; participation snapshots of open waves

The audit log names the API key that acted by its id (names are not unique); null for the command line and
the clock. An open wave's participation is shown from a snapshot refreshed at most hourly (rule 3).

Revision ID: 78e9dc9286db
Revises: 6be9d0a00aea
Create Date: 2026-12-04 17:10:41.657469
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import service.models.base

revision: str = "78e9dc9286db"
down_revision: str | None = "6be9d0a00aea"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "participation_snapshots",
        sa.Column("wave_id", sa.Integer(), nullable=False),
        sa.Column("computed_at", service.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("cells", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["wave_id"], ["waves.id"], name=op.f("fk_participation_snapshots_wave_id_waves"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("wave_id", name=op.f("pk_participation_snapshots")),
    )
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.add_column(sa.Column("by_key_id", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.drop_column("by_key_id")
    op.drop_table("participation_snapshots")
