"""flavours and pods: what the image says it supports (read-only root, non-root)

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02 01:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = ("read_only", "non_root")


def upgrade() -> None:
    # Plain ADD COLUMN, not a batch: on SQLite a batch would rebuild the table without
    # the AUTOINCREMENT that 0008 gave it.
    for table in ("flavours", "pods"):
        for column in COLUMNS:
            op.add_column(
                table, sa.Column(column, sa.Boolean(), nullable=False, server_default=sa.false())
            )


def downgrade() -> None:
    for table in ("flavours", "pods"):
        for column in COLUMNS:
            op.drop_column(table, column)
