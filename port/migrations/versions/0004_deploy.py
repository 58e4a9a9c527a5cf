"""deploy: setups, pods, events

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29 10:56:35.647525
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "setups",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("owner_id", sa.Integer(), nullable=False),
        sa.Column("app_id", sa.Integer(), nullable=False),
        sa.Column("release_id", sa.Integer(), nullable=False),
        sa.Column("flavour", sa.String(length=255), nullable=True),
        sa.Column("update_policy", sa.String(length=8), nullable=False),
        sa.Column("version_range", sa.String(length=255), nullable=True),
        sa.Column("include_prereleases", sa.Boolean(), nullable=False),
        sa.Column("env", JSON, nullable=False),
        sa.Column("wants_running", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["app_id"], ["apps.id"], name=op.f("fk_setups_app_id_apps"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["owner_id"], ["users.id"], name=op.f("fk_setups_owner_id_users"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["release_id"],
            ["releases.id"],
            name=op.f("fk_setups_release_id_releases"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_setups")),
    )
    with op.batch_alter_table("setups", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_setups_app_id"), ["app_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_setups_owner_id"), ["owner_id"], unique=False)

    op.create_table(
        "pods",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("setup_id", sa.Integer(), nullable=False),
        sa.Column("release_id", sa.Integer(), nullable=False),
        sa.Column("flavour", sa.String(length=255), nullable=False),
        sa.Column("image", sa.String(length=1024), nullable=False),
        sa.Column("backend", sa.String(length=64), nullable=False),
        sa.Column("selection", JSON, nullable=False),
        sa.Column("cpus", sa.Float(), nullable=True),
        sa.Column("memory", sa.BigInteger(), nullable=True),
        sa.Column("gpus", sa.Integer(), nullable=False),
        sa.Column("container_id", sa.String(length=128), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("message", sa.Text(), nullable=True),
        sa.Column("exit_code", sa.Integer(), nullable=True),
        sa.Column("pull", JSON, nullable=True),
        sa.Column("restarts", sa.Integer(), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("restart_requested", sa.Boolean(), nullable=False),
        sa.Column("retired", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("stopped_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["release_id"],
            ["releases.id"],
            name=op.f("fk_pods_release_id_releases"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["setup_id"], ["setups.id"], name=op.f("fk_pods_setup_id_setups"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pods")),
    )
    with op.batch_alter_table("pods", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_pods_retired"), ["retired"], unique=False)
        batch_op.create_index(batch_op.f("ix_pods_setup_id"), ["setup_id"], unique=False)

    op.create_table(
        "setup_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("setup_id", sa.Integer(), nullable=False),
        sa.Column("pod_id", sa.Integer(), nullable=True),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["pod_id"], ["pods.id"], name=op.f("fk_setup_events_pod_id_pods"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["setup_id"],
            ["setups.id"],
            name=op.f("fk_setup_events_setup_id_setups"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_setup_events")),
    )
    with op.batch_alter_table("setup_events", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_setup_events_setup_id"), ["setup_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("setup_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_setup_events_setup_id"))

    op.drop_table("setup_events")
    with op.batch_alter_table("pods", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_pods_setup_id"))
        batch_op.drop_index(batch_op.f("ix_pods_retired"))

    op.drop_table("pods")
    with op.batch_alter_table("setups", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_setups_owner_id"))
        batch_op.drop_index(batch_op.f("ix_setups_app_id"))

    op.drop_table("setups")
