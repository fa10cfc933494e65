"""close job: the state ``closing``, the job's attempts, error, retry time and lease on the wave; a response's
day answered becomes nullable (dropped when its wave closes)

Downgrading turns a closing wave back into an open one (its window has ended: the old code closes it by the
clock) and gives a response without a day the day of the downgrade.

Revision ID: b3c1f2a9d8e4
Revises: 463f7f8da975
Create Date: 2026-12-05 12:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from service.models.base import UTCDateTime

revision: str = "b3c1f2a9d8e4"
down_revision: str | None = "463f7f8da975"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("waves", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("ck_waves_state"), type_="check")
        batch_op.create_check_constraint(op.f("ck_waves_state"), "state IN ('draft', 'open', 'closing', 'closed')")
        batch_op.add_column(sa.Column("close_attempts", sa.Integer(), server_default="0", nullable=False))
        batch_op.add_column(sa.Column("close_error", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("close_retry_at", UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("close_owner", sa.String(length=100), nullable=True))
        batch_op.add_column(sa.Column("close_lease_until", UTCDateTime(timezone=True), nullable=True))
    with op.batch_alter_table("responses", schema=None) as batch_op:
        batch_op.alter_column("answered_on", existing_type=sa.Date(), nullable=True)


def downgrade() -> None:
    op.execute("UPDATE responses SET answered_on = CURRENT_DATE WHERE answered_on IS NULL")
    with op.batch_alter_table("responses", schema=None) as batch_op:
        batch_op.alter_column("answered_on", existing_type=sa.Date(), nullable=False)
    op.execute("UPDATE waves SET state = 'open' WHERE state = 'closing'")
    with op.batch_alter_table("waves", schema=None) as batch_op:
        batch_op.drop_column("close_lease_until")
        batch_op.drop_column("close_owner")
        batch_op.drop_column("close_retry_at")
        batch_op.drop_column("close_error")
        batch_op.drop_column("close_attempts")
        batch_op.drop_constraint(op.f("ck_waves_state"), type_="check")
        batch_op.create_check_constraint(op.f("ck_waves_state"), "state IN ('draft', 'open', 'closed')")
