"""wave results: the export's columnar copy of each stored table

Nullable: tables stored before this revision have none; the export derives it from their JSON and stores it.

Revision ID: 6be9d0a00aea
Revises: 7ed337ee9f31
Create Date: 2026-11-23 11:49:49.996915
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "6be9d0a00aea"
down_revision: str | None = "7ed337ee9f31"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("wave_results", schema=None) as batch_op:
        batch_op.add_column(sa.Column("columnar", sa.LargeBinary(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("wave_results", schema=None) as batch_op:
        batch_op.drop_column("columnar")
