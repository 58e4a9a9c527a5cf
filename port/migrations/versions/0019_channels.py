"""channels: a Repo's followed channels, a Release's channel, a Setup's channel

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-04 23:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0019"
down_revision: str | None = "0018"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSONType = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    # Plain ADD COLUMNs (see 0009): nothing followed a channel before.
    op.add_column(
        "repos", sa.Column("channels", JSONType, nullable=False, server_default=sa.text("'[]'"))
    )
    op.add_column("releases", sa.Column("channel", sa.String(length=128), nullable=True))
    op.add_column("setups", sa.Column("channel", sa.String(length=128), nullable=True))


def downgrade() -> None:
    op.drop_column("setups", "channel")
    op.drop_column("releases", "channel")
    op.drop_column("repos", "channels")
