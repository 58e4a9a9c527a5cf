"""Fixtures for indexer tests: bare remotes served over ``file://`` and ``git daemon``.

``remote`` is parametrised over both transports, so every scenario that uses it runs
once against a local path and once over the network protocol a real server speaks. The
daemon runs on 127.0.0.1 with a free port for the whole session. Without ``git daemon``
the daemon variants are skipped locally, but fail under CI (env var ``CI`` set): the
suite must never silently shrink there.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import docker.errors
import pytest
from click.testing import CliRunner

from indexer.scan import Limits
from port.demo_images import is_static_elf
from port.settings import Settings, get_settings
from tests.harness import free_port, require
from tests.integration.dockerfixtures import (
    BUSYBOX,
    DockerSettings,
    SecondEngine,
    TestImages,
    describe_containers,
    host_state,
    remove_instance,
)
from tests.integration.gitfixtures import GitDaemon, MakeRemote, Remote, WorkRepo


@pytest.fixture
def port(database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[CliRunner]:
    """The `port` command on this test's catalogue (local repositories allowed): run it
    with ``tests.harness.run_cli``."""
    monkeypatch.setenv("PORT_DATABASE_URL", database_url)
    monkeypatch.setenv("PORT_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("PORT_ALLOW_LOCAL_REPOS", "true")
    get_settings.cache_clear()
    yield CliRunner()
    get_settings.cache_clear()


@pytest.fixture(scope="session")
def git_daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GitDaemon]:
    """``git daemon`` on 127.0.0.1, exporting every repository under its base path."""
    if shutil.which("git") is None:
        require("git")
    exec_path = subprocess.run(
        ["git", "--exec-path"], capture_output=True, text=True, check=True
    ).stdout.strip()
    if not (Path(exec_path) / "git-daemon").exists():
        require("git daemon")
    base = tmp_path_factory.mktemp("daemon")
    port = free_port()
    proc = subprocess.Popen(
        [
            "git",
            "daemon",
            "--reuseaddr",
            f"--base-path={base}",
            "--export-all",
            "--max-connections=0",  # one daemon for the whole suite: never turn a clone away
            "--listen=127.0.0.1",
            f"--port={port}",
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 15
        while True:
            if proc.poll() is not None:
                pytest.fail(f"git daemon exited with {proc.returncode} before accepting")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail("git daemon did not accept connections within 15 s")
                time.sleep(0.05)
        yield GitDaemon(base, port)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(params=["file", pytest.param("daemon", marks=pytest.mark.git)])
def make_remote(request: pytest.FixtureRequest, tmp_path: Path) -> MakeRemote:
    """A factory of fresh remotes served over this test's transport."""
    transport: str = request.param

    def make() -> Remote:
        name = uuid.uuid4().hex[:10]
        if transport == "daemon":
            daemon: GitDaemon = request.getfixturevalue("git_daemon")
            bare = daemon.base / f"{name}.git"
            work = WorkRepo(tmp_path / f"work-{name}", bare)
            return Remote(work, daemon.url(bare), Limits(timeout_seconds=30), tmp_path / name)
        bare = tmp_path / "remotes" / f"{name}.git"
        work = WorkRepo(tmp_path / f"work-{name}", bare)
        limits = Limits(allow_local=True, timeout_seconds=30)
        return Remote(work, f"file://{bare}", limits, tmp_path / name)

    return make


@pytest.fixture
def remote(make_remote: MakeRemote) -> Remote:
    return make_remote()


@pytest.fixture
def local_remote(tmp_path: Path) -> Remote:
    """A remote over ``file://`` only, for tests about the indexer rather than transport."""
    bare = tmp_path / "remotes" / "local.git"
    work = WorkRepo(tmp_path / "work-local", bare)
    return Remote(
        work, f"file://{bare}", Limits(allow_local=True, timeout_seconds=30), tmp_path / "mirror"
    )


# --- Docker -----------------------------------------------------------------------------


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """Keep each phase's report on the item (``rep_setup``, ``rep_call``), for finalisers
    that print more when the test failed."""
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test that needs the engine (through ``docker_engine``) ``docker``."""
    for item in items:
        if "docker_engine" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.docker)


def _failed(request: pytest.FixtureRequest) -> bool:
    return any(
        getattr(getattr(request.node, f"rep_{when}", None), "failed", False)
        for when in ("setup", "call")
    )


@pytest.fixture(scope="session")
def docker_engine() -> Iterator[Any]:
    """A docker SDK client of the engine ``scripts/services.sh`` started (PORT_TEST_DOCKER)."""
    if not os.environ.get("PORT_TEST_DOCKER"):
        require("a Docker engine (PORT_TEST_DOCKER, see `make services`)")
    try:
        client = docker.from_env(timeout=30)
        client.ping()
    except docker.errors.DockerException as exc:
        require(f"a Docker engine that answers ({exc})")
    before = host_state(client)
    try:
        yield client
        after = host_state(client)
        changed = {
            what: {
                "left": sorted(set(after[what]) - set(before[what])),
                "gone": sorted(set(before[what]) - set(after[what])),
            }
            for what in before
            if after[what] != before[what]
        }
        # The suite leaves the machine as it found it (docker0, bridges, rules).
        assert not changed, f"the test session changed the host: {changed}"
    finally:
        client.close()


@pytest.fixture
def gpu_refused(docker_engine: Any) -> None:
    """For tests of a GPU request the engine refuses: skipped on an engine that has an
    NVIDIA runtime, where the request would succeed (never the case under this CI)."""
    if "nvidia" in (docker_engine.info().get("Runtimes") or {}):
        pytest.skip("this engine has an NVIDIA runtime: a GPU request would succeed")


@pytest.fixture(scope="session")
def docker_images(
    docker_engine: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TestImages]:
    """The busybox test images, built once per session and removed at its end."""
    if not (BUSYBOX.exists() and is_static_elf(BUSYBOX)):
        require(f"a static {BUSYBOX} (Debian's busybox-static)")
    images = TestImages.build(docker_engine, tmp_path_factory.mktemp("images"))
    try:
        yield images
    finally:
        images.remove()


@pytest.fixture(scope="session")
def docker_network(docker_engine: Any) -> str:
    """The prefix of this session's Pod networks (one per Setup, made by the backend and
    removed with their instance, see ``remove_instance``)."""
    return f"port-test-{secrets.token_hex(4)}"


@pytest.fixture(scope="session")
def docker_registry(docker_engine: Any) -> str:
    """The local registry's address (PORT_TEST_REGISTRY: Debian's docker-registry)."""
    registry = os.environ.get("PORT_TEST_REGISTRY")
    if not registry:
        require("a local registry (PORT_TEST_REGISTRY, see `make services`)")
    return str(registry)


@pytest.fixture
def docker_settings(
    request: pytest.FixtureRequest, docker_engine: Any, docker_network: str, tmp_path: Path
) -> Iterator[DockerSettings]:
    """A factory of Settings, each with an instance of its own (``t`` + random hex).

    Tests never see each other's containers. At the end every container of every
    instance made here is removed; when the test failed, their status, logs and
    `docker inspect` are printed first.
    """
    instances: list[str] = []

    def make(**overrides: Any) -> Settings:
        instance = overrides.pop("instance", None) or f"t{secrets.token_hex(5)}"
        instances.append(instance)
        defaults: dict[str, Any] = {
            "data_dir": tmp_path / "data",
            "docker_network": docker_network,
            "stop_timeout_seconds": 1,
            # The local test registry is on loopback: allowed, as a lab's own would be.
            "allowed_registries": [os.environ.get("PORT_TEST_REGISTRY") or "127.0.0.1:5000"],
        }
        return Settings(instance=instance, **{**defaults, **overrides})

    yield make
    failed = _failed(request)
    for instance in instances:
        if failed:
            print(f"=== Docker containers of instance {instance}")
            print(describe_containers(docker_engine, instance))
        remove_instance(docker_engine, instance)


@pytest.fixture
def second_engine(request: pytest.FixtureRequest, docker_engine: Any) -> Iterator[SecondEngine]:
    """A dockerd of its own that the test may stop and start again (see SecondEngine).

    When the test failed, its containers and the end of its log are printed first.
    """
    if os.geteuid() != 0 or shutil.which("dockerd") is None:
        require("root and dockerd, to run a second Docker engine")
    engine = SecondEngine()
    try:
        engine.start()
    except RuntimeError as exc:
        engine.destroy()
        pytest.fail(f"the second engine did not start: {exc}")
    try:
        yield engine
        if _failed(request):
            print(f"=== the second engine at {engine.url}")
            print(engine.tail(40))
            engine.start()  # it may have been stopped by the test
            client = engine.client()
            try:
                print(describe_containers(client))
            finally:
                client.close()
    finally:
        engine.destroy()
