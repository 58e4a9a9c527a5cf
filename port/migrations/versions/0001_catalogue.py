"""catalogue: repos, apps, releases, flavours, index runs

Revision ID: 0001
Revises:
Create Date: 2026-11-29 08:58:59.172847
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# JSONB on PostgreSQL, JSON text elsewhere; frozen here so later model edits cannot change history.
JSONType = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "repos",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("url", sa.String(length=2048), nullable=False),
        sa.Column("branch", sa.String(length=255), nullable=True),
        sa.Column("manifest_path", sa.String(length=1024), nullable=False),
        sa.Column("tag_prefix", sa.String(length=255), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("indexed_branch", sa.String(length=255), nullable=True),
        sa.Column("head", sa.String(length=64), nullable=True),
        sa.Column("refs", JSONType, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_repos")),
        sa.UniqueConstraint("url", name=op.f("uq_repos_url")),
    )
    op.create_table(
        "apps",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("identifier", sa.String(length=100), nullable=False),
        sa.Column("repo_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("logo", sa.String(length=2048), nullable=True),
        sa.Column("homepage", sa.String(length=2048), nullable=True),
        sa.Column("license", sa.String(length=255), nullable=True),
        sa.Column("author", sa.String(length=255), nullable=True),
        sa.Column("categories", JSONType, nullable=False),
        sa.Column("scopes", JSONType, nullable=False),
        sa.Column("requirements", JSONType, nullable=False),
        sa.Column("meta_version", sa.String(length=255), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["repo_id"], ["repos.id"], name=op.f("fk_apps_repo_id_repos"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_apps")),
        sa.UniqueConstraint("identifier", name=op.f("uq_apps_identifier")),
    )
    with op.batch_alter_table("apps", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_apps_repo_id"), ["repo_id"], unique=False)

    op.create_table(
        "index_runs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("repo_id", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("branch", sa.String(length=255), nullable=True),
        sa.Column("commit", sa.String(length=64), nullable=True),
        sa.Column("added", JSONType, nullable=False),
        sa.Column("changed", JSONType, nullable=False),
        sa.Column("withdrawn", JSONType, nullable=False),
        sa.Column("message", sa.Text(), nullable=True),
        sa.Column("blobs_read", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["repo_id"], ["repos.id"], name=op.f("fk_index_runs_repo_id_repos"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_index_runs")),
    )
    with op.batch_alter_table("index_runs", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_index_runs_repo_id"), ["repo_id"], unique=False)

    op.create_table(
        "index_run_errors",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("file", sa.String(length=1024), nullable=False),
        sa.Column("ref", sa.String(length=1024), nullable=True),
        sa.Column("line", sa.Integer(), nullable=True),
        sa.Column("column", sa.Integer(), nullable=True),
        sa.Column("path", sa.String(length=1024), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["index_runs.id"],
            name=op.f("fk_index_run_errors_run_id_index_runs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_index_run_errors")),
    )
    with op.batch_alter_table("index_run_errors", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_index_run_errors_run_id"), ["run_id"], unique=False)

    op.create_table(
        "releases",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("app_id", sa.Integer(), nullable=False),
        sa.Column("version", sa.String(length=255), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("current", sa.Boolean(), nullable=False),
        sa.Column("withdrawn", sa.Boolean(), nullable=False),
        sa.Column("git_ref", sa.String(length=1024), nullable=False),
        sa.Column("commit", sa.String(length=64), nullable=False),
        sa.Column("file", sa.String(length=1024), nullable=False),
        sa.Column("entrypoint", sa.String(length=1024), nullable=True),
        sa.Column("app_meta", JSONType, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["app_id"], ["apps.id"], name=op.f("fk_releases_app_id_apps"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_releases")),
        sa.UniqueConstraint("app_id", "version", name="uq_releases_app_version"),
    )
    with op.batch_alter_table("releases", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_releases_app_id"), ["app_id"], unique=False)

    op.create_table(
        "flavours",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("release_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("image", sa.String(length=1024), nullable=False),
        sa.Column("selectors", JSONType, nullable=False),
        sa.Column("cpus", sa.Float(), nullable=True),
        sa.Column("memory", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(
            ["release_id"],
            ["releases.id"],
            name=op.f("fk_flavours_release_id_releases"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_flavours")),
        sa.UniqueConstraint("release_id", "name", name="uq_flavours_release_name"),
    )
    with op.batch_alter_table("flavours", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_flavours_release_id"), ["release_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("flavours", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_flavours_release_id"))

    op.drop_table("flavours")
    with op.batch_alter_table("releases", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_releases_app_id"))

    op.drop_table("releases")
    with op.batch_alter_table("index_run_errors", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_index_run_errors_run_id"))

    op.drop_table("index_run_errors")
    with op.batch_alter_table("index_runs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_index_runs_repo_id"))

    op.drop_table("index_runs")
    with op.batch_alter_table("apps", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_apps_repo_id"))

    op.drop_table("apps")
    op.drop_table("repos")
