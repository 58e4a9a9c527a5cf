"""GraphQL types of deployment: Setup, Pod, SetupEvent. Copies of rows, like types.py."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any, Self

import strawberry
from sqlalchemy import Select, select
from sqlalchemy.orm import selectinload
from strawberry import relay

from manifests.specs import Run
from port.api import permissions
from port.api.accounts import UserType
from port.api.context import Info
from port.api.loaders import EVENTS_SHOWN
from port.api.pagination import in_order
from port.api.scalars import JSON, Long
from port.api.types import AppType, ReleaseType, _row
from port.apps.addresses import AppOrigins
from port.apps.published import published_address
from port.apps.targets import setup_address
from port.deploy import models
from port.deploy.backends.base import BackendUnavailable, PodStatus
from port.deploy.models import EventKind, UpdatePolicy
from port.deploy.secrets import secret_names
from port.deploy.setups import setup_status, visible
from port.principal import Principal

PodStatusEnum = strawberry.enum(PodStatus, name="PodStatus")
UpdatePolicyEnum = strawberry.enum(
    UpdatePolicy,
    name="UpdatePolicy",
    description="Which new releases a Setup follows: NONE stays, PATCH 1.2.x, MINOR 1.x, "
    "MAJOR any newer, RANGE a semver range.",
)
EventKindEnum = strawberry.enum(
    EventKind, name="SetupEventKind", description="What a SetupEvent records."
)


def shown(principal: Principal) -> Select[models.Setup]:
    """The Setups ``principal`` may see, with what ``SetupType.from_row`` reads."""
    return visible(principal).options(
        selectinload(models.Setup.owner), selectinload(models.Setup.pods)
    )


async def _visible_rows(info: Info, model: Any, ids: Iterable[str]) -> dict[int, Any]:
    """Rows of ``model`` among ``ids`` the caller may see (others: as if absent)."""
    principal = info.context.principal
    if principal is None:
        return {}
    wanted = [int(i) for i in ids if i.isdigit()]
    async with info.context.state.sessions() as session:
        if model is models.Setup:
            rows = await session.scalars(shown(principal).where(models.Setup.id.in_(wanted)))
        else:
            setups = visible(principal).with_only_columns(models.Setup.id)
            rows = await session.scalars(
                select(models.Pod).where(models.Pod.id.in_(wanted), models.Pod.setup_id.in_(setups))
            )
        return {r.id: r for r in rows}


@strawberry.type(name="PodResources", description="What a Pod may use.")
class PodResources:
    cpus: float | None
    memory: Long | None = strawberry.field(description="Bytes.")
    gpus: int
    gpu_vendor: str | None = strawberry.field(
        description='"nvidia", "amd" or "intel" when gpus > 0.'
    )


@strawberry.type(
    name="PublishedPort",
    description="A tcp port of a Setup on a host port of Port's (PORT_PUBLISH_PORTS): "
    "no sign-in guards it.",
)
class PublishedPortType:
    name: str = strawberry.field(description="The manifest's name of the port.")
    protocol: str = strawberry.field(description='"tcp", or "http" (PORT_PUBLISH_HTTP).')
    port: int = strawberry.field(description="The port inside the container.")
    address: str = strawberry.field(description="host:port to connect to (a URL for http).")


@strawberry.type(name="PullProgress", description="How far the image pull got.")
class PullProgressType:
    layers: int
    done: Long
    total: Long


@strawberry.type(name="Pod", description="One container of a Setup on a backend.")
class PodType(relay.Node):
    id: relay.NodeID[int]
    flavour: str
    image: str
    image_digest: str | None = strawberry.field(
        description="The digest of the image its container runs (sha256:...), once started."
    )
    backend: str
    container_id: str | None
    status: PodStatusEnum  # type: ignore[valid-type]
    message: str | None = strawberry.field(description="Why it failed or is UNKNOWN.")
    exit_code: int | None
    restarts: int
    started_at: datetime | None
    stopped_at: datetime | None
    next_attempt_at: datetime | None = strawberry.field(description="Next restart after a crash.")
    retired: bool = strawberry.field(description="Stopped for good; kept as history.")
    selection: JSON = strawberry.field(
        description="The chosen flavour, its score, and why each other flavour lost."
    )
    pull: PullProgressType | None
    resources: PodResources = strawberry.field(description="Limits after the admin caps.")
    grants: JSON = strawberry.field(
        description="What it was granted of what its flavour asks (name, kind, source on "
        "the host, target inside, readOnly, shmMb, cap): all it gets beyond the sandbox."
    )
    setup_id: strawberry.Private[int]
    release_id: strawberry.Private[int]

    @classmethod
    def from_row(cls, row: models.Pod) -> Self:
        pull = row.pull
        return cls(
            id=row.id,
            flavour=row.flavour,
            image=row.image,
            image_digest=row.image_digest,
            backend=row.backend,
            container_id=row.container_id,
            status=PodStatus(row.status),
            message=row.message,
            exit_code=row.exit_code,
            restarts=row.restarts,
            started_at=row.started_at,
            stopped_at=row.stopped_at,
            next_attempt_at=row.next_attempt_at,
            retired=row.retired,
            selection=JSON(row.selection),
            grants=JSON(row.grants or []),
            pull=PullProgressType(
                layers=pull["layers"], done=Long(pull["done"]), total=Long(pull["total"])
            )
            if pull
            else None,
            resources=PodResources(
                cpus=row.cpus,
                memory=Long(row.memory) if row.memory is not None else None,
                gpus=row.gpus,
                gpu_vendor=row.gpu_vendor,
            ),
            setup_id=row.setup_id,
            release_id=row.release_id,
        )

    @classmethod
    async def resolve_nodes(
        cls, *, info: Info, node_ids: Iterable[str], required: bool = False
    ) -> list[Any]:
        ids = list(node_ids)
        return in_order(ids, await _visible_rows(info, models.Pod, ids), cls.from_row)

    @strawberry.field
    async def setup(self, info: Info) -> SetupType:
        principal = permissions.caller(info)  # who could see the Pod sees its Setup
        row = await info.context.loaders.setups_seen_by(principal).load(self.setup_id)
        return SetupType.from_row(_row(row))

    @strawberry.field
    async def release(self, info: Info) -> ReleaseType:
        return ReleaseType.from_row(_row(await info.context.loaders.release.load(self.release_id)))

    @strawberry.field(
        description="The last `tail` lines the container wrote (empty if none): at most "
        "PORT_LOGS_MAX_KB in one request, however many Pods and aliases ask."
    )
    async def logs(self, info: Info, tail: int = 100) -> str:
        if self.container_id is None:
            return ""
        try:
            text = await info.context.state.reconciler.backend.logs(
                self.container_id, max(0, min(tail, 10_000))
            )
        except BackendUnavailable:
            return ""
        return info.context.within_log_budget(text)


@strawberry.type(name="SetupEvent", description="Something that happened to a Setup or Pod.")
class SetupEventType:
    kind: EventKindEnum  # type: ignore[valid-type]
    message: str
    at: datetime
    setup_id: relay.GlobalID
    pod_id: relay.GlobalID | None

    @classmethod
    def from_row(cls, row: models.SetupEvent) -> Self:
        return cls(
            kind=row.kind,
            message=row.message,
            at=row.at,
            setup_id=relay.GlobalID("Setup", str(row.setup_id)),
            pod_id=relay.GlobalID("Pod", str(row.pod_id)) if row.pod_id is not None else None,
        )


@strawberry.type(name="Setup", description="A user's intent to run an app.")
class SetupType(relay.Node):
    id: relay.NodeID[int]
    owner: UserType
    flavour: str | None = strawberry.field(description="The pinned flavour; null: automatic.")
    update_policy: UpdatePolicyEnum  # type: ignore[valid-type]
    version_range: str | None
    include_prereleases: bool
    channel: str | None = strawberry.field(
        description="The channel it follows (each build the channel moves to); null: "
        "its update policy says which releases it moves to."
    )
    env: JSON
    running: bool = strawberry.field(description="Whether it should run (start/stop).")
    skipped_versions: list[str] = strawberry.field(
        description="Versions whose update was rolled back; not tried again."
    )
    grants: JSON = strawberry.field(
        description="The owner's consents to what the app asks, [{name, host, agreed}] "
        "(agreed: the terms consented to; a release that changes them asks again): its "
        "Pods get each that the admin's policy allows (see Pod.grants)."
    )
    consent_needed: JSON | None = strawberry.field(
        description="An update waiting for the owner's consent: {version, asks: {flavour: "
        "[capabilities]}}; grant them with grantSetup and it proceeds."
    )
    created_at: datetime
    app_id: strawberry.Private[int]
    release_id: strawberry.Private[int]
    pod_rows: strawberry.Private[list[models.Pod]]

    @classmethod
    def from_row(cls, row: models.Setup) -> Self:
        return cls(
            id=row.id,
            owner=UserType.from_row(row.owner),
            flavour=row.flavour,
            update_policy=UpdatePolicy(row.update_policy),
            version_range=row.version_range,
            include_prereleases=row.include_prereleases,
            channel=row.channel,
            env=JSON(row.env),
            running=row.wants_running,
            skipped_versions=list(row.skipped_versions),
            grants=JSON(row.grants or []),
            consent_needed=JSON(row.consent_needed) if row.consent_needed else None,
            created_at=row.created_at,
            app_id=row.app_id,
            release_id=row.release_id,
            pod_rows=list(row.pods),
        )

    @classmethod
    async def resolve_nodes(
        cls, *, info: Info, node_ids: Iterable[str], required: bool = False
    ) -> list[Any]:
        ids = list(node_ids)
        return in_order(ids, await _visible_rows(info, models.Setup, ids), cls.from_row)

    @strawberry.field
    async def app(self, info: Info) -> AppType:
        return AppType.from_row(_row(await info.context.loaders.app.load(self.app_id)))

    @strawberry.field(description="The names of its secret variables (values are never shown).")
    async def secret_names(self, info: Info) -> list[str]:
        async with info.context.state.sessions() as session:
            return (await secret_names(session, [self.id]))[self.id]

    @strawberry.field(description="The release new Pods run.")
    async def release(self, info: Info) -> ReleaseType:
        return ReleaseType.from_row(_row(await info.context.loaders.release.load(self.release_id)))

    @strawberry.field(
        description="Where its app's start page is, behind Port's sign-in (its owner may "
        "enter); null when the app serves no http port. Follows the Setup across updates."
    )
    async def address(self, info: Info) -> str | None:
        app = _row(await info.context.loaders.app.load(self.app_id))
        active = [p for p in self.pod_rows if not p.retired and not p.candidate]
        flavours = (
            [] if active else await info.context.loaders.flavours_of_release.load(self.release_id)
        )
        origins = AppOrigins.of(info.context.state.settings)
        runs = [Run.from_json(f.run) for f in flavours]
        return setup_address(origins, app.identifier, self.id, active, runs)

    @strawberry.field(
        description="Its tcp ports (and http ones with PORT_PUBLISH_HTTP) on host ports "
        "of Port's, when an admin allows publishing (PORT_PUBLISH_PORTS); each kept for "
        "the Setup's life. No sign-in guards them."
    )
    async def published_ports(self, info: Info) -> list[PublishedPortType]:
        settings = info.context.state.settings
        return [
            PublishedPortType(
                name=row.name,
                protocol=row.protocol,
                port=row.container_port,
                address=published_address(settings, row),
            )
            for row in await info.context.loaders.published_of_setup.load(self.id)
        ]

    @strawberry.field(description="Its newest active Pod's status; STOPPED when none runs.")
    def status(self) -> PodStatusEnum:  # type: ignore[valid-type]
        return setup_status(self.pod_rows, self.running)

    @strawberry.field(description="Active Pods, oldest first; `all` adds retired ones.")
    def pods(self, all: bool = False) -> list[PodType]:
        return [PodType.from_row(p) for p in self.pod_rows if all or not p.retired]

    @strawberry.field(description="The newest `limit` events, oldest first (at most 50).")
    async def events(self, info: Info, limit: int = EVENTS_SHOWN) -> list[SetupEventType]:
        rows = await info.context.loaders.events_of_setup.load(self.id)
        shown = rows[len(rows) - max(0, min(limit, EVENTS_SHOWN)) :]
        return [SetupEventType.from_row(r) for r in shown]


@strawberry.type(name="PendingUpdate", description="A Setup that would move, and where to.")
class PendingUpdateType:
    setup: SetupType
    current: str
    target: str
