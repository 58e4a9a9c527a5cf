"""A fake container backend and catalogue helpers for deployment tests without Docker.

``FakeBackend`` keeps containers in a dict and lets a test do what an engine or a person
would: crash a container, remove it behind Port's back, take the engine down. Like
JupyterHub's MockSpawner, it is for testing the logic above the backend; the Docker
backend itself is tested against the real engine.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import Any, Self

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from port.accounts.models import User
from port.catalogue.models import App, Flavour, Release, Repo
from port.deploy.backends.base import (
    LABEL_INSTANCE,
    LABEL_SETUP,
    Backend,
    BackendUnavailable,
    ContainerExists,
    ImageNotFound,
    ManagedContainer,
    PodSpec,
    PodState,
    PodStatus,
    ProgressCallback,
    PullProgress,
)
from port.deploy.models import Pod
from port.deploy.reconciler import Reconciler
from port.deploy.selection import Capabilities, Gpu
from port.orm import utcnow
from port.settings import Settings


@dataclass
class FakeContainer:
    id: str
    spec: PodSpec
    state: PodState
    logs: list[str] = field(default_factory=list)


class FakeBackend(Backend):
    name = "fake"

    def __init__(self, instance: str = "port", caps: Capabilities | None = None) -> None:
        self.instance = instance
        self.caps = caps or Capabilities.one(cpus=4, memory_mb=8192)
        self.containers: dict[str, FakeContainer] = {}
        self.images: set[str] = set()
        self.registry: set[str] = set()  # what `pull` can fetch
        self.down = False
        self.starts: list[PodSpec] = []
        self.pulls: list[str] = []
        self.exit_at_once: dict[str, int] = {}  # image -> exit code on start
        self.ready: dict[str, bool | None] = {}  # image -> its readiness check's verdict
        self.digests: dict[str, str] = {}  # image -> the digest of what it names now
        self.stops: list[str] = []  # container ids, in the order they were stopped
        self.address: str | None = None  # where its running containers are reached
        self.held: dict[str, asyncio.Event] = {}  # image -> its pull waits for this
        # What happens elsewhere while the engine creates a container (a user deletes).
        self.while_starting: Callable[[PodSpec], Awaitable[None]] | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> Self:
        return cls(settings.instance_name)

    def _check(self) -> None:
        if self.down:
            raise BackendUnavailable("fake engine is down")

    async def capabilities(self) -> Capabilities:
        self._check()
        return self.caps

    async def has_image(self, image: str) -> bool:
        self._check()
        return image in self.images

    async def image_digest(self, container_id: str) -> str | None:
        self._check()
        container = self.containers.get(container_id)
        return self.digests.get(container.spec.image) if container is not None else None

    async def pull(self, image: str, progress: ProgressCallback | None = None) -> None:
        self._check()
        self.pulls.append(image)
        if image not in self.registry:
            raise ImageNotFound(f"{image}: not found")
        if image in self.held:  # a slow registry: half of it now, the rest when let go
            if progress:
                progress(PullProgress(layers=1, done_bytes=5, total_bytes=10))
            await self.held[image].wait()
        if progress:
            progress(PullProgress(layers=1, done_bytes=10, total_bytes=10))
        self.images.add(image)

    def object_name(self, spec: PodSpec) -> str:
        return f"{self.instance}-{spec.app}-s{spec.labels.get(LABEL_SETUP)}-p{spec.pod_id}"

    async def start(self, spec: PodSpec) -> str:
        self._check()
        if self.while_starting is not None:
            await self.while_starting(spec)
        for c in self.containers.values():
            if self.object_name(c.spec) == self.object_name(spec):
                raise ContainerExists(self.object_name(spec), c.id, c.spec.labels)
        container_id = uuid.uuid4().hex * 2  # 64 hex digits, like Docker's
        code = self.exit_at_once.get(spec.image)
        state = (
            PodState(
                PodStatus.RUNNING,
                started_at=utcnow(),
                ready=self.ready.get(spec.image),
                checked=spec.image in self.ready,
                address=self.address,
            )
            if code is None
            else PodState(PodStatus.FAILED, exit_code=code, finished_at=utcnow())
        )
        self.containers[container_id] = FakeContainer(container_id, spec, state, ["hello"])
        self.starts.append(spec)
        return container_id

    async def stop(self, container_id: str, timeout: float = 10) -> None:  # noqa: ASYNC109
        self._check()
        self.stops.append(container_id)
        self.containers.pop(container_id, None)

    async def poll(self, container_id: str) -> PodState | None:
        self._check()
        found = self.containers.get(container_id)
        return found.state if found else None

    async def logs(self, container_id: str, tail: int = 100) -> str:
        self._check()
        found = self.containers.get(container_id)
        return "\n".join(found.logs[-tail:]) if found and tail else ""

    async def follow_logs(self, container_id: str, tail: int = 0) -> AsyncIterator[str]:
        self._check()
        found = self.containers.get(container_id)
        for line in found.logs[-tail:] if found and tail else []:
            yield line

    async def list_managed(self) -> list[ManagedContainer]:
        self._check()
        return [
            ManagedContainer(c.id, self.object_name(c.spec), c.spec.labels, c.state)
            for c in self.containers.values()
            if c.spec.labels.get(LABEL_INSTANCE) == self.instance
        ]

    async def events(self) -> AsyncIterator[str]:
        self._check()
        await asyncio.sleep(3600)
        return
        yield ""  # an async generator that yields nothing

    # --- what tests do to it --------------------------------------------------------------

    def crash(self, container_id: str, code: int = 1) -> None:
        c = self.containers[container_id]
        c.state = replace(c.state, status=PodStatus.FAILED, exit_code=code, finished_at=utcnow())

    def running(self) -> list[FakeContainer]:
        return [c for c in self.containers.values() if c.state.status is PodStatus.RUNNING]


async def reconcile_pulled(reconciler: Reconciler) -> None:
    """A pass, then another once the pulls it started have ended (a pass starts a pull
    and goes on; the pass after its end starts the Pod or fails it)."""
    await reconciler.reconcile()
    for pull in reconciler.pulls.under_way():
        await asyncio.wait_for(asyncio.wait({pull.task}), 60)
    await reconciler.reconcile()


GPU_MACHINE = Capabilities.one(cpus=8, memory_mb=32768, gpus=(Gpu("nvidia", cuda_version="12.2"),))


Flavours = tuple[tuple[str, str, list[dict[str, Any]]], ...]  # (name, image, selectors)
CUDA = [{"kind": "cuda", "min_version": "11.0", "required": True, "weight": 1}]  # a GPU build


def add_release(
    session: AsyncSession,
    app_id: int,
    version: str,
    flavours: Flavours,
    run: dict[str, Any] | None = None,
    capabilities: list[dict[str, Any]] | None = None,
) -> Release:
    """A release of ``app_id`` with ``flavours``, each run as ``run`` says (ports, env:
    ``manifests.specs.Run.as_json``) and asking ``capabilities`` (stored form); ``{v}``
    in an image becomes the version."""
    release = Release(
        app_id=app_id,
        version=version,
        source="port",
        git_ref=f"v{version}",
        commit="0" * 40,
        file="port.yaml",
    )
    session.add(release)
    for position, (name, image, selectors) in enumerate(flavours):
        session.add(
            Flavour(
                release=release,
                name=name,
                position=position,
                image=image.replace("{v}", version),
                selectors=selectors,
                cpus=2.0,
                memory=1 << 30,
                run=run or {},
                capabilities=capabilities or [],
            )
        )
    return release


async def add_app(
    session: AsyncSession,
    identifier: str = "stardist",
    versions: tuple[str, ...] = ("1.0.0",),
    flavours: Flavours = (("cpu", "img/cpu:1", []),),
    run: dict[str, Any] | None = None,
) -> App:
    """An app with ``versions``, each with ``flavours`` (name, image, selectors), in a repo."""
    repo = Repo(url=f"https://example.org/{identifier}.git")
    app = App(identifier=identifier, name=identifier.title(), repo=repo)
    session.add_all([repo, app])
    await session.flush()
    for version in versions:
        add_release(session, app.id, version, flavours, run)
    await session.flush()
    return app


async def add_user(session: AsyncSession, name: str, *, is_admin: bool = False) -> User:
    user = User(name=name, is_admin=is_admin)
    session.add(user)
    await session.flush()
    return user


async def reconciled_until(
    sessions: async_sessionmaker[AsyncSession],
    reconciler: Reconciler,
    setup_id: int,
    done: Callable[[Pod], bool] = lambda pod: pod.status == "RUNNING",
) -> Pod:
    """Reconcile passes until the Setup's active Pod is ``done`` (default: RUNNING), for
    up to ~15 s; the Pod."""
    for _ in range(150):
        await reconciler.reconcile()
        async with sessions() as session:
            pod = (
                await session.scalars(
                    select(Pod).where(Pod.setup_id == setup_id, Pod.retired.is_(False))
                )
            ).one()
        if done(pod):
            return pod
        await asyncio.sleep(0.1)
    raise AssertionError(f"setup {setup_id} did not run: {pod.status} {pod.message}")
