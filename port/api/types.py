"""GraphQL types. Kept apart from the SQLAlchemy models: ``from_row`` copies what is
shown, and relations resolve through the request's DataLoaders."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict
from datetime import datetime
from enum import Enum
from typing import Any, ClassVar, Self, TypeVar, cast

import strawberry
from strawberry import relay

from indexer.urls import redact
from manifests.fields import MAX_FLAVOURS
from manifests.specs import Run
from port.api.context import Info
from port.api.pagination import Window, encode_cursor
from port.api.scalars import JSON, Long
from port.api.webhooks import WebhookUrlsType
from port.catalogue import models
from port.catalogue.queries import latest_release
from port.errors import NotFound

T = TypeVar("T")


def connection_of(cls: Any, items: list[Any], window: Window, total: int) -> Any:
    """A Relay connection of ``items`` (already cut to ``window``) out of ``total``."""
    edges = [
        relay.Edge(node=item, cursor=encode_cursor(window.offset + i))
        for i, item in enumerate(items)
    ]
    return cls(
        edges=edges,
        page_info=relay.PageInfo(
            has_next_page=window.offset + len(items) < total,
            has_previous_page=window.offset > 0,
            start_cursor=edges[0].cursor if edges else None,
            end_cursor=edges[-1].cursor if edges else None,
        ),
        total_count=total,
    )


def _row(value: T | None) -> T:
    """A related row the loader must find; gone only if deleted during this request."""
    if value is None:
        raise NotFound("this object was deleted while it was being read")
    return value


class Loaded(relay.Node):
    """A node fetched by ``node(id:)`` through the request's loader named ``loader``."""

    loader: ClassVar[str]

    @classmethod
    async def resolve_nodes(
        cls, *, info: Info, node_ids: Iterable[str], required: bool = False
    ) -> list[Any]:
        rows = await getattr(info.context.loaders, cls.loader).load_many([int(i) for i in node_ids])
        return [cls.from_row(r) if r is not None else None for r in rows]  # type: ignore[attr-defined]


@strawberry.type(name="Resources", description="Default resources of a flavour.")
class ResourcesType:
    cpus: float | None
    memory: Long | None = strawberry.field(description="Bytes.")


@strawberry.type(name="Sandbox", description="What a flavour's image says it runs under.")
class SandboxType:
    read_only: bool = strawberry.field(description="A read-only root filesystem (/tmp writable).")
    non_root: bool = strawberry.field(description="Any unprivileged user.")


@strawberry.type(name="ServedPort", description="A port the app serves in its container.")
class ServedPortType:
    name: str
    port: int
    protocol: str = strawberry.field(description="http (an address behind sign-in) or tcp.")
    path: str = strawberry.field(description="Where the app's start page is.")


@strawberry.type(name="EnvVar", description="An environment variable the app reads.")
class EnvVarType:
    name: str
    value: str | None = strawberry.field(description="The default (never shown when secret).")
    description: str
    required: bool = strawberry.field(description="Installing needs a value.")
    secret: bool


@strawberry.type(name="Flavour", description="One build of a release: an image and its needs.")
class FlavourType(Loaded):
    loader: ClassVar[str] = "flavour"
    id: relay.NodeID[int]
    name: str
    image: str
    selectors: JSON = strawberry.field(description="Normalised selectors, as stored.")
    capabilities: JSON = strawberry.field(
        description="What the flavour must be granted on the machine it runs on, in the "
        "Arkitekt spec's spelling: each a kind (folder, device, shared_memory, "
        "linux_capability, host_network, container_engine), a name, whether it is "
        "required, and its container side. A flavour with a required one is not chosen "
        "until such grants exist."
    )
    resources: ResourcesType
    sandbox: SandboxType = strawberry.field(
        description="Port runs the flavour's Pods so by default."
    )
    ports: list[ServedPortType] = strawberry.field(
        description="What the app serves; the first http port is a Setup's address."
    )
    command: list[str] | None = strawberry.field(description="Null: the image's entrypoint.")
    args: list[str] | None = strawberry.field(description="Null: the image's command.")
    env: list[EnvVarType]
    release_id: strawberry.Private[int]

    @classmethod
    def from_row(cls, row: models.FlavourRow) -> Self:
        run = Run.from_json(row.run)
        return cls(
            id=row.id,
            name=row.name,
            image=row.image,
            selectors=JSON(row.selectors),
            capabilities=JSON(row.capabilities),
            resources=ResourcesType(
                cpus=row.cpus, memory=Long(row.memory) if row.memory is not None else None
            ),
            sandbox=SandboxType(read_only=row.read_only, non_root=row.non_root),
            ports=[ServedPortType(**asdict(p)) for p in run.ports],
            command=list(run.command) if run.command is not None else None,
            args=list(run.args) if run.args is not None else None,
            env=[
                EnvVarType(
                    name=e.name,
                    value=None if e.secret else e.value,
                    description=e.description,
                    required=e.required,
                    secret=e.secret,
                )
                for e in run.env
            ],
            release_id=row.release_id,
        )

    @strawberry.field
    async def release(self, info: Info) -> ReleaseType:
        return ReleaseType.from_row(_row(await info.context.loaders.release.load(self.release_id)))


@strawberry.type(name="Release", description="One semver version of an app.")
class ReleaseType(Loaded):
    loader: ClassVar[str] = "release"
    id: relay.NodeID[int]
    version: str
    current: bool = strawberry.field(description="Still published (tag exists / at head).")
    withdrawn: bool = strawberry.field(description="Its tag vanished; never chosen for updates.")
    channel: str | None = strawberry.field(
        description="The channel this is a build of (an OCI repository's moving tag), "
        "null for a release proper. Only Setups on the channel run it; `current` while "
        "the channel points at it."
    )
    git_ref: str
    commit: str
    created_at: datetime
    app_id: strawberry.Private[int]
    # Brought by the page that listed this release (AppType.releases); None: loaded.
    flavour_rows: strawberry.Private[list[models.FlavourRow] | None] = None

    @classmethod
    def from_row(
        cls, row: models.ReleaseRow, flavours: list[models.FlavourRow] | None = None
    ) -> Self:
        return cls(
            id=row.id,
            version=row.version,
            current=row.current,
            withdrawn=row.withdrawn,
            channel=row.channel,
            git_ref=row.git_ref,
            commit=row.commit,
            created_at=row.created_at,
            app_id=row.app_id,
            flavour_rows=flavours,
        )

    @strawberry.field
    async def app(self, info: Info) -> AppType:
        return AppType.from_row(_row(await info.context.loaders.app.load(self.app_id)))

    @strawberry.field(
        description="Builds in manifest order (the order breaks selection ties); at most "
        f"{MAX_FLAVOURS}, as many as a release may have."
    )
    def flavours(self, info: Info) -> list[FlavourType]:
        # Synchronous when the flavours came with the release: a page of 50 apps then
        # resolves its 500 releases' flavours without a task each (most of its cost).
        # Otherwise the loader's awaitable, which graphql-core awaits like any other.
        if self.flavour_rows is not None:
            return _flavours(self.flavour_rows)
        return cast("list[FlavourType]", self._loaded_flavours(info))

    async def _loaded_flavours(self, info: Info) -> list[FlavourType]:
        return _flavours(await info.context.loaders.flavours_of_release.load(self.id))


def _flavours(rows: list[models.FlavourRow]) -> list[FlavourType]:
    # Bounded for rows stored before releases were capped at index time.
    return [FlavourType.from_row(r) for r in rows[:MAX_FLAVOURS]]


@strawberry.type(name="ReleaseConnection")
class ReleaseConnection(relay.Connection[ReleaseType]):
    total_count: int


@strawberry.type(name="App", description="An app, owned by the repo that declared it first.")
class AppType(Loaded):
    loader: ClassVar[str] = "app"
    id: relay.NodeID[int]
    identifier: str
    name: str
    description: str
    logo: str | None
    homepage: str | None
    license: str | None
    categories: list[str]
    repo_id: strawberry.Private[int]

    @classmethod
    def from_row(cls, row: models.App) -> Self:
        return cls(
            id=row.id,
            identifier=row.identifier,
            name=row.name,
            description=row.description,
            logo=row.logo,
            homepage=row.homepage,
            license=row.license,
            categories=list(row.categories),
            repo_id=row.repo_id,
        )

    @strawberry.field
    async def repo(self, info: Info) -> RepoType:
        return RepoType.from_row(_row(await info.context.loaders.repo.load(self.repo_id)))

    @strawberry.field(description="Newest first by semver.")
    async def releases(
        self,
        info: Info,
        first: int | None = None,
        after: str | None = None,
        include_withdrawn: bool = False,
    ) -> ReleaseConnection:
        window = Window.of(first, after, max_size=info.context.state.settings.max_page_size)
        rows = await info.context.loaders.releases_of_app.load(self.id)
        if not include_withdrawn:
            rows = [r for r in rows if not r.withdrawn]
        shown = window.cut(rows)
        # The page brings its flavours: one query for the pages of every app asked.
        flavours = await info.context.loaders.flavours_of_release.load_many([r.id for r in shown])
        page = [ReleaseType.from_row(r, f) for r, f in zip(shown, flavours, strict=True)]
        return connection_of(ReleaseConnection, page, window, len(rows))  # type: ignore[no-any-return]

    @strawberry.field(description="The newest current, not withdrawn, non-pre-release.")
    async def latest_release(self, info: Info) -> ReleaseType | None:
        row = latest_release(await info.context.loaders.releases_of_app.load(self.id))
        return ReleaseType.from_row(row) if row is not None else None


@strawberry.type(name="AppConnection")
class AppConnection(relay.Connection[AppType]):
    total_count: int


@strawberry.enum(name="IndexRunStatus")
class IndexRunStatus(Enum):
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    UNCHANGED = "unchanged"
    FAILED = "failed"


@strawberry.type(name="IndexError", description="A manifest error, located.")
class IndexErrorType:
    message: str
    file: str
    ref: str | None
    line: int | None
    column: int | None
    path: str


@strawberry.type(name="IndexRun", description="One scan of a repository.")
class IndexRunType(Loaded):
    loader: ClassVar[str] = "run"
    id: relay.NodeID[int]
    status: IndexRunStatus
    started_at: datetime
    finished_at: datetime | None
    branch: str | None
    commit: str | None
    added: list[str]
    changed: list[str]
    withdrawn: list[str]
    message: str | None = strawberry.field(description="Why a failed run failed.")
    repo_id: strawberry.Private[int]

    @classmethod
    def from_row(cls, row: models.IndexRun) -> Self:
        return cls(
            id=row.id,
            status=IndexRunStatus(row.status),
            started_at=row.started_at,
            finished_at=row.finished_at,
            branch=row.branch,
            commit=row.commit,
            added=list(row.added),
            changed=list(row.changed),
            withdrawn=list(row.withdrawn),
            message=row.message,
            repo_id=row.repo_id,
        )

    @strawberry.field
    async def errors(self, info: Info) -> list[IndexErrorType]:
        rows = await info.context.loaders.errors_of_run.load(self.id)
        return [
            IndexErrorType(
                message=e.message, file=e.file, ref=e.ref, line=e.line, column=e.column, path=e.path
            )
            for e in rows
        ]

    @strawberry.field
    async def repo(self, info: Info) -> RepoType:
        return RepoType.from_row(_row(await info.context.loaders.repo.load(self.repo_id)))


@strawberry.type(name="Repo", description="A registered git remote that publishes apps.")
class RepoType(Loaded):
    loader: ClassVar[str] = "repo"
    id: relay.NodeID[int]
    url: str = strawberry.field(description="The clone URL, credentials hidden.")
    branch: str | None
    manifest_path: str
    tag_prefix: str
    channels: list[str] = strawberry.field(
        description="The channels of an OCI repository whose builds are indexed."
    )
    created_at: datetime

    @classmethod
    def from_row(cls, row: models.Repo) -> Self:
        return cls(
            id=row.id,
            url=redact(row.url),
            branch=row.branch,
            manifest_path=row.manifest_path,
            tag_prefix=row.tag_prefix,
            channels=list(row.channels or ()),
            created_at=row.created_at,
        )

    @strawberry.field(
        description="Where the forge delivers webhooks; paste the one of your forge "
        "into its webhook settings with this repository's webhook secret."
    )
    def webhook_urls(self, info: Info) -> WebhookUrlsType:
        return WebhookUrlsType.of(info.context.state.settings.public_url)

    @strawberry.field
    async def last_run(self, info: Info) -> IndexRunType | None:
        row = await info.context.loaders.last_run_of_repo.load(self.id)
        return IndexRunType.from_row(row) if row is not None else None

    @strawberry.field(description="The apps this repository owns, by identifier.")
    async def apps(
        self, info: Info, first: int | None = None, after: str | None = None
    ) -> AppConnection:
        window = Window.of(first, after, max_size=info.context.state.settings.max_page_size)
        rows = await info.context.loaders.apps_of_repo.load(self.id)
        page = [AppType.from_row(a) for a in window.cut(rows)]
        return connection_of(AppConnection, page, window, len(rows))  # type: ignore[no-any-return]


@strawberry.type(
    name="IndexRunEvent", description="A run of a repository started (run: null) or finished."
)
class IndexRunEvent:
    repo_id: relay.GlobalID
    status: IndexRunStatus
    run: IndexRunType | None


@strawberry.type(name="RepoConnection")
class RepoConnection(relay.Connection[RepoType]):
    total_count: int
