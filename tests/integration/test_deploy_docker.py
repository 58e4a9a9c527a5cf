"""The Docker backend against a real engine (and registry) with busybox test images.

Each test has its own ``port.instance`` (``docker_settings``), so it sees only its own
containers; they are removed afterwards, and printed first when the test failed. Tests
that use the engine are marked ``docker`` by the conftest (through ``docker_engine``).
"""

from __future__ import annotations

import asyncio
import contextlib
import platform
import re
import threading
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from contextlib import aclosing
from dataclasses import replace
from typing import Any, TypeVar

import pytest

from port.deploy.backends import load_backend
from port.deploy.backends.base import (
    LABEL_APP,
    LABEL_INSTANCE,
    LABEL_POD,
    LABEL_SETUP,
    BackendError,
    BackendUnavailable,
    ContainerExists,
    ImageNotFound,
    PodSpec,
    PodStatus,
    PullProgress,
)
from port.deploy.backends.docker import DockerBackend
from port.deploy.selection import Capabilities, Gpu
from port.settings import GpuDeclaration, Settings
from tests.harness import eventually, free_port
from tests.integration.dockerfixtures import DockerSettings, SecondEngine, TestImages

T = TypeVar("T")

# Linux capability numbers (linux/capability.h), to read /proc/<pid>/status masks.
CAP_NUMBERS = {
    "CHOWN": 0,
    "DAC_OVERRIDE": 1,
    "FOWNER": 3,
    "FSETID": 4,
    "KILL": 5,
    "SETGID": 6,
    "SETUID": 7,
    "SETPCAP": 8,
    "NET_BIND_SERVICE": 10,
    "NET_RAW": 13,
    "SYS_CHROOT": 18,
    "MKNOD": 27,
    "AUDIT_WRITE": 29,
    "SETFCAP": 31,
}


def stream(lines: AsyncIterator[str]) -> AsyncGenerator[str, None]:
    """The backend's line stream as what it is, an async generator (aclosing needs aclose)."""
    assert isinstance(lines, AsyncGenerator)
    return lines


async def collect(stream: AsyncIterator[str], into: list[str]) -> None:
    async for item in stream:
        into.append(item)


async def listening(thread: str) -> None:
    """Wait until a stream's reader thread runs: the engine has accepted the request."""
    await eventually(
        lambda: asyncio.sleep(0, {t.name for t in threading.enumerate()}),
        "the engine to report it",
        until=lambda names: thread in names,
    )


def pod_spec(settings: Settings, image: str, suffix: str = "1", **fields: Any) -> PodSpec:
    return PodSpec(
        image=image,
        labels={
            LABEL_INSTANCE: settings.instance_name,
            LABEL_POD: suffix,
            LABEL_SETUP: "7",
            LABEL_APP: "pod",
        },
        **fields,
    )


@pytest.fixture
def settings(docker_settings: DockerSettings) -> Settings:
    return docker_settings()


@pytest.fixture
async def backend(settings: Settings) -> AsyncIterator[DockerBackend]:
    backend = DockerBackend.from_settings(settings)
    yield backend
    await backend.close()


def run_in(container: Any, *command: str) -> str:
    """The output of a busybox applet run in ``container`` (`docker exec`); must succeed."""
    result = container.exec_run(["/bin/busybox", *command])
    output = str(result.output.decode(errors="replace"))
    assert result.exit_code == 0, f"{command} exited with {result.exit_code}: {output}"
    return output


def inspect(docker_engine: Any, container_id: str) -> dict[str, Any]:
    attrs: dict[str, Any] = docker_engine.api.inspect_container(container_id)
    return attrs


def test_the_entry_point_names_the_docker_backend(tmp_path: Any) -> None:
    backend = load_backend(Settings(data_dir=tmp_path, backend="docker"))
    assert isinstance(backend, DockerBackend)


# --- a container's life ---------------------------------------------------------------


async def test_start_poll_logs_follow_stop(
    backend: DockerBackend, settings: Settings, docker_images: TestImages
) -> None:
    container_id = await backend.start(pod_spec(settings, docker_images["forever"]))

    state = await backend.poll(container_id)
    assert state is not None
    assert state.status is PodStatus.RUNNING
    assert state.started_at is not None
    assert state.finished_at is None
    assert "started" in await eventually(
        lambda: backend.logs(container_id), "the engine to report it", until=lambda t: "tick" in t
    )

    # Following yields lines written after it began (tail=0), one line at a time.
    async with aclosing(stream(backend.follow_logs(container_id))) as lines:
        got = [await anext(lines), await anext(lines)]
    assert all(line.startswith("tick ") for line in got), got
    assert int(got[1].split()[1]) == int(got[0].split()[1]) + 1
    # Stopping to iterate closed the stream: its reader thread is gone.
    await eventually(
        lambda: asyncio.sleep(0, [t.name for t in threading.enumerate()]),
        "the engine to report it",
        until=lambda names: not any(n.startswith("port-docker-logs-") for n in names),
        within=5,
    )

    started = time.monotonic()
    await backend.stop(container_id, timeout=1)
    assert time.monotonic() - started < 5
    assert await backend.poll(container_id) is None
    await backend.stop(container_id, timeout=1)  # gone already: still fine
    assert await backend.logs(container_id) == ""


async def test_following_ends_when_the_container_ends(
    docker_engine: Any, backend: DockerBackend, settings: Settings, docker_images: TestImages
) -> None:
    container_id = await backend.start(pod_spec(settings, docker_images["forever"]))
    lines = []

    async def follow() -> None:
        async for line in backend.follow_logs(container_id, tail=5):
            lines.append(line)

    follower = asyncio.create_task(follow())
    await eventually(
        lambda: asyncio.sleep(0, len(lines)), "the engine to report it", until=lambda n: n >= 3
    )
    await asyncio.to_thread(docker_engine.api.stop, container_id, timeout=1)
    await asyncio.wait_for(follower, timeout=10)  # ends by itself, no cancel needed
    assert lines[0].startswith(("started", "tick"))


async def test_close_ends_followers_and_refuses_further_calls(
    docker_settings: DockerSettings, docker_images: TestImages
) -> None:
    backend = DockerBackend(docker_settings())
    container_id = await backend.start(pod_spec(backend.settings, docker_images["forever"]))
    lines: list[str] = []
    followers = [
        asyncio.create_task(collect(backend.follow_logs(container_id), lines)),
        asyncio.create_task(collect(backend.events(), [])),
    ]
    await listening("port-docker-events")
    await listening(f"port-docker-logs-{container_id[:12]}")

    await backend.close()

    await asyncio.wait_for(asyncio.gather(*followers), timeout=5)
    with pytest.raises(BackendUnavailable, match="closed"):
        await backend.poll(container_id)


async def test_a_container_that_exits_at_once_fails_with_its_code(
    backend: DockerBackend, settings: Settings, docker_images: TestImages
) -> None:
    container_id = await backend.start(pod_spec(settings, docker_images["exit3"]))

    state = await eventually(
        lambda: backend.poll(container_id),
        "the engine to report it",
        until=lambda s: s is not None and s.status is not PodStatus.RUNNING,
    )
    assert state is not None
    assert (state.status, state.exit_code) == (PodStatus.FAILED, 3)
    assert state.started_at is not None
    assert state.finished_at is not None
    assert state.finished_at >= state.started_at
    assert "failing on purpose" in await backend.logs(container_id)
    # Following a container that has ended yields its output and ends.
    async with aclosing(stream(backend.follow_logs(container_id, tail=10))) as lines:
        assert [line async for line in lines] == ["failing on purpose"]


async def test_health_from_the_image_healthcheck(
    backend: DockerBackend, settings: Settings, docker_images: TestImages
) -> None:
    seen: list[str] = []
    events = asyncio.create_task(collect(backend.events(), seen))
    try:
        await listening("port-docker-events")
        container_id = await backend.start(pod_spec(settings, docker_images["healthy"]))
        state = await eventually(
            lambda: backend.poll(container_id),
            "the engine to report it",
            until=lambda s: s is not None and s.ready is True,
        )
        assert state is not None
        assert state.status is PodStatus.RUNNING
        (managed,) = await backend.list_managed()
        assert (managed.state.ready, managed.state.checked) == (True, True)
        # The health change is an event too (after "start"): the reconciler wakes on it.
        await eventually(
            lambda: asyncio.sleep(0, seen.count(container_id)),
            "the engine to report it",
            until=lambda n: n >= 2,
        )
    finally:
        events.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await events


async def test_a_second_start_of_the_same_pod_adopts_the_first_container(
    backend: DockerBackend, settings: Settings, docker_images: TestImages
) -> None:
    spec = pod_spec(settings, docker_images["forever"])
    first = await backend.start(spec)

    with pytest.raises(ContainerExists) as raised:
        await backend.start(spec)

    assert raised.value.container_id == first
    assert [c.id for c in await backend.list_managed()] == [first]


async def test_list_managed_sees_only_this_instance(
    backend: DockerBackend,
    settings: Settings,
    docker_settings: DockerSettings,
    docker_images: TestImages,
) -> None:
    other = DockerBackend(docker_settings())
    try:
        theirs = await other.start(pod_spec(other.settings, docker_images["forever"]))
        running = await backend.start(pod_spec(settings, docker_images["forever"], "1"))
        exited = await backend.start(pod_spec(settings, docker_images["exit3"], "2"))
        await eventually(
            lambda: backend.poll(exited),
            "the engine to report it",
            until=lambda s: s is not None and s.status is PodStatus.FAILED,
        )

        mine = {c.id: c for c in await backend.list_managed()}

        assert set(mine) == {running, exited}
        assert mine[running].name == f"{settings.instance}-pod-s7-p1"
        assert mine[running].pod_id == 1
        assert mine[running].labels[LABEL_SETUP] == "7"
        assert mine[running].state.status is PodStatus.RUNNING
        assert (mine[exited].state.status, mine[exited].state.exit_code) == (PodStatus.FAILED, 3)
        assert [c.id for c in await other.list_managed()] == [theirs]
    finally:
        await other.close()


async def test_events_name_this_instances_containers_that_die(
    backend: DockerBackend,
    settings: Settings,
    docker_settings: DockerSettings,
    docker_images: TestImages,
) -> None:
    seen: list[str] = []
    listener = asyncio.create_task(collect(backend.events(), seen))
    try:
        await listening("port-docker-events")
        other = DockerBackend(docker_settings())
        try:
            theirs = await other.start(pod_spec(other.settings, docker_images["exit3"]))
        finally:
            await other.close()
        mine = await backend.start(pod_spec(settings, docker_images["exit3"]))
        await eventually(
            lambda: asyncio.sleep(0, seen.count(mine)),
            "the engine to report it",
            until=lambda n: n >= 2,
        )  # start, die
        state = await backend.poll(mine)
        assert state is not None
        assert state.status is PodStatus.FAILED
        assert theirs not in seen
    finally:
        listener.cancel()
        with pytest.raises(asyncio.CancelledError):
            await listener


# --- the sandbox ------------------------------------------------------------------------


async def test_sandbox_and_limits_as_the_engine_sees_them(
    docker_engine: Any, docker_settings: DockerSettings, docker_images: TestImages
) -> None:
    settings = docker_settings(docker_capabilities=["CHOWN", "KILL"], docker_pids_limit=64)
    backend = DockerBackend(settings)
    try:
        spec = pod_spec(
            settings,
            docker_images["env"],
            env={"GREETING": "hello from port"},
            cpus=0.5,
            memory_bytes=64 << 20,
        )
        container_id = await backend.start(spec)
        attrs = inspect(docker_engine, container_id)
        host = attrs["HostConfig"]

        assert attrs["Name"] == f"/{settings.instance_name}-pod-s7-p1"  # the backend's name
        assert attrs["Config"]["Labels"][LABEL_INSTANCE] == settings.instance
        assert attrs["Config"]["Labels"][LABEL_POD] == "1"
        assert "GREETING=hello from port" in attrs["Config"]["Env"]
        assert host["Privileged"] is False
        assert host["SecurityOpt"] == ["no-new-privileges:true"]
        assert host["CapDrop"] == ["ALL"]
        assert host["CapAdd"] == ["CHOWN", "KILL"]
        network = f"{settings.docker_network}-{settings.instance}-s0"  # tenant 0's own
        assert host["NetworkMode"] == network
        assert list(attrs["NetworkSettings"]["Networks"]) == [network]
        assert host["PidMode"] in ("", "private")
        assert host["IpcMode"] == "private"
        assert host["UsernsMode"] in ("", "private")
        assert host["NanoCpus"] == 500_000_000
        assert host["Memory"] == host["MemorySwap"] == 64 << 20
        assert host["PidsLimit"] == 64
        assert not host["Binds"]
        assert host["RestartPolicy"]["Name"] in ("", "no")
        assert not host["DeviceRequests"]

        # What the process inside gets: the environment, the capability bounding set and
        # no-new-privileges (as the kernel reports them), docker-init as PID 1.
        assert "GREETING=hello from port" in await eventually(
            lambda: backend.logs(container_id),
            "the engine to report it",
            until=lambda t: "env printed" in t,
        )
        container = docker_engine.containers.get(container_id)
        status = run_in(container, "cat", "/proc/self/status")
        fields = dict(line.split(":\t", 1) for line in status.splitlines() if ":\t" in line)
        assert int(fields["CapBnd"], 16) == (1 << CAP_NUMBERS["CHOWN"]) | (1 << CAP_NUMBERS["KILL"])
        assert fields["NoNewPrivs"].strip() == "1"
        init = run_in(container, "cat", "/proc/1/cmdline")
        assert init.split("\0")[0].endswith("docker-init")
    finally:
        await backend.close()


async def test_default_capabilities_and_admin_mounts(
    docker_engine: Any,
    docker_settings: DockerSettings,
    docker_images: TestImages,
    tmp_path: Any,
) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "hello.txt").write_text("from the host\n")
    # The admin's mounts are the app's (PORT_DOCKER_MOUNTS), the only host paths besides
    # what an owner granted; other apps get none.
    settings = docker_settings(docker_mounts={"pod": [f"{shared}:/data:ro"]})
    backend = DockerBackend(settings)
    try:
        other = pod_spec(settings, docker_images["forever"], "2")
        other = replace(other, labels={**other.labels, LABEL_APP: "another"})
        assert backend.create_options(other)["volumes"] == []
        spec = pod_spec(settings, docker_images["forever"])
        container_id = await backend._create(spec)  # created, not started
        host = inspect(docker_engine, container_id)["HostConfig"]
        assert host["Binds"] == [f"{shared}:/data:ro"]
        assert host["CapAdd"] == settings.docker_capabilities
        assert "NET_RAW" not in host["CapAdd"]
        assert host["NanoCpus"] == 0
        assert host["Memory"] == 0

        await backend._start(container_id)
        container = docker_engine.containers.get(container_id)
        assert run_in(container, "cat", "/data/hello.txt") == "from the host\n"
        with pytest.raises(AssertionError, match="Read-only file system"):
            run_in(container, "touch", "/data/new")
    finally:
        await backend.close()


async def test_a_gpu_pod_asks_the_engine_for_a_gpu(
    docker_engine: Any, backend: DockerBackend, settings: Settings, docker_images: TestImages
) -> None:
    spec = pod_spec(settings, docker_images["forever"], gpus=1)

    container_id = await backend._create(spec)

    (request,) = inspect(docker_engine, container_id)["HostConfig"]["DeviceRequests"]
    assert request["Count"] == 1
    assert request["Capabilities"] == [["gpu"]]


async def test_a_rocm_pod_gets_the_amd_devices(
    docker_engine: Any, backend: DockerBackend, settings: Settings, docker_images: TestImages
) -> None:
    spec = pod_spec(settings, docker_images["forever"], gpus=2, gpu_vendor="amd")
    backend.settings = settings.model_copy(update={"docker_gpu_groups": [109, 44]})

    container_id = await backend._create(spec)  # starting needs the devices on the host

    host = inspect(docker_engine, container_id)["HostConfig"]
    assert [(d["PathOnHost"], d["PathInContainer"]) for d in host["Devices"]] == [
        ("/dev/kfd", "/dev/kfd"),
        ("/dev/dri", "/dev/dri"),
    ]
    assert host["GroupAdd"] == ["109", "44"]  # by number: the image has no such groups
    assert not host["DeviceRequests"]  # no NVIDIA request


async def test_a_oneapi_pod_gets_the_intel_render_nodes(
    docker_engine: Any, backend: DockerBackend, settings: Settings, docker_images: TestImages
) -> None:
    spec = pod_spec(settings, docker_images["forever"], gpus=1, gpu_vendor="intel")
    backend.settings = settings.model_copy(update={"docker_gpu_groups": [109]})

    container_id = await backend._create(spec)

    host = inspect(docker_engine, container_id)["HostConfig"]
    assert [(d["PathOnHost"], d["PathInContainer"]) for d in host["Devices"]] == [
        ("/dev/dri", "/dev/dri")
    ]
    assert host["GroupAdd"] == ["109"]
    assert not host["DeviceRequests"]


@pytest.mark.usefixtures("gpu_refused")
async def test_a_container_that_cannot_start_is_removed_and_the_reason_told(
    backend: DockerBackend, settings: Settings, docker_images: TestImages
) -> None:
    spec = pod_spec(settings, docker_images["forever"], gpus=1)

    with pytest.raises(BackendError) as raised:
        await backend.start(spec)

    assert f"container {backend.object_name(spec)} did not start" in str(raised.value)
    assert "device driver" in str(raised.value)  # the engine's own words
    assert await backend.list_managed() == []


async def test_a_missing_image_is_image_not_found(
    backend: DockerBackend, settings: Settings
) -> None:
    with pytest.raises(ImageNotFound, match="port-test/never-built"):
        await backend.start(pod_spec(settings, "port-test/never-built:1"))
    assert await backend.list_managed() == []


# --- images -------------------------------------------------------------------------------


async def test_pull_from_the_local_registry(
    docker_engine: Any,
    backend: DockerBackend,
    settings: Settings,
    docker_images: TestImages,
    docker_registry: str,
) -> None:
    by_tag, by_digest = docker_images.push_unique(docker_registry, "pulled")
    assert not await backend.has_image(by_tag)
    reports: list[PullProgress] = []

    await backend.pull(by_tag, reports.append)

    assert await backend.has_image(by_tag)
    assert reports, "a pull that downloads reports progress"
    assert reports[-1].layers >= 2  # busybox and the unique layer
    assert 512 * 1024 <= reports[-1].done_bytes == reports[-1].total_bytes
    done = [r.done_bytes for r in reports]
    assert done == sorted(done)
    # The pulled image runs.
    container_id = await backend.start(pod_spec(settings, by_tag))
    state = await backend.poll(container_id)
    assert state is not None
    assert state.status is PodStatus.RUNNING
    await backend.stop(container_id, timeout=1)

    # By digest (with a registry port and a tag in the reference), from scratch again.
    docker_engine.images.remove(by_tag)
    assert not await backend.has_image(by_digest)
    await backend.pull(by_digest)
    assert await backend.has_image(by_digest)


async def test_pulling_a_missing_image_is_image_not_found(
    backend: DockerBackend, docker_registry: str
) -> None:
    missing = f"{docker_registry}/port-test/nothing-here:1"
    assert not await backend.has_image(missing)

    with pytest.raises(ImageNotFound, match="nothing-here"):
        await backend.pull(missing)


async def test_pulling_from_a_registry_that_is_down_is_a_backend_error(
    backend: DockerBackend,
) -> None:
    image = f"127.0.0.1:{free_port()}/port-test/app:1"
    with pytest.raises(BackendError, match="the registry could not be reached") as raised:
        await backend.pull(image)
    assert not isinstance(raised.value, ImageNotFound)


# --- the engine ------------------------------------------------------------------------


async def test_capabilities_of_the_engine(
    docker_settings: DockerSettings, docker_engine: Any
) -> None:
    declared = [GpuDeclaration(vendor="nvidia", cuda_version="12.2", memory_mb=16000)]
    backend = DockerBackend(docker_settings(docker_gpus=declared))
    try:
        caps = await backend.capabilities()
    finally:
        await backend.close()

    assert isinstance(caps, Capabilities)
    [engine] = caps.nodes  # one engine, one node
    assert engine.cpus >= 1
    assert engine.memory_mb > 0
    if platform.machine() == "x86_64":
        assert engine.arch == "amd64"
    assert engine.gpus == (Gpu(vendor="nvidia", cuda_version="12.2", memory_mb=16000),)
    assert engine.state == "ready"
    assert engine.name == docker_engine.info()["Name"]


@pytest.mark.parametrize("where", ["socket", "tcp"])
async def test_an_unreachable_engine_is_backend_unavailable_quickly(
    docker_settings: DockerSettings, tmp_path: Any, where: str
) -> None:
    url = (
        f"unix://{tmp_path}/no-such-dir/docker.sock"
        if where == "socket"
        else f"tcp://127.0.0.1:{free_port()}"
    )
    backend = DockerBackend(docker_settings(docker_host=url))  # does not connect yet
    calls: list[Callable[[], Awaitable[object]]] = [
        backend.capabilities,
        backend.list_managed,
        lambda: backend.poll("0123456789ab"),
        lambda: backend.stop("0123456789ab"),
        lambda: backend.has_image("busybox"),
        lambda: backend.start(pod_spec(backend.settings, "busybox")),
        lambda: anext(backend.events()),
        lambda: anext(backend.follow_logs("0123456789ab")),
    ]
    try:
        for call in calls:
            started = time.monotonic()
            with pytest.raises(BackendUnavailable) as raised:
                await call()
            assert url in str(raised.value)
            assert time.monotonic() - started < 5
    finally:
        await backend.close()


async def test_the_engine_stopped_and_started_again(
    docker_engine: Any,
    docker_settings: DockerSettings,
    docker_images: TestImages,
    second_engine: SecondEngine,
) -> None:
    second_engine.load(docker_engine, docker_images["forever"])
    settings = docker_settings(docker_host=second_engine.url, docker_network="port-second")
    backend = DockerBackend(settings)
    try:
        container_id = await backend.start(pod_spec(settings, docker_images["forever"]))
        state = await backend.poll(container_id)
        assert state is not None
        assert state.status is PodStatus.RUNNING

        seen: list[str] = []
        events = asyncio.create_task(collect(backend.events(), seen))
        await listening("port-docker-events")
        await asyncio.to_thread(second_engine.stop)

        # The event stream ends by itself, after the engine reported the container's end.
        await asyncio.wait_for(events, timeout=10)
        assert container_id in seen
        for call in (backend.poll(container_id), backend.list_managed()):
            with pytest.raises(BackendUnavailable, match=re.escape(str(second_engine.socket))):
                await call

        await asyncio.to_thread(second_engine.start)

        state = await backend.poll(container_id)
        assert state is not None
        assert state.status is PodStatus.FAILED  # stopped with the engine: SIGTERM, 143
        assert [c.id for c in await backend.list_managed()] == [container_id]
        await backend.stop(container_id, timeout=1)
        assert await backend.poll(container_id) is None
        again = await backend.start(pod_spec(settings, docker_images["forever"], "2"))
        state = await backend.poll(again)
        assert state is not None
        assert state.status is PodStatus.RUNNING
        await backend.stop(again, timeout=1)
    finally:
        await backend.close()
