"""flavours.capabilities: what a flavour must be granted where it runs (Arkitekt spec)

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-04 13:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSONType = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    # Plain ADD COLUMN (see 0009): flavours indexed before asked for nothing, as far as
    # Port knew; the next index run of their repository reads what they ask for.
    op.add_column(
        "flavours",
        sa.Column("capabilities", JSONType, nullable=False, server_default=sa.text("'[]'")),
    )


def downgrade() -> None:
    op.drop_column("flavours", "capabilities")
