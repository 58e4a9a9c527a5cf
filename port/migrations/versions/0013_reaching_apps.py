"""reaching apps: how flavours run (ports, command, env), Pod addresses, app_sessions

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-02 23:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSONType = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    # Plain ADD COLUMN (see 0009): rows from before run as their image says.
    for table in ("flavours", "pods"):
        op.add_column(
            table, sa.Column("run", JSONType, nullable=False, server_default=sa.text("'{}'"))
        )
    op.add_column("pods", sa.Column("address", sa.String(length=64), nullable=True))
    op.create_table(
        "app_sessions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("web_session_id", sa.Integer(), nullable=False),
        sa.Column("setup_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("code_hash", sa.String(length=64), nullable=True),
        sa.Column("code_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("secret_hash", sa.String(length=64), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["web_session_id"],
            ["web_sessions.id"],
            name=op.f("fk_app_sessions_web_session_id_web_sessions"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["setup_id"],
            ["setups.id"],
            name=op.f("fk_app_sessions_setup_id_setups"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_app_sessions_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_app_sessions")),
        sa.UniqueConstraint("code_hash", name=op.f("uq_app_sessions_code_hash")),
        sa.UniqueConstraint("secret_hash", name=op.f("uq_app_sessions_secret_hash")),
        sqlite_autoincrement=True,
    )
    for column in ("web_session_id", "setup_id", "user_id"):
        op.create_index(op.f(f"ix_app_sessions_{column}"), "app_sessions", [column])


def downgrade() -> None:
    for column in ("web_session_id", "setup_id", "user_id"):
        op.drop_index(op.f(f"ix_app_sessions_{column}"), table_name="app_sessions")
    op.drop_table("app_sessions")
    op.drop_column("pods", "address")
    for table in ("flavours", "pods"):
        op.drop_column(table, "run")
