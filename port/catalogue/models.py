"""SQLAlchemy models of the catalogue: Repo -> App -> Release -> Flavour, and index runs.

Kept apart from the GraphQL types and from the indexer's plain results; the ingest
module is the only place that turns one into the other.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any, TypeAlias

from sqlalchemy import (
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    Integer,
    LargeBinary,
    Row,
    String,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from port.orm import Base, JSONType, Named, UTCDateTime, utcnow


class IndexRunStatus(enum.StrEnum):
    """How an index run ended. ``unchanged``: the remote had not moved, nothing read."""

    SUCCEEDED = "succeeded"
    UNCHANGED = "unchanged"
    FAILED = "failed"


class Repo(Base):
    """A registered git remote. ``refs``/``head`` are what the last good run saw."""

    __tablename__ = "repos"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    url: Mapped[str] = mapped_column(String(2048), unique=True)
    branch: Mapped[str | None] = mapped_column(String(255))
    manifest_path: Mapped[str] = mapped_column(String(1024), default="port.yaml")
    tag_prefix: Mapped[str] = mapped_column(String(255), default="")
    # Channels of an OCI repository whose builds are indexed (indexer/oci.py).
    channels: Mapped[list[str]] = mapped_column(JSONType, default=list)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    indexed_branch: Mapped[str | None] = mapped_column(String(255))
    head: Mapped[str | None] = mapped_column(String(64))
    refs: Mapped[dict[str, str]] = mapped_column(JSONType, default=dict)
    # HMAC key of the forge's webhook: needed in clear to verify signatures, so it is
    # never returned by the API nor logged.
    webhook_secret: Mapped[str | None] = mapped_column(String(255))
    # Who registered it: with PORT_REPO_ADMIN_ONLY off, users manage only their own.
    added_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    # When the poller next looks at the remote (None: soon); webhooks push it back.
    next_poll_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # Deleted by an admin's force while users' Setups ran its apps: its releases are
    # withdrawn, it is never indexed or listed again, and the row goes with the last
    # of those Setups (port/deploy/operations.py).
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    apps: Mapped[list[App]] = relationship(
        back_populates="repo", cascade="all, delete-orphan", passive_deletes=True
    )
    runs: Mapped[list[IndexRun]] = relationship(
        back_populates="repo", cascade="all, delete-orphan", passive_deletes=True
    )


class App(Base):
    """An app identifier, owned forever by the first Repo that declared it.

    The descriptive fields mirror the newest non-withdrawn release's manifest
    (``meta_version`` says which), so browsing needs no release lookup.
    """

    __tablename__ = "apps"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    identifier: Mapped[str] = mapped_column(String(100), unique=True)
    repo_id: Mapped[int] = mapped_column(ForeignKey("repos.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(255))
    description: Mapped[str] = mapped_column(Text, default="")
    logo: Mapped[str | None] = mapped_column(String(2048))
    homepage: Mapped[str | None] = mapped_column(String(2048))
    license: Mapped[str | None] = mapped_column(String(255))
    author: Mapped[str | None] = mapped_column(String(255))
    categories: Mapped[list[str]] = mapped_column(JSONType, default=list)
    scopes: Mapped[list[str]] = mapped_column(JSONType, default=list)
    requirements: Mapped[list[dict[str, Any]]] = mapped_column(JSONType, default=list)
    meta_version: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    repo: Mapped[Repo] = relationship(back_populates="apps")
    releases: Mapped[list[Release]] = relationship(
        back_populates="app", cascade="all, delete-orphan", passive_deletes=True
    )


class AppLogo(Base):
    """An app's logo image, read from its repository at index time and served by Port
    (a visitor's browser never loads a manifest's URL). PNG, JPEG, GIF or WebP only."""

    __tablename__ = "app_logos"

    app_id: Mapped[int] = mapped_column(ForeignKey("apps.id", ondelete="CASCADE"), primary_key=True)
    content_type: Mapped[str] = mapped_column(String(32))
    data: Mapped[bytes] = mapped_column(LargeBinary)
    digest: Mapped[str] = mapped_column(String(64))  # SHA-256: the served URL's version
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Release(Base):
    """One semver version of an app.

    ``withdrawn``: its tag vanished (kept, never chosen for updates). ``current``: still
    published (a tag exists, or the Arkitekt entry is in the file at the branch head).
    ``channel``: a channel's build (an OCI descriptor under the channel's tag), chosen
    only by Setups on that channel; ``current`` while the channel points at it.
    """

    __tablename__ = "releases"
    __table_args__ = (UniqueConstraint("app_id", "version", name="uq_releases_app_version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    app_id: Mapped[int] = mapped_column(ForeignKey("apps.id", ondelete="CASCADE"), index=True)
    version: Mapped[str] = mapped_column(String(255))
    source: Mapped[str] = mapped_column(String(16))  # "port", "arkitekt" or "oci"
    channel: Mapped[str | None] = mapped_column(String(128))
    current: Mapped[bool] = mapped_column(Boolean, default=True)
    withdrawn: Mapped[bool] = mapped_column(Boolean, default=False)
    git_ref: Mapped[str] = mapped_column(String(1024))
    commit: Mapped[str] = mapped_column(String(64))
    file: Mapped[str] = mapped_column(String(1024))
    entrypoint: Mapped[str | None] = mapped_column(String(1024))
    app_meta: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    app: Mapped[App] = relationship(back_populates="releases")
    flavours: Mapped[list[Flavour]] = relationship(
        back_populates="release",
        cascade="all, delete-orphan",
        passive_deletes=True,
        order_by="Flavour.position",
    )


class Flavour(Base):
    """One build of a release: image, selectors (normalised JSON) and default resources."""

    __tablename__ = "flavours"
    __table_args__ = (UniqueConstraint("release_id", "name", name="uq_flavours_release_name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    release_id: Mapped[int] = mapped_column(
        ForeignKey("releases.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(255))
    position: Mapped[int] = mapped_column(Integer, default=0)
    image: Mapped[str] = mapped_column(String(1024))
    selectors: Mapped[list[dict[str, Any]]] = mapped_column(JSONType, default=list)
    # What it must be granted where it runs (manifests.capabilities, the spec's spelling).
    capabilities: Mapped[list[dict[str, Any]]] = mapped_column(JSONType, default=list)
    cpus: Mapped[float | None] = mapped_column(Float)
    memory: Mapped[int | None] = mapped_column(BigInteger)
    # What the image says it supports (port.yaml's sandbox): Pods run so by default.
    read_only: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    non_root: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # How the image is run: ports, command, args, env (manifests.specs.Run.as_json).
    run: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)

    release: Mapped[Release] = relationship(back_populates="flavours")


# A release or a flavour as read: the entity, or a plain row of its table's columns
# (same names; the API's list loaders read those: port/api/loaders.py).
ReleaseRow: TypeAlias = Release | Row[Any]
FlavourRow: TypeAlias = Flavour | Row[Any]


class IndexRun(Base):
    """One scan of a Repo: when, which commit, what changed, and every error."""

    __tablename__ = "index_runs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    repo_id: Mapped[int] = mapped_column(ForeignKey("repos.id", ondelete="CASCADE"), index=True)
    status: Mapped[IndexRunStatus] = mapped_column(Named(IndexRunStatus, 16))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    branch: Mapped[str | None] = mapped_column(String(255))
    commit: Mapped[str | None] = mapped_column(String(64))
    added: Mapped[list[str]] = mapped_column(JSONType, default=list)
    changed: Mapped[list[str]] = mapped_column(JSONType, default=list)
    withdrawn: Mapped[list[str]] = mapped_column(JSONType, default=list)
    message: Mapped[str | None] = mapped_column(Text)  # why a failed run failed
    blobs_read: Mapped[int] = mapped_column(Integer, default=0)

    repo: Mapped[Repo] = relationship(back_populates="runs")
    errors: Mapped[list[IndexRunError]] = relationship(
        back_populates="run",
        cascade="all, delete-orphan",
        passive_deletes=True,
        order_by="IndexRunError.id",
    )


class IndexRunError(Base):
    """One located manifest error of a run (file, git ref, YAML line, field path)."""

    __tablename__ = "index_run_errors"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("index_runs.id", ondelete="CASCADE"), index=True)
    file: Mapped[str] = mapped_column(String(1024))
    ref: Mapped[str | None] = mapped_column(String(1024))
    line: Mapped[int | None] = mapped_column(Integer)
    column: Mapped[int | None] = mapped_column(Integer)
    path: Mapped[str] = mapped_column(String(1024), default="")
    message: Mapped[str] = mapped_column(Text)

    run: Mapped[IndexRun] = relationship(back_populates="errors")
