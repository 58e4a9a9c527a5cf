"""repos: who registered each (users manage only their own when PORT_REPO_ADMIN_ONLY is off)

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02 02:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A batch: SQLite adds a foreign key only by rebuilding the table, which must keep
    # the AUTOINCREMENT that 0008 gave it. Existing repositories have no registrant:
    # only admins manage them.
    with op.batch_alter_table("repos", table_kwargs={"sqlite_autoincrement": True}) as batch:
        batch.add_column(sa.Column("added_by_id", sa.Integer(), nullable=True))
        batch.create_foreign_key(
            "fk_repos_added_by_id_users", "users", ["added_by_id"], ["id"], ondelete="SET NULL"
        )


def downgrade() -> None:
    with op.batch_alter_table("repos", table_kwargs={"sqlite_autoincrement": True}) as batch:
        batch.drop_constraint("fk_repos_added_by_id_users", type_="foreignkey")
        batch.drop_column("added_by_id")
