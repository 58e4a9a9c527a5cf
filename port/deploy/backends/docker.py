"""The Docker backend: one container per Pod on a Docker engine, through the docker SDK.

Shaped like dockerspawner: ``start`` is ``_create`` then ``_start`` (a test can create
without starting and read what was asked of the engine), ``stop`` is stop then remove.
Every blocking SDK call goes through ``_call``, which runs it on this backend's one
thread pool and turns SDK errors into Port's: engine unreachable -> BackendUnavailable
(naming the engine's URL), an engine refusal -> BackendError with the engine's words,
a missing image -> ImageNotFound. The SDK client is made on first use, so building a
backend never touches the engine.

Streams (``follow_logs``, ``events``, the progress of a ``pull``) are opened through
``_call`` too, but each is then read by a thread of its own and handed to the event loop
through an ``asyncio.Queue``: a log follower can last for hours, and a few of them must
not take every worker of the pool from ``poll`` and ``stop``.

Every option that touches the host is fixed here, never taken from a manifest: not
privileged, ``no-new-privileges``, every capability dropped but the admin's list, the
admin's network (never the host's network, PID or IPC namespace), a PID limit, CPU and
memory limits (no swap beyond memory), host mounts only from the admin's allow-list for
the app (``PORT_DOCKER_MOUNTS``) and the owner's grants, and no restart policy: the
reconciler restarts crashed Pods itself, so each restart is recorded.
"""

from __future__ import annotations

import asyncio
import fcntl
import ipaddress
import logging
import math
import os
import re
import socket
import struct
import threading
import time
from collections.abc import (
    AsyncGenerator,
    AsyncIterator,
    Callable,
    Collection,
    Iterable,
    Mapping,
    Sequence,
)
from concurrent.futures import ThreadPoolExecutor
from contextlib import aclosing, suppress
from datetime import datetime
from functools import cached_property
from typing import Any, Self, TypeVar

import docker
import docker.errors
import docker.types
import requests.exceptions
from docker.utils import parse_repository_tag

from port.deploy.backends.base import (
    HOST_ALIAS,
    LABEL_INSTANCE,
    LABEL_SETUP,
    LABEL_TENANT,
    Backend,
    BackendError,
    BackendUnavailable,
    ContainerExists,
    ImageNotFound,
    ManagedContainer,
    PodSpec,
    PodState,
    PodStatus,
    ProgressCallback,
    PullProgress,
    newest_lines,
)
from port.deploy.backends.firewall import Firewall, bridge_name, host_resolvers
from port.deploy.grants import Grant
from port.deploy.selection import ARCH_ALIASES, Capabilities, Gpu
from port.errors import PortError
from port.settings import Settings

log = logging.getLogger(__name__)

T = TypeVar("T")

API_TIMEOUT_SECONDS = 30  # any single API call; streams have none
WORKERS = 4
PROGRESS_INTERVAL_SECONDS = 0.25  # pull progress: at most four reports a second
STREAM_BACKLOG = 1000  # stream items read ahead of the consumer before the reader waits
DEFAULT_SOCKET = "unix:///var/run/docker.sock"
MIN_NANO_CPUS = 10_000_000
AMD_DEVICES = ("/dev/kfd", "/dev/dri")  # ROCm compute interface, GPU render nodes
INTEL_DEVICES = ("/dev/dri",)  # oneAPI (Level Zero, OpenCL) uses the render nodes alone
BRIDGE_NAME_OPTION = "com.docker.network.bridge.name"
SIOCGIFADDR = 0x8915  # Linux: an interface's address (netdevice(7))
SUBNET_PREFIX = 28  # a Setup's network: 13 addresses for its Pods

# State.Status of `docker inspect` (and State of `docker ps`) -> Pod status. "exited"
# depends on the exit code, see _status.
_STATUS = {
    "created": PodStatus.STARTING,
    "restarting": PodStatus.STARTING,
    "running": PodStatus.RUNNING,
    "paused": PodStatus.RUNNING,  # somebody paused it by hand; it resumes where it was
    "removing": PodStatus.STOPPING,
    "dead": PodStatus.FAILED,
}
# Engine events after which the reconciler should look at a container again.
WATCHED_EVENTS = ("start", "die", "oom", "destroy", "health_status")
# What a pull's failure means, from fragments of the engine's message, in Port's words:
# users see these, and the engine's own text (which may echo whatever a registry
# answered) goes to Port's log only. First match wins.
_PULL_FAILURES: tuple[tuple[tuple[str, ...], type[BackendError], str], ...] = (
    (
        ("manifest unknown", "not found", "does not exist"),
        ImageNotFound,
        "the registry has no such image",
    ),
    (
        ("pull access denied", "unauthorized", "denied", "authentication required"),
        ImageNotFound,
        "the registry refused access to it (a private image needs the engine signed in)",
    ),
    (
        ("no such host", "lookup "),
        BackendError,
        "the registry's name does not resolve from the engine",
    ),
    (
        ("http response to https client", "x509", "tls", "certificate"),
        BackendError,
        "the registry's HTTPS could not be verified (or it speaks only HTTP)",
    ),
    (
        ("connection refused", "dial tcp", "timeout", "timed out", "unreachable"),
        BackendError,
        "the registry could not be reached",
    ),
)
_HEALTH_IN_STATUS = re.compile(r"\((healthy|unhealthy|health: starting)\)")
_END = object()  # the end of a stream


def interface_address(name: str) -> str | None:
    """The IPv4 address of this machine's network interface ``name``, or None."""
    request = struct.pack("256s", name.encode()[:15])
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            packed = fcntl.ioctl(probe.fileno(), SIOCGIFADDR, request)
        except OSError:
            return None
    return socket.inet_ntoa(packed[20:24])


def short(container_id: str) -> str:
    """The 12-character id `docker ps` shows."""
    return container_id[:12]


def split_image(image: str) -> tuple[str, str]:
    """``image`` as (repository, tag or digest) for the pull API.

    ``registry:5000/name`` has no tag (the port belongs to the host), ``name`` means
    ``name:latest``, and ``name:tag@sha256:...`` pulls the digest (the tag is ignored,
    as `docker pull` does).
    """
    repository, ref = parse_repository_tag(image)
    if ref and ref.startswith("sha256:"):
        repository, _ = parse_repository_tag(repository)  # drop a tag before the digest
        return repository, ref
    return repository, ref or "latest"


def parse_time(raw: str | None) -> datetime | None:
    """An engine timestamp (RFC 3339, nanoseconds) as a datetime; None for "never"."""
    if not raw or raw.startswith("0001-01-01"):
        return None
    match = re.fullmatch(r"([^.Z+]+)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)?", raw)
    if match is None:
        return None
    fraction = (match[2] or "")[:6].ljust(6, "0")
    zone = "+00:00" if match[3] in (None, "Z") else match[3]
    try:
        return datetime.fromisoformat(f"{match[1]}.{fraction}{zone}")
    except ValueError:
        return None


def state_from_inspect(attrs: Mapping[str, Any]) -> PodState:
    """The PodState of a container's `docker inspect` output."""
    state: Mapping[str, Any] = attrs.get("State") or {}
    exit_code = state.get("ExitCode")
    docker_status = str(state.get("Status", ""))
    message = None
    if state.get("OOMKilled"):
        message = "out of memory (OOM killed)"
    elif state.get("Error"):
        message = str(state["Error"])
    elif docker_status == "paused":
        message = "paused"
    ready, checked = readiness((state.get("Health") or {}).get("Status"))
    started_at, finished_at = (
        parse_time(state.get("StartedAt")),
        parse_time(state.get("FinishedAt")),
    )
    if started_at and finished_at and finished_at < started_at and docker_status == "exited":
        # The engine stamps StartedAt once the start call returns; a process that exits
        # at once can finish a few milliseconds "before" that. It ran for ~0 s, not < 0.
        finished_at = started_at
    return PodState(
        status=_status(docker_status, exit_code),
        exit_code=exit_code if docker_status in ("exited", "dead") else None,
        started_at=started_at,
        finished_at=finished_at,
        message=message,
        ready=ready,
        checked=checked,
        address=address_of(attrs) if docker_status == "running" else None,
    )


def readiness(health: object) -> tuple[bool | None, bool]:
    """``PodState.ready`` and ``checked`` from a HEALTHCHECK status (``healthy``,
    ``unhealthy``, ``starting``; None: the image has no check)."""
    if not health:
        return None, False
    return {"healthy": True, "unhealthy": False}.get(str(health)), True


def address_of(attrs: Mapping[str, Any]) -> str | None:
    """The container's IPv4 address on its network (inspect and list rows alike hold
    ``NetworkSettings.Networks``; a Pod is on exactly one network)."""
    networks = (attrs.get("NetworkSettings") or {}).get("Networks") or {}
    for network in networks.values():
        if address := (network or {}).get("IPAddress"):
            return str(address)
    return None


def _status(docker_status: str, exit_code: int | None) -> PodStatus:
    if docker_status == "exited":
        return PodStatus.STOPPED if exit_code == 0 else PodStatus.FAILED
    return _STATUS.get(docker_status, PodStatus.UNKNOWN)


def _explanation(exc: docker.errors.APIError) -> str:
    return str(exc.explanation or exc).strip()


def _free_subnet(client: Any, pool: ipaddress.IPv4Network | ipaddress.IPv6Network) -> Any:
    """The first /28 of ``pool`` that no network of the engine overlaps."""
    taken = []
    for network in client.api.networks():
        for config in (network.get("IPAM") or {}).get("Config") or ():
            with suppress(KeyError, ValueError):
                taken.append(ipaddress.ip_network(config["Subnet"], strict=False))
    for subnet in pool.subnets(new_prefix=max(pool.prefixlen, SUBNET_PREFIX)):
        if not any(subnet.overlaps(other) for other in taken if other.version == subnet.version):
            return subnet
    raise BackendError(f"every subnet of {pool} is in use: widen PORT_DOCKER_SUBNETS")


class _Pump:
    """Reads a blocking stream on its own thread and hands the items to the event loop.

    The reader waits (``STREAM_BACKLOG`` items ahead) when the consumer is slow, and ends
    at the stream's end, on an error (handed over too) or when ``stop`` is called, which
    also closes a cancellable stream so a reader blocked on the socket wakes up.
    """

    def __init__(self, stream: Iterable[Any], what: str) -> None:
        self._stream = stream
        self._loop = asyncio.get_running_loop()
        self._queue: asyncio.Queue[Any] = asyncio.Queue()
        self._credits = threading.Semaphore(STREAM_BACKLOG)
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"port-docker-{what}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _hand_over(self, item: Any) -> bool:
        while not self._credits.acquire(timeout=0.5):
            if self._stopped.is_set():
                return False
        if self._stopped.is_set():
            return False
        try:
            self._loop.call_soon_threadsafe(self._queue.put_nowait, item)
        except RuntimeError:  # the loop is closed: nobody is listening any more
            return False
        return True

    def _run(self) -> None:
        try:
            for item in self._stream:
                if not self._hand_over(item):
                    return
        except Exception as exc:  # noqa: BLE001 - handed to the consumer, who raises it
            self._hand_over(exc)
        else:
            self._hand_over(_END)

    async def get(self) -> Any:
        item = await self._queue.get()
        self._credits.release()
        return item

    def stop(self) -> None:
        """End the stream (from the loop's thread); a consumer still waiting sees its end."""
        self._stopped.set()
        self._queue.put_nowait(_END)
        close = getattr(self._stream, "close", None)
        if close is not None and hasattr(self._stream, "_response"):  # a CancellableStream
            try:
                close()
            except Exception as exc:  # noqa: BLE001 - closing a dead socket may fail; fine
                log.debug("closing a stream: %s", exc)


class DockerBackend(Backend):
    """Pods as containers on one Docker engine (``settings.docker_host``)."""

    name = "docker"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.url = settings.docker_host or os.environ.get("DOCKER_HOST") or DEFAULT_SOCKET
        self._client: Any = None  # docker.DockerClient, made on first use
        self._client_lock = threading.Lock()
        self._executor = ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="port-docker")
        self._networks: set[str] = set()  # Pod networks known to exist
        self._network_lock = asyncio.Lock()
        self._pumps: set[_Pump] = set()
        self._closed = False
        self._host: tuple[str | None] | None = None  # host_address, once asked

    @classmethod
    def from_settings(cls, settings: Settings) -> Self:
        return cls(settings)

    @cached_property
    def firewall(self) -> Firewall:
        """This instance's iptables chains (made with its first Pod network)."""
        return Firewall(
            self.settings.instance_name,
            self.settings.egress_allowed_networks,
            dns=host_resolvers(),
        )

    def _host_address(self, client: Any) -> str | None:
        """This machine's address on the engine's default bridge (``docker0``: what
        Docker's ``host-gateway`` stands for), read from the interface itself, so it is
        one Port can listen on. A remote engine's host, or no such bridge here: None.
        Asked once; blocks."""
        if self._host is None:
            found = None
            if self.url.startswith(("unix://", "/")):
                with suppress(docker.errors.NotFound):
                    options = client.api.inspect_network("bridge").get("Options") or {}
                    found = interface_address(options.get(BRIDGE_NAME_OPTION) or "docker0")
            self._host = (found,)
        return self._host[0]

    async def host_address(self) -> str | None:
        if self._host is None:
            await self._call(self._host_address)
        return self._host[0] if self._host else None

    # --- the one way to the engine -------------------------------------------------

    def client(self) -> Any:
        """The SDK client (``docker.DockerClient``), connecting on first use. Blocks."""
        with self._client_lock:
            if self._client is None:
                if self.settings.docker_host:
                    client = docker.DockerClient(
                        base_url=self.settings.docker_host, timeout=API_TIMEOUT_SECONDS
                    )
                else:
                    client = docker.from_env(timeout=API_TIMEOUT_SECONDS)
                log.info("connected to the Docker engine at %s", self.url)
                self._client = client
            return self._client

    def _translate(self, exc: BaseException) -> PortError:
        """An SDK (or requests) error as Port's own error."""
        if isinstance(exc, PortError):
            return exc
        if isinstance(exc, docker.errors.ImageNotFound):
            return ImageNotFound(_explanation(exc))
        if isinstance(exc, docker.errors.APIError):
            return BackendError(f"the Docker engine refused: {_explanation(exc)}")
        if isinstance(exc, docker.errors.DockerException | requests.exceptions.RequestException):
            return BackendUnavailable(f"the Docker engine at {self.url} is unreachable: {exc}")
        return BackendError(f"unexpected error from the Docker SDK: {exc!r}")

    async def _call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """``fn(client, *args, **kwargs)`` on the backend's thread pool, errors translated."""

        def run() -> T:
            return fn(self.client(), *args, **kwargs)

        if self._closed:
            raise BackendUnavailable("the Docker backend is closed")
        try:
            return await asyncio.get_running_loop().run_in_executor(self._executor, run)
        except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
            raise self._translate(exc) from exc

    async def _stream(self, fn: Callable[..., Any], what: str) -> AsyncGenerator[Any, None]:
        """The items of the blocking stream ``fn(client)`` opens, read on a thread of its own."""
        stream = await self._call(fn)
        pump = _Pump(stream, what)
        self._pumps.add(pump)
        pump.start()
        try:
            while True:
                item = await pump.get()
                if item is _END:
                    return
                if isinstance(item, BaseException):
                    raise self._translate(item) from item
                yield item
        finally:
            pump.stop()
            self._pumps.discard(pump)

    # --- what the engine offers ----------------------------------------------------

    async def capabilities(self) -> Capabilities:
        info: dict[str, Any] = await self._call(lambda c: c.info())
        arch = str(info.get("Architecture") or "amd64").lower()
        labels = {
            key: value
            for key, _, value in (str(label).partition("=") for label in info.get("Labels") or ())
        }
        return Capabilities.one(  # one engine, one node
            cpus=float(info.get("NCPU") or 0),
            memory_mb=int(info.get("MemTotal") or 0) >> 20,
            arch=ARCH_ALIASES.get(arch, arch),
            gpus=tuple(Gpu(**gpu.model_dump()) for gpu in self.settings.docker_gpus),
            labels=labels,
            id=str(info.get("ID") or "local"),
            name=str(info.get("Name") or "local"),
        )

    # --- images ----------------------------------------------------------------------

    async def has_image(self, image: str) -> bool:
        def inspect(client: Any) -> bool:
            try:
                client.api.inspect_image(image)
            except docker.errors.NotFound:
                return False
            return True

        return await self._call(inspect)

    async def image_digest(self, container_id: str) -> str | None:
        def digest(client: Any) -> str | None:
            try:
                container = client.api.inspect_container(container_id)
                image = client.api.inspect_image(container["Image"])
            except docker.errors.NotFound:
                return None
            repository, _ = split_image(str(container.get("Config", {}).get("Image", "")))
            for named in image.get("RepoDigests") or ():
                name, _, found = str(named).partition("@")
                if name == repository or name.endswith("/" + repository):
                    return found
            return str(image["Id"])  # built here, never pulled: the image's own id

        return await self._call(digest)

    async def pull(self, image: str, progress: ProgressCallback | None = None) -> None:
        repository, ref = split_image(image)
        log.info("pulling %s", image)
        layers: dict[str, tuple[int, int]] = {}  # layer id -> (done, total) bytes
        reported: PullProgress | None = None
        last = 0.0

        def report(force: bool = False) -> None:
            nonlocal reported, last
            if progress is None or not layers:
                return
            now = time.monotonic()
            if not force and now - last < PROGRESS_INTERVAL_SECONDS:
                return
            current = PullProgress(
                layers=len(layers),
                done_bytes=sum(done for done, _ in layers.values()),
                total_bytes=sum(total for _, total in layers.values()),
            )
            if current != reported:
                progress(current)
                reported, last = current, now

        def open_pull(client: Any) -> Any:
            return client.api.pull(repository, ref, stream=True, decode=True)

        error: str | None = None
        try:
            async with aclosing(self._stream(open_pull, "pull")) as lines:
                async for line in lines:
                    error = self._pull_line(line, layers)
                    if error is not None:
                        break
                    report()
        except BackendUnavailable:
            raise
        except BackendError as exc:
            raise self._pull_error(image, str(exc)) from exc
        if error is not None:
            raise self._pull_error(image, error)
        report(force=True)
        log.info("pulled %s", image)

    @staticmethod
    def _pull_line(line: Mapping[str, Any], layers: dict[str, tuple[int, int]]) -> str | None:
        """Account one line of the pull stream in ``layers``; the engine's error, if any."""
        if "error" in line or "errorDetail" in line:
            return str((line.get("errorDetail") or {}).get("message") or line.get("error"))
        layer, status = line.get("id"), str(line.get("status", ""))
        detail = line.get("progressDetail") or {}
        if not layer or not (detail or status.endswith(("complete", "exists"))):
            return None  # "Pulling from repo", "Digest: ..." and the like: not a layer
        done, total = layers.get(layer, (0, 0))
        if "total" in detail:
            total = max(total, int(detail["total"]))
        if status.startswith("Download") and "current" in detail:
            done = int(detail["current"])
        if status in ("Download complete", "Pull complete"):
            done = total
        layers[layer] = (min(done, total) if total else done, total)
        return None

    @staticmethod
    def _pull_error(image: str, message: str) -> BackendError:
        log.warning("pulling %s failed: %s", image, message)
        lowered = message.lower()
        for fragments, kind, meaning in _PULL_FAILURES:
            if any(fragment in lowered for fragment in fragments):
                return kind(f"image {image} cannot be pulled: {meaning}")
        return BackendError(
            f"image {image} cannot be pulled: the engine failed (its message is in Port's log)"
        )

    # --- containers --------------------------------------------------------------------

    def create_options(self, spec: PodSpec, host_address: str | None = None) -> dict[str, Any]:
        """The keyword arguments of ``client.containers.create`` for ``spec``.

        Everything but the image, name, labels, environment, limits, GPUs and the admin's
        mounts is fixed here; nothing of a manifest reaches the host configuration.
        ``host_address`` is Port's host as Pods reach it: named ``HOST_ALIAS`` inside.
        """
        settings = self.settings
        options: dict[str, Any] = {
            "image": spec.image,
            "name": self.object_name(spec),
            # The instance label is what list_managed and events look for: set it here,
            # whatever the caller built, so no container of ours can go unseen.
            "labels": {**spec.labels, LABEL_INSTANCE: settings.instance_name},
            "environment": dict(spec.env),
            "detach": True,
            "privileged": False,
            "security_opt": ["no-new-privileges:true"],
            "cap_drop": ["ALL"],
            "cap_add": list(settings.docker_capabilities),
            "network": self.network_name(spec.tenant),
            "ipc_mode": "private",
            "pids_limit": settings.docker_pids_limit,
            # docker-init (tini) as PID 1 reaps zombies and passes SIGTERM on; the engine
            # mounts it into the container, so FROM-scratch images get it too.
            "init": True,
            # The admin's mounts for this app (PORT_DOCKER_MOUNTS), nothing of a manifest.
            "volumes": [self._bind(m) for m in settings.docker_mounts.get(spec.app, ())],
            # Rotated, so a chatty Pod cannot fill the engine's disk.
            "log_config": docker.types.LogConfig(
                type="json-file",
                config={
                    "max-size": f"{settings.docker_log_max_mb}m",
                    "max-file": str(settings.docker_log_files),
                },
            ),
            "read_only": spec.read_only,
        }
        if host_address is not None:
            options["extra_hosts"] = {HOST_ALIAS: host_address}
        if spec.read_only:
            options["tmpfs"] = {"/tmp": "rw,noexec,nosuid,size=64m"}  # noqa: S108 - in the Pod
        if spec.user is not None:
            options["user"] = spec.user
        if spec.command is not None:
            options["entrypoint"] = list(spec.command)
        if spec.args is not None:
            options["command"] = list(spec.args)
        if spec.cpus is not None:
            # At least 1/100 CPU: 0 would mean "no limit" to the engine.
            options["nano_cpus"] = max(int(spec.cpus * 1e9), MIN_NANO_CPUS)
        if spec.memory_bytes is not None:
            options["mem_limit"] = spec.memory_bytes
            options["memswap_limit"] = spec.memory_bytes  # no swap beyond the limit
        self._apply_grants(options, spec.grants)
        if spec.gpus > 0 and spec.gpu_vendor in ("amd", "intel"):
            # ROCm's way (AMD's Docker guide), and Intel's: the render nodes (and AMD's
            # compute interface). /dev/dri holds every card: no count applies. The groups
            # owning them go by number: a name would be looked up in the image.
            paths = AMD_DEVICES if spec.gpu_vendor == "amd" else INTEL_DEVICES
            options["devices"] = [
                *options.get("devices", ()),  # what was granted stays
                *(f"{path}:{path}:rwm" for path in paths),
            ]
            if settings.docker_gpu_groups:
                options["group_add"] = [str(gid) for gid in settings.docker_gpu_groups]
        elif spec.gpus > 0:
            options["device_requests"] = [
                docker.types.DeviceRequest(count=spec.gpus, capabilities=[["gpu"]])
            ]
        return options

    @staticmethod
    def _apply_grants(options: dict[str, Any], grants: Sequence[Grant]) -> None:
        """Exactly what was granted, on top of the sandbox: binds (never made on the host
        when missing, unlike ``volumes``), devices, shared memory, added capabilities,
        the host's network."""
        mounts, devices = [], []
        for grant in grants:
            match grant.kind:
                case "folder" | "container_engine":
                    mounts.append(
                        docker.types.Mount(
                            grant.target, grant.source, type="bind", read_only=grant.read_only
                        )
                    )
                case "device":
                    devices.append(f"{grant.source}:{grant.target}:rwm")
                case "shared_memory":
                    options["shm_size"] = f"{grant.shm_mb}m"
                case "linux_capability":
                    if grant.cap not in options["cap_add"]:
                        options["cap_add"].append(grant.cap)
                case "host_network":
                    options.pop("network", None)
                    options["network_mode"] = "host"
                    options.pop("extra_hosts", None)  # the host is the host already
                case _:
                    raise BackendError(f"the Docker backend cannot grant {grant.kind}")
        if mounts:
            options["mounts"] = mounts
        if devices:
            options["devices"] = devices

    @staticmethod
    def _bind(mount: str) -> str:
        """``host:container[:ro]`` as a bind the engine cannot mistake for a volume name."""
        parts = mount.split(":")
        mode = parts[2] if len(parts) == 3 else "rw"
        absolute = len(parts) in (2, 3) and parts[0].startswith("/") and parts[1].startswith("/")
        if not absolute or mode not in ("ro", "rw"):
            raise BackendError(f"mount {mount!r}: use /host:/container[:ro]")
        return f"{parts[0]}:{parts[1]}:{mode}"

    def object_name(self, spec: PodSpec) -> str:
        """``port-stardist-s12-p31``: what runs, for whom, found again after a restart
        (Docker's names take identifiers' ``_`` and ``.`` as they are)."""
        setup = spec.labels.get(LABEL_SETUP, "0")
        return f"{self.settings.instance_name}-{spec.app}-s{setup}-p{spec.pod_id}"

    def network_name(self, tenant: int) -> str:
        """The network of one tenant (a Setup): ``port-<instance>-s12``."""
        return f"{self.settings.docker_network}-{self.settings.instance_name}-s{tenant}"

    async def _ensure_network(self, spec: PodSpec) -> str:
        """The Pod's network, made when missing: a bridge of the tenant's own, on a subnet
        of ``PORT_DOCKER_SUBNETS``, guarded by the instance's firewall chains."""
        name = self.network_name(spec.tenant)
        if name in self._networks:
            return name
        instance = self.settings.instance_name
        pool = ipaddress.ip_network(self.settings.docker_subnets)

        def ensure(client: Any) -> None:
            with suppress(docker.errors.NotFound):
                client.api.inspect_network(name)
                return
            if self.settings.docker_firewall:
                # Before the first Pod can send a packet; Port's port on the host's
                # address is the one way in to the host.
                host = self._host_address(client)
                self.firewall.ensure(door=(host, self.settings.port) if host else None)
            for _attempt in range(5):
                subnet = _free_subnet(client, pool)
                try:
                    client.api.create_network(
                        name,
                        driver="bridge",
                        internal=spec.offline,
                        ipam=docker.types.IPAMConfig(
                            pool_configs=[docker.types.IPAMPool(subnet=str(subnet))]
                        ),
                        options={
                            BRIDGE_NAME_OPTION: bridge_name(instance, spec.tenant),
                            # Not even Pods of one Setup talk to each other (an update's
                            # old and new Pod have nothing to say).
                            "com.docker.network.bridge.enable_icc": "false",
                        },
                        labels={LABEL_INSTANCE: instance, LABEL_TENANT: str(spec.tenant)},
                        check_duplicate=True,
                    )
                    log.info("created the Docker network %s on %s", name, subnet)
                    return
                except docker.errors.APIError as exc:
                    if exc.status_code == 409:  # another Port process made it meanwhile
                        return
                    if "overlap" not in _explanation(exc).lower():
                        raise
                    # Another engine user took the subnet since we looked: the next one.
            raise BackendError(f"no free subnet for the network {name} in {pool}")

        async with self._network_lock:
            if name not in self._networks:
                await self._call(ensure)
                self._networks.add(name)
        return name

    async def prune(self, tenants: Collection[int]) -> None:
        """Remove the networks of tenants other than ``tenants`` that no container uses;
        the firewall chains go with the instance's last network."""
        instance = self.settings.instance_name
        keep = {str(tenant) for tenant in tenants}

        def prune(client: Any) -> None:
            networks = client.api.networks(filters={"label": f"{LABEL_INSTANCE}={instance}"})
            left = 0
            for network in networks:
                if (network.get("Labels") or {}).get(LABEL_TENANT) in keep:
                    left += 1
                    continue
                try:
                    client.api.remove_network(network["Id"])
                    log.info("removed the Docker network %s", network["Name"])
                except docker.errors.NotFound:
                    pass  # removed by someone else meanwhile: what we wanted
                except docker.errors.APIError:  # still in use (a container being stopped)
                    left += 1
                self._networks.discard(network["Name"])
            if left == 0 and self.settings.docker_firewall:
                self.firewall.remove()

        async with self._network_lock:
            await self._call(prune)

    async def _create(self, spec: PodSpec) -> str:
        """Create (not start) the container of ``spec``; its id. ContainerExists: adopt."""
        options = self.create_options(spec, await self.host_address())

        def create(client: Any) -> str | None:
            try:
                return str(client.containers.create(**options).id)
            except docker.errors.ImageNotFound:
                raise
            except docker.errors.NotFound:
                return None  # the network went away since we made it
            except docker.errors.APIError as exc:
                if exc.status_code != 409:
                    raise
            try:
                existing = client.api.inspect_container(options["name"])
            except docker.errors.NotFound:  # removed again meanwhile: one more try
                return str(client.containers.create(**options).id)
            labels = (existing.get("Config") or {}).get("Labels") or {}
            raise ContainerExists(options["name"], existing["Id"], labels)

        network = await self._ensure_network(spec)
        try:
            created = await self._call(create)
            if created is None:
                self._networks.discard(network)
                await self._ensure_network(spec)
                created = await self._call(create)
        except ImageNotFound as exc:
            raise ImageNotFound(f"image {spec.image} is not on the engine: {exc}") from exc
        if created is None:
            raise BackendError(f"the network {network} keeps vanishing")
        log.info("created container %s (%s) from %s", short(created), options["name"], spec.image)
        return created

    async def _start(self, container_id: str) -> None:
        await self._call(lambda c: c.api.start(container_id))
        log.info("started container %s", short(container_id))

    async def _remove(self, container_id: str) -> None:
        """Remove (killing it if needed); a container already gone is success. When
        another caller is removing it (409), wait until it is gone: the caller of ``stop``
        is told the container no longer exists, and it must be true."""

        def remove(client: Any) -> None:
            try:
                # v=True: anonymous volumes of the image go with it, or disks fill up
                client.api.remove_container(container_id, force=True, v=True)
            except docker.errors.NotFound:
                return
            except docker.errors.APIError as exc:
                if exc.status_code != 409:  # 409: removal already in progress
                    raise
            deadline = time.monotonic() + API_TIMEOUT_SECONDS
            while time.monotonic() < deadline:
                try:
                    client.api.inspect_container(container_id)
                except docker.errors.NotFound:
                    return
                time.sleep(0.05)
            raise BackendError(f"container {short(container_id)} is still being removed")

        await self._call(remove)

    async def start(self, spec: PodSpec) -> str:
        container_id = await self._create(spec)
        try:
            await self._start(container_id)
        except BackendUnavailable:
            raise  # the engine went away: the created container is adopted later
        except BackendError as exc:
            log.warning("container %s did not start, removing it: %s", short(container_id), exc)
            try:
                await self._remove(container_id)
            except (BackendError, BackendUnavailable) as cleanup:
                log.warning("could not remove %s: %s", short(container_id), cleanup)
            reason = str(exc).removeprefix("the Docker engine refused: ")
            raise BackendError(
                f"container {self.object_name(spec)} did not start: {reason}"
            ) from exc
        return container_id

    # The interface's grace period before SIGKILL, not a deadline for the call itself.
    async def stop(self, container_id: str, timeout: float = 10) -> None:  # noqa: ASYNC109
        seconds = max(0, math.ceil(timeout))

        def stop(client: Any) -> None:
            try:
                client.api.stop(container_id, timeout=seconds)
            except docker.errors.NotFound:
                return
            except docker.errors.APIError as exc:
                if exc.status_code != 409:  # 409: already being removed
                    raise

        await self._call(stop)
        await self._remove(container_id)
        log.info("stopped and removed container %s", short(container_id))

    async def poll(self, container_id: str) -> PodState | None:
        def inspect(client: Any) -> dict[str, Any] | None:
            try:
                attrs: dict[str, Any] = client.api.inspect_container(container_id)
            except docker.errors.NotFound:
                return None
            return attrs

        attrs = await self._call(inspect)
        return None if attrs is None else state_from_inspect(attrs)

    async def logs(self, container_id: str, tail: int = 100) -> str:
        """The last ``tail`` lines; a container that does not exist has none: "".

        Gone is not an error here, as for ``poll`` and ``stop``: the caller asks for the
        output of a Pod whose container may have been removed a moment ago.
        """

        limit = self.settings.logs_max_kb << 10

        def read(client: Any) -> bytes:
            # Streamed and trimmed as it comes: `tail` lines of any length cost at most
            # twice the byte limit in memory, and the newest `limit` bytes are kept.
            try:
                chunks = client.api.logs(
                    container_id, stdout=True, stderr=True, tail=tail, stream=True, follow=False
                )
            except docker.errors.NotFound:
                return b""
            kept = bytearray()
            for chunk in chunks:
                kept += chunk
                if len(kept) > 2 * limit:
                    del kept[:-limit]
            return newest_lines(bytes(kept), limit)

        return (await self._call(read)).decode(errors="replace")

    async def follow_logs(self, container_id: str, tail: int = 0) -> AsyncIterator[str]:
        """Output lines as they come; ends when the container ends or the engine goes.

        A container that does not exist: BackendError (there is nothing to follow).
        """

        def open_logs(client: Any) -> Any:
            return client.api.logs(container_id, stream=True, follow=True, tail=tail)

        pending = b""
        async with aclosing(self._stream(open_logs, f"logs-{short(container_id)}")) as chunks:
            async for chunk in chunks:
                pending += chunk
                *lines, pending = pending.split(b"\n")
                for line in lines:
                    yield line.decode(errors="replace")
        if pending:
            yield pending.decode(errors="replace")

    async def list_managed(self) -> list[ManagedContainer]:
        """One list call; only containers that are not running are inspected too.

        A running container's state comes from the list (status and health; no times),
        the others' from `docker inspect`, for their exit code and the engine's message.
        The reconciler calls this every few seconds, and most containers run.
        """
        label = f"{LABEL_INSTANCE}={self.settings.instance_name}"

        def collect(client: Any) -> list[ManagedContainer]:
            found = []
            for row in client.api.containers(all=True, filters={"label": label}):
                names = row.get("Names") or [""]
                name = names[0].lstrip("/")
                labels = row.get("Labels") or {}
                if row.get("State") == "running":
                    health = _HEALTH_IN_STATUS.search(str(row.get("Status", "")))
                    ready, checked = readiness(
                        health[1].removeprefix("health: ") if health else None
                    )
                    state = PodState(
                        PodStatus.RUNNING, ready=ready, checked=checked, address=address_of(row)
                    )
                else:
                    try:
                        state = state_from_inspect(client.api.inspect_container(row["Id"]))
                    except docker.errors.NotFound:
                        continue  # removed since the list call
                found.append(ManagedContainer(row["Id"], name, labels, state))
            return found

        return await self._call(collect)

    async def events(self) -> AsyncIterator[str]:
        """Ids of this instance's containers on start, die, oom, destroy and health changes.

        Raises BackendUnavailable when the engine cannot be reached at all; ends when the
        connection to the engine drops later.
        """
        instance_label = f"{LABEL_INSTANCE}={self.settings.instance_name}"
        filters = {"type": "container", "label": instance_label, "event": list(WATCHED_EVENTS)}

        def open_events(client: Any) -> Any:
            return client.api.events(decode=True, filters=filters)

        async with aclosing(self._stream(open_events, "events")) as events:
            async for event in events:
                action = str(event.get("Action") or event.get("status") or "")
                container_id = event.get("id") or (event.get("Actor") or {}).get("ID")
                if container_id and action.split(":", 1)[0] in WATCHED_EVENTS:
                    yield str(container_id)
        log.info("the Docker engine's event stream ended")

    async def close(self) -> None:
        self._closed = True
        for pump in list(self._pumps):
            pump.stop()
        with self._client_lock:
            client, self._client = self._client, None
        if client is not None:
            client.close()
        self._executor.shutdown(wait=False, cancel_futures=True)
