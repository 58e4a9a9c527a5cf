"""pods: the vendor of their GPUs

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-29 14:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("pods", schema=None) as batch_op:
        batch_op.add_column(sa.Column("gpu_vendor", sa.String(length=16), nullable=True))
    # Pods that had GPUs before could only have had NVIDIA ones.
    op.execute("UPDATE pods SET gpu_vendor = 'nvidia' WHERE gpus > 0")


def downgrade() -> None:
    with op.batch_alter_table("pods", schema=None) as batch_op:
        batch_op.drop_column("gpu_vendor")
