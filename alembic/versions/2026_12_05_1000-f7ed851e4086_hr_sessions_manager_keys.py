"""hr pages: signed-in sessions, and manager keys scoped to a unit

api_keys gains unit_id (a manager key's unit; null for every other role) and the role manager;
hr_sessions holds the sessions of the HR pages (keyed by the SHA-256 of the cookie's token).

Revision ID: f7ed851e4086
Revises: 78e9dc9286db
Create Date: 2026-12-05 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import service.models.base

revision: str = "f7ed851e4086"
down_revision: str | None = "78e9dc9286db"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.add_column(sa.Column("unit_id", sa.Integer(), nullable=True))
        batch_op.create_index(batch_op.f("ix_api_keys_unit_id"), ["unit_id"], unique=False)
        batch_op.create_foreign_key(
            batch_op.f("fk_api_keys_unit_id_units"), "units", ["unit_id"], ["id"], ondelete="RESTRICT"
        )
        batch_op.drop_constraint(batch_op.f("ck_api_keys_role"), type_="check")
        batch_op.create_check_constraint(
            batch_op.f("ck_api_keys_role"), "role IN ('hr', 'dashboard', 'admin', 'manager')"
        )
        batch_op.create_check_constraint(
            batch_op.f("ck_api_keys_manager_unit"), "(role = 'manager') = (unit_id IS NOT NULL)"
        )
    op.create_table(
        "hr_sessions",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("key_id", sa.Integer(), nullable=False),
        sa.Column("csrf", sa.String(length=64), nullable=False),
        sa.Column("lang", sa.String(length=2), nullable=False),
        sa.Column("created_at", service.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", service.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["key_id"], ["api_keys.id"], name=op.f("fk_hr_sessions_key_id_api_keys"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_hr_sessions")),
    )
    with op.batch_alter_table("hr_sessions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_hr_sessions_key_id"), ["key_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_hr_sessions_last_seen_at"), ["last_seen_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("hr_sessions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_hr_sessions_last_seen_at"))
        batch_op.drop_index(batch_op.f("ix_hr_sessions_key_id"))
    op.drop_table("hr_sessions")
    op.execute("DELETE FROM api_keys WHERE role = 'manager'")  # the older schema has no place for them
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("ck_api_keys_manager_unit"), type_="check")
        batch_op.drop_constraint(batch_op.f("ck_api_keys_role"), type_="check")
        batch_op.create_check_constraint(batch_op.f("ck_api_keys_role"), "role IN ('hr', 'dashboard', 'admin')")
        batch_op.drop_constraint(batch_op.f("fk_api_keys_unit_id_units"), type_="foreignkey")
        batch_op.drop_index(batch_op.f("ix_api_keys_unit_id"))
        batch_op.drop_column("unit_id")
