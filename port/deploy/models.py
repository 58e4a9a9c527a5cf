"""SQLAlchemy models of deployment: a user's Setup of an App, its Pods, and their events.

A Setup is intent ("run Stardist for me, following 1.x"); ``wants_running`` is what the
reconciler converges to. A Pod is one attempt to realise it on a backend: chosen
release, flavour (with the reasons for the choice), limits, container and status. A
stopped Pod is retired (kept as history, its container removed); the next start makes
a new Pod. Every state change is a SetupEvent, which the API shows and streams.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from port.accounts.models import User
from port.catalogue.models import App, Release
from port.deploy.backends.base import PodStatus
from port.orm import Base, JSONType, Named, UTCDateTime, utcnow


class UpdatePolicy(enum.StrEnum):
    """Which newer releases a Setup moves to by itself (docs/updates.md)."""

    NONE = "NONE"
    PATCH = "PATCH"
    MINOR = "MINOR"
    MAJOR = "MAJOR"
    RANGE = "RANGE"


class EventKind(enum.StrEnum):
    """What a SetupEvent records."""

    CREATED = "CREATED"
    STARTED = "STARTED"
    STOPPED = "STOPPED"
    POLICY_CHANGED = "POLICY_CHANGED"
    RESTART_REQUESTED = "RESTART_REQUESTED"
    POD_RUNNING = "POD_RUNNING"
    POD_FAILED = "POD_FAILED"
    POD_RESTARTED = "POD_RESTARTED"
    POD_RECREATED = "POD_RECREATED"
    POD_ADOPTED = "POD_ADOPTED"
    POD_STOPPED = "POD_STOPPED"
    ENGINE_DOWN = "ENGINE_DOWN"
    UPDATE_AVAILABLE = "UPDATE_AVAILABLE"
    UPDATE_REQUESTED = "UPDATE_REQUESTED"
    UPDATE_STARTED = "UPDATE_STARTED"
    UPDATE_SUCCEEDED = "UPDATE_SUCCEEDED"
    UPDATE_ROLLED_BACK = "UPDATE_ROLLED_BACK"
    UPDATE_ABANDONED = "UPDATE_ABANDONED"
    REPO_DELETED = "REPO_DELETED"  # its repository was deleted by force: no more updates
    GRANTS_CHANGED = "GRANTS_CHANGED"
    SECRETS_CHANGED = "SECRETS_CHANGED"  # names only, never values
    IMAGE_CHANGED = "IMAGE_CHANGED"  # the same image reference, another digest: rebuilt
    # A newer release asks for more than was granted: it waits for the owner's consent.
    UPDATE_NEEDS_CONSENT = "UPDATE_NEEDS_CONSENT"


class Setup(Base):
    """One user's intent to run an App. Deleted with its owner or its App."""

    __tablename__ = "setups"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    app_id: Mapped[int] = mapped_column(ForeignKey("apps.id", ondelete="CASCADE"), index=True)
    # The release new Pods run; the updater moves it along the update policy.
    release_id: Mapped[int] = mapped_column(ForeignKey("releases.id", ondelete="CASCADE"))
    flavour: Mapped[str | None] = mapped_column(String(255))  # a user's pin, else automatic
    update_policy: Mapped[UpdatePolicy] = mapped_column(
        Named(UpdatePolicy, 8), default=UpdatePolicy.NONE
    )
    version_range: Mapped[str | None] = mapped_column(String(255))
    include_prereleases: Mapped[bool] = mapped_column(Boolean, default=False)
    # A channel's builds, followed as they come (port/deploy/policy.py), else None.
    channel: Mapped[str | None] = mapped_column(String(128))
    env: Mapped[dict[str, str]] = mapped_column(JSONType, default=dict)
    # The owner's consents, by capability name (``grants.Consent.as_json``).
    grants: Mapped[list[dict[str, Any]]] = mapped_column(JSONType, default=list)
    # An update waiting for the owner's consent: {"version", "flavour", "asks"}.
    consent_needed: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    wants_running: Mapped[bool] = mapped_column(Boolean, default=False)
    # Versions whose update was rolled back: not tried again (a newer one is).
    skipped_versions: Mapped[list[str]] = mapped_column(JSONType, default=list)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    owner: Mapped[User] = relationship()
    app: Mapped[App] = relationship()
    release: Mapped[Release] = relationship()
    pods: Mapped[list[Pod]] = relationship(
        back_populates="setup",
        cascade="all, delete-orphan",
        passive_deletes=True,
        order_by="Pod.id",
    )

    @property
    def follows(self) -> str:
        """What moves it, in words: ``channel main``, or its update policy."""
        return f"channel {self.channel}" if self.channel else str(self.update_policy)


class Pod(Base):
    """One container of a Setup, and everything Port decided about it."""

    __tablename__ = "pods"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    setup_id: Mapped[int] = mapped_column(ForeignKey("setups.id", ondelete="CASCADE"), index=True)
    release_id: Mapped[int] = mapped_column(ForeignKey("releases.id", ondelete="CASCADE"))
    flavour: Mapped[str] = mapped_column(String(255))
    image: Mapped[str] = mapped_column(String(1024))
    # What the engine ran for ``image`` (``sha256:...``): a rebuilt tag shows as a change.
    image_digest: Mapped[str | None] = mapped_column(String(80))
    backend: Mapped[str] = mapped_column(String(64))
    selection: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    cpus: Mapped[float | None] = mapped_column(Float)  # limits after the admin caps
    memory: Mapped[int | None] = mapped_column(BigInteger)
    gpus: Mapped[int] = mapped_column(Integer, default=0)
    gpu_vendor: Mapped[str | None] = mapped_column(String(16))  # nvidia|amd|intel, with gpus > 0
    read_only: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    non_root: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    run: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)  # the flavour's
    # What it was granted (``grants.Grant.as_json``): all the backend gives beyond the sandbox.
    grants: Mapped[list[dict[str, Any]]] = mapped_column(JSONType, default=list)
    # Where the container answers on its network (the engine's word), while it runs.
    address: Mapped[str | None] = mapped_column(String(64))
    container_id: Mapped[str | None] = mapped_column(String(128))
    status: Mapped[PodStatus] = mapped_column(Named(PodStatus, 16), default=PodStatus.PENDING)
    message: Mapped[str | None] = mapped_column(Text)  # why it failed / is unknown
    exit_code: Mapped[int | None] = mapped_column(Integer)
    pull: Mapped[dict[str, int] | None] = mapped_column(JSONType)  # layers, done, total bytes
    restarts: Mapped[int] = mapped_column(Integer, default=0)
    failures: Mapped[int] = mapped_column(Integer, default=0)  # in a row: sets the backoff
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    restart_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    # The new Pod of an update until it proved healthy: the reconciler runs it but does
    # not restart it (a crash is the updater's verdict, not something to retry).
    candidate: Mapped[bool] = mapped_column(Boolean, default=False)
    # Retired: history only. Its container is gone and the reconciler leaves it alone.
    retired: Mapped[bool] = mapped_column(Boolean, default=False, index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    stopped_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    setup: Mapped[Setup] = relationship(back_populates="pods")
    release: Mapped[Release] = relationship()


class SetupEvent(Base):
    """Something that happened to a Setup or one of its Pods, in words and a kind."""

    __tablename__ = "setup_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    setup_id: Mapped[int] = mapped_column(ForeignKey("setups.id", ondelete="CASCADE"), index=True)
    pod_id: Mapped[int | None] = mapped_column(ForeignKey("pods.id", ondelete="SET NULL"))
    kind: Mapped[EventKind] = mapped_column(Named(EventKind, 32))
    message: Mapped[str] = mapped_column(Text, default="")
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Secret(Base):
    """A secret variable, sealed (``port.secretbox``): a Setup's own, or with no Setup
    its owner's, which Pods of the owner's Arkitekt apps get (the redeem token).
    Write-only: no API, log or event ever holds ``sealed`` or what it opens to."""

    __tablename__ = "secrets"
    __table_args__ = (UniqueConstraint("owner_id", "setup_id", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    setup_id: Mapped[int | None] = mapped_column(
        ForeignKey("setups.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(128))
    sealed: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Installation(Base):
    """This Port installation, one row: what every Port process on the database shares.

    ``instance`` names its engine objects (the ``port.instance`` label, name prefixes),
    so two installations on one engine never touch each other's containers.
    """

    __tablename__ = "installation"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    instance: Mapped[str] = mapped_column(String(31), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
