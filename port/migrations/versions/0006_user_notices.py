"""users: notice URL and secret

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29 14:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.add_column(sa.Column("notify_url", sa.String(length=2048), nullable=True))
        batch_op.add_column(sa.Column("notify_secret", sa.String(length=255), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_column("notify_secret")
        batch_op.drop_column("notify_url")
