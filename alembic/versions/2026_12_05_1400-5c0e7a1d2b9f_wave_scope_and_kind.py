"""wave scope and kind: a wave limited to a subtree (``scope_unit_id``), continuous waves and their periods

Downgrading keeps every wave: a continuous wave becomes an ordinary one, and its published periods ordinary
closed waves with their own tables; a scoped wave keeps the participants and the table it has.

Revision ID: 5c0e7a1d2b9f
Revises: 63415ea7bfd3
Create Date: 2026-12-05 14:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "5c0e7a1d2b9f"
down_revision: str | None = "63415ea7bfd3"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("waves", schema=None) as batch_op:
        batch_op.add_column(sa.Column("kind", sa.String(length=10), server_default="single", nullable=False))
        batch_op.add_column(sa.Column("scope_unit_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("parent_id", sa.Integer(), nullable=True))
        batch_op.create_check_constraint(op.f("ck_waves_kind"), "kind IN ('single', 'continuous', 'period')")
        batch_op.create_foreign_key(
            op.f("fk_waves_scope_unit_id_units"), "units", ["scope_unit_id"], ["id"], ondelete="RESTRICT"
        )
        batch_op.create_foreign_key(
            op.f("fk_waves_parent_id_waves"), "waves", ["parent_id"], ["id"], ondelete="CASCADE"
        )
        batch_op.create_index(batch_op.f("ix_waves_parent_id"), ["parent_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("waves", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_waves_parent_id"))
        batch_op.drop_constraint(op.f("fk_waves_parent_id_waves"), type_="foreignkey")
        batch_op.drop_constraint(op.f("fk_waves_scope_unit_id_units"), type_="foreignkey")
        batch_op.drop_constraint(op.f("ck_waves_kind"), type_="check")
        batch_op.drop_column("parent_id")
        batch_op.drop_column("scope_unit_id")
        batch_op.drop_column("kind")
