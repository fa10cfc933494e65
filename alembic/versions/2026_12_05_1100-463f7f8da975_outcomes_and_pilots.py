"""outcomes and pilots: HR's counts per unit and period, each period's published table, declared pilots

Revision ID: 463f7f8da975
Revises: f7ed851e4086
Create Date: 2026-12-04 17:17:46.043175
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import service.models.base

revision: str = "463f7f8da975"
down_revision: str | None = "f7ed851e4086"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "outcome_periods",
        sa.Column("period", sa.String(length=7), nullable=False),
        sa.Column("starts_on", sa.Date(), nullable=False),
        sa.Column("ends_on", sa.Date(), nullable=False),
        sa.Column("min_group_size", sa.Integer(), nullable=False),
        sa.Column("built_at", service.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("table", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("period", name=op.f("pk_outcome_periods")),
    )
    op.create_table(
        "pilots",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("starts_on", sa.Date(), nullable=False),
        sa.Column("units", sa.JSON(), nullable=False),
        sa.Column("comparison", sa.JSON(), nullable=True),
        sa.Column("created_at", service.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pilots")),
    )
    op.create_table(
        "outcome_counts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("period", sa.String(length=7), nullable=False),
        sa.Column("unit_id", sa.Integer(), nullable=False),
        sa.Column("headcount_start", sa.Integer(), nullable=False),
        sa.Column("headcount_end", sa.Integer(), nullable=False),
        sa.Column("leavers", sa.Integer(), nullable=False),
        sa.Column("moves_in", sa.Integer(), nullable=False),
        sa.Column("moves_out", sa.Integer(), nullable=False),
        sa.Column("promotions", sa.Integer(), nullable=False),
        sa.Column("months_waited", sa.Double(), nullable=False),
        sa.CheckConstraint(
            "headcount_start >= 0 AND headcount_end >= 0 AND leavers >= 0 AND moves_in >= 0 AND moves_out >= 0 AND promotions >= 0 AND months_waited >= 0",
            name=op.f("ck_outcome_counts_not_negative"),
        ),
        sa.ForeignKeyConstraint(
            ["unit_id"], ["units.id"], name=op.f("fk_outcome_counts_unit_id_units"), ondelete="RESTRICT"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outcome_counts")),
        sa.UniqueConstraint("period", "unit_id", name=op.f("uq_outcome_counts_period_unit_id")),
    )
    with op.batch_alter_table("outcome_counts", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_outcome_counts_period"), ["period"], unique=False)
        batch_op.create_index(batch_op.f("ix_outcome_counts_unit_id"), ["unit_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("outcome_counts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_outcome_counts_unit_id"))
        batch_op.drop_index(batch_op.f("ix_outcome_counts_period"))

    op.drop_table("outcome_counts")
    op.drop_table("pilots")
    op.drop_table("outcome_periods")
