"""What a container engine must offer Port: the ``Backend`` interface.

In the spirit of JupyterHub's Spawner: a backend knows how to run one container for a
Pod and how to find the containers it runs again (by their labels), nothing else. The
database, selection, restarts and backoff live above it, in the reconciler, so every
backend gets them for free. Every method is async; a backend whose client library
blocks runs it in an executor.

Contract:

- ``start`` creates *and* starts the container for a ``PodSpec`` and returns its id. The
  backend names it (``object_name``: engines differ in what a name may hold); when a
  container of that name already exists (a second reconciler, or a crash between create
  and record), ``start`` raises ``ContainerExists`` with that container's id, so the
  caller adopts it instead of running a twin.
- ``stop`` stops and removes; a container that is already gone is success.
- ``poll`` returns the container's state, or None when there is no such container.
- ``list_managed`` lists every container of this Port instance (by the ``port.instance``
  label), running or not.
- Engine unreachable: every method raises ``BackendUnavailable``.
"""

from __future__ import annotations

import enum
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable, Collection, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import ClassVar, Self

from port.deploy.grants import Grant
from port.deploy.selection import Capabilities
from port.errors import ClientError
from port.settings import Settings

# Labels every Port container carries. ``port.instance`` keeps two Port installations
# (or two test runs) on one engine from adopting or removing each other's containers.
LABEL_INSTANCE = "port.instance"
LABEL_SETUP = "port.setup"
LABEL_POD = "port.pod"
LABEL_RELEASE = "port.release"
LABEL_FLAVOUR = "port.flavour"
LABEL_OWNER = "port.owner"
LABEL_APP = "port.app"
LABEL_TENANT = "port.tenant"  # on networks: the Setup whose Pods it joins
# The name of Port's host inside a Pod (an /etc/hosts line), when the backend knows an
# address of it that Pods reach (``Backend.host_address``). A dot-less or `.internal`
# name: never a public one (RFC 6762 reserves .local, ICANN reserved .internal).
HOST_ALIAS = "port.internal"
# What makes a container a given Pod's: all of them, or it is adopted by nobody.
IDENTITY_LABELS = (
    LABEL_INSTANCE,
    LABEL_SETUP,
    LABEL_POD,
    LABEL_OWNER,
    LABEL_APP,
    LABEL_RELEASE,
    LABEL_FLAVOUR,
)


def newest_lines(data: bytes, limit: int) -> bytes:
    """The newest ``limit`` bytes of container output, without the half line a cut leaves
    at the top (a single line longer than ``limit`` stays, cut)."""
    if len(data) <= limit:
        return data
    kept = data[len(data) - limit :]
    return kept[kept.find(b"\n") + 1 :]


class PodStatus(enum.StrEnum):
    """Where a Pod is in its life. UNKNOWN: the engine cannot be asked right now."""

    PENDING = "PENDING"
    PULLING = "PULLING"
    STARTING = "STARTING"
    RUNNING = "RUNNING"
    STOPPING = "STOPPING"
    STOPPED = "STOPPED"
    FAILED = "FAILED"
    UNKNOWN = "UNKNOWN"


# Both are shown to API callers (like RepoUnreachable): they can retry later or pick
# another flavour; masking them as "unexpected" would hide an outage's reason.
class BackendUnavailable(ClientError):
    """The engine cannot be reached or refused to work; the message says which and why."""

    code = "BACKEND_UNAVAILABLE"


class BackendError(ClientError):
    """The engine answered, but the operation failed (bad image, refused option, ...)."""

    code = "BACKEND_ERROR"


class ImageNotFound(BackendError):
    """The image is neither present locally nor pullable (or the pull policy forbids it)."""

    code = "IMAGE_NOT_FOUND"


class ContainerExists(BackendError):
    """A container with the Pod's name exists already: adopt ``container_id`` when its
    ``labels`` say it is the Pod's (``PodSpec.identity``)."""

    def __init__(self, name: str, container_id: str, labels: Mapping[str, str]) -> None:
        super().__init__(f"a container named {name} exists already ({container_id[:12]})")
        self.container_id = container_id
        self.labels = labels


@dataclass(frozen=True)
class PodSpec:
    """Everything a backend needs to run one Pod. Built by Port, never by a manifest."""

    image: str
    labels: Mapping[str, str]
    env: Mapping[str, str] = field(default_factory=dict)
    cpus: float | None = None  # limit; None: no limit
    memory_bytes: int | None = None  # limit; None: no limit
    gpus: int = 0  # GPUs to hand the container (CUDA or ROCm flavours on a GPU backend)
    gpu_vendor: str = "nvidia"  # whose GPUs: "nvidia", "amd" or "intel"
    # The isolation unit (the Setup's id): Pods of two tenants never share a network.
    tenant: int = 0
    offline: bool = False  # no route out at all (an admin's PORT_OFFLINE_APPS)
    read_only: bool = False  # a read-only root filesystem, a writable /tmp
    user: str | None = None  # "uid:gid" to run as, whatever the image says
    command: tuple[str, ...] | None = None  # replaces the image's entrypoint
    args: tuple[str, ...] | None = None  # replaces the image's command
    # What its owner granted, within the admin's policy: all it gets beyond the sandbox.
    grants: tuple[Grant, ...] = ()
    # The node selection placed it on (``Node.id``); a backend of several nodes runs it
    # there, one of a single engine has nowhere else.
    node: str | None = None

    @property
    def pod_id(self) -> int:
        return int(self.labels[LABEL_POD])

    @property
    def app(self) -> str:
        """The app's identifier (what engine-specific settings of an app are keyed by)."""
        return self.labels.get(LABEL_APP, "")

    def is_mine(self, labels: Mapping[str, str]) -> bool:
        """Do ``labels`` (a container's) name this very Pod? Every identity label must
        match: a container that shares only the Pod's id is somebody else's."""
        return all(labels.get(key) == self.labels.get(key) for key in IDENTITY_LABELS)


@dataclass(frozen=True)
class PodState:
    """A container's state as the engine reports it."""

    status: PodStatus
    exit_code: int | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    message: str | None = None  # why it stopped or failed (OOM killed, engine error, ...)
    # The engine's readiness check of it (Docker: the image's HEALTHCHECK): True passed,
    # False failed, None no verdict (no check, or not decided yet). ``checked``: the
    # engine runs one, so a verdict will come; without, Port's grace decides.
    ready: bool | None = None
    checked: bool = False
    # Where Port reaches the running container (an IP on its tenant network), if known.
    address: str | None = None


@dataclass(frozen=True)
class ManagedContainer:
    """A container that carries this Port instance's labels."""

    id: str
    name: str
    labels: Mapping[str, str]
    state: PodState

    @property
    def pod_id(self) -> int | None:
        raw = self.labels.get(LABEL_POD, "")
        return int(raw) if raw.isdigit() else None


@dataclass(frozen=True)
class PullProgress:
    """How far a pull is: bytes of all layers seen so far."""

    layers: int
    done_bytes: int
    total_bytes: int


ProgressCallback = Callable[[PullProgress], None]


class Backend(ABC):
    """A container engine. Subclasses override every abstract method (see module doc)."""

    name: ClassVar[str]

    @classmethod
    @abstractmethod
    def from_settings(cls, settings: Settings) -> Self:
        """The backend configured by ``settings`` (connects lazily, on first use)."""

    @abstractmethod
    async def capabilities(self) -> Capabilities:
        """CPUs, memory, GPUs and labels a container can get here."""

    @abstractmethod
    async def has_image(self, image: str) -> bool:
        """True when ``image`` is present on the engine (no pull needed)."""

    @abstractmethod
    async def pull(self, image: str, progress: ProgressCallback | None = None) -> None:
        """Pull ``image``; ``progress`` is called as layers arrive. ImageNotFound if none."""

    @abstractmethod
    def object_name(self, spec: PodSpec) -> str:
        """The name of ``spec``'s engine object: unique per Pod of this instance, found
        again after a restart, and what a person sees in the engine's own tools."""

    @abstractmethod
    async def start(self, spec: PodSpec) -> str:
        """Create and start the container of ``spec``; its id (ContainerExists: adopt)."""

    @abstractmethod
    async def stop(self, container_id: str, timeout: float = 10) -> None:  # noqa: ASYNC109 - the engine's SIGTERM grace, not a call timeout
        """Stop (SIGTERM, then SIGKILL after ``timeout`` s) and remove; gone is success."""

    @abstractmethod
    async def poll(self, container_id: str) -> PodState | None:
        """The container's state, or None when it does not exist."""

    @abstractmethod
    async def logs(self, container_id: str, tail: int = 100) -> str:
        """The last ``tail`` lines of the container's output (stdout and stderr)."""

    @abstractmethod
    def follow_logs(self, container_id: str, tail: int = 0) -> AsyncIterator[str]:
        """Output lines as the container writes them, after the last ``tail`` lines."""

    @abstractmethod
    async def list_managed(self) -> list[ManagedContainer]:
        """Every container of this Port instance, running or not."""

    @abstractmethod
    def events(self) -> AsyncIterator[str]:
        """Ids of this instance's containers as the engine reports a change (die, start,
        destroy...); the reconciler wakes on each. Ends when the engine goes away."""

    async def host_address(self) -> str | None:
        """An address of the engine's host that every Pod can reach, when the engine
        runs on Port's own machine: Port listens there too, and Pods find it under
        ``HOST_ALIAS``. None (the default): Pods reach Port only at its public URL."""
        return None

    async def image_digest(self, container_id: str) -> str | None:
        """The digest of the image the container runs, ``sha256:...``: the registry's
        manifest digest where the engine knows it, else the image's own id. None (the
        default): this engine cannot tell."""
        return None

    async def prune(self, tenants: Collection[int]) -> None:  # noqa: B027 - optional hook
        """Release what the engine keeps for tenants other than ``tenants`` (networks);
        the reconciler calls it after each pass. Nothing to release by default."""

    async def close(self) -> None:  # noqa: B027 - optional hook, nothing to release by default
        """Release clients and threads."""
