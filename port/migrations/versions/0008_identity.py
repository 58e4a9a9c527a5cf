"""identity: ids never reused on SQLite; the installation's instance name

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01 22:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Every table with an id, parents before children (env.py turns foreign keys off on
# SQLite while tables are rebuilt, so their rows survive the copy).
TABLES = (
    "users",
    "tokens",
    "repos",
    "apps",
    "releases",
    "flavours",
    "index_runs",
    "index_run_errors",
    "setups",
    "pods",
    "setup_events",
    "jobs",
    "webhook_deliveries",
)


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        # SQLite hands the largest id out again after a delete unless the table says
        # AUTOINCREMENT; that needs a rebuilt table. PostgreSQL sequences never go back.
        for name in TABLES:
            with op.batch_alter_table(
                name, recreate="always", table_kwargs={"sqlite_autoincrement": True}
            ):
                pass  # the rebuild with the new table options is the whole change
    op.create_table(
        "installation",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("instance", sa.String(length=31), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_installation")),
        sa.UniqueConstraint("instance", name=op.f("uq_installation_instance")),
        sqlite_autoincrement=True,
    )
    # An installation that ran Pods already labelled them with the old default name:
    # it keeps that name, or its running containers would look like strangers' to it.
    if op.get_bind().execute(sa.text("SELECT 1 FROM pods LIMIT 1")).first() is not None:
        op.execute(
            "INSERT INTO installation (id, instance, created_at) "
            "VALUES (1, 'port', CURRENT_TIMESTAMP)"
        )


def downgrade() -> None:
    op.drop_table("installation")
