"""setups.grants, setups.consent_needed, pods.grants: capabilities granted by consent

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-04 19:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSONType = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    # Plain ADD COLUMN (see 0009): Setups and Pods made before were granted nothing.
    op.add_column(
        "setups", sa.Column("grants", JSONType, nullable=False, server_default=sa.text("'[]'"))
    )
    op.add_column("setups", sa.Column("consent_needed", JSONType, nullable=True))
    op.add_column(
        "pods", sa.Column("grants", JSONType, nullable=False, server_default=sa.text("'[]'"))
    )


def downgrade() -> None:
    op.drop_column("pods", "grants")
    op.drop_column("setups", "consent_needed")
    op.drop_column("setups", "grants")
