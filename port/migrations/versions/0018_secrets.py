"""secrets: Setups' secret variables and users' own, sealed; pods.image_digest

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-04 19:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0018"
down_revision: str | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "secrets",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("owner_id", sa.Integer(), nullable=False),
        sa.Column("setup_id", sa.Integer(), nullable=True),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("sealed", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["owner_id"],
            ["users.id"],
            name=op.f("fk_secrets_owner_id_users"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["setup_id"],
            ["setups.id"],
            name=op.f("fk_secrets_setup_id_setups"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_secrets")),
        sa.UniqueConstraint("owner_id", "setup_id", "name", name=op.f("uq_secrets_owner_id")),
        sqlite_autoincrement=True,
    )
    with op.batch_alter_table("secrets") as batch_op:
        batch_op.create_index(batch_op.f("ix_secrets_owner_id"), ["owner_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_secrets_setup_id"), ["setup_id"], unique=False)
    op.add_column("pods", sa.Column("image_digest", sa.String(length=80), nullable=True))


def downgrade() -> None:
    op.drop_column("pods", "image_digest")
    op.drop_table("secrets")
