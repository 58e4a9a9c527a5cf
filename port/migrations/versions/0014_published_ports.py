"""published ports: the host ports (PORT_PUBLISH_PORTS) of Setups' tcp ports

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-03 09:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "published_ports",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("setup_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=32), nullable=False),
        sa.Column("protocol", sa.String(length=8), nullable=False),
        sa.Column("container_port", sa.Integer(), nullable=False),
        sa.Column("host_port", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["setup_id"],
            ["setups.id"],
            name=op.f("fk_published_ports_setup_id_setups"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_published_ports")),
        sa.UniqueConstraint("host_port", name=op.f("uq_published_ports_host_port")),
        sa.UniqueConstraint("setup_id", "name", name=op.f("uq_published_ports_setup_id")),
        sqlite_autoincrement=True,
    )
    op.create_index(op.f("ix_published_ports_setup_id"), "published_ports", ["setup_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_published_ports_setup_id"), table_name="published_ports")
    op.drop_table("published_ports")
