"""`port serve` killed with SIGKILL while its Setup runs, then started again: the running
container is adopted, never twinned, and the Setup stays RUNNING throughout."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from port import db
from port.accounts.service import create_token
from port.catalogue.models import App
from port.deploy.backends.base import LABEL_INSTANCE
from port.settings import Settings
from tests.deployfakes import add_app, add_release, add_user
from tests.integration.dockerfixtures import TestImages
from tests.serverproc import Server, start, stop

pytestmark = pytest.mark.docker
SETUP = """query($id: ID!) { setup(id: $id) { status release { version }
  pods { id status containerId } events(limit: 50) { kind } } }"""


def server_env(settings: Settings, **more: str) -> dict[str, str]:
    """`port serve`'s environment: this test's instance and network, quick passes."""
    return {
        "PORT_INSTANCE": settings.instance_name,
        "PORT_DOCKER_NETWORK": settings.docker_network,
        "PORT_RECONCILE_SECONDS": "0.3",
        "PORT_STOP_TIMEOUT_SECONDS": "1",
        "PORT_ACCESS_LOG": "false",
        **more,
    }


def _two_containers(setup: Any) -> bool:
    return sum(bool(p["containerId"]) for p in setup["pods"]) == 2


def _updated(setup: Any) -> bool:
    return "UPDATE_SUCCEEDED" in [e["kind"] for e in setup["events"]]


async def _catalogue(settings: Settings, image: str) -> str:
    """A migrated SQLite catalogue with app `busy` running ``image``; alice's token."""
    await asyncio.to_thread(db.upgrade, settings.sqlalchemy_url)  # it runs a loop of its own
    engine = db.create_engine(settings.sqlalchemy_url)
    try:
        async with db.sessionmaker(engine)() as session, session.begin():
            await add_app(session, identifier="busy", flavours=(("cpu", image, []),))
            alice = await add_user(session, "alice")
            return (await create_token(session, alice, "tests"))[1]
    finally:
        await engine.dispose()


def _wait(server: Server, token: str, setup_id: str, want: Callable[[Any], bool]) -> Any:
    """Poll the Setup over HTTP until ``want(setup)``; bounded, then the last answer fails."""
    seen: Any = None
    for _ in range(300):
        seen = server.post(SETUP, token, {"id": setup_id})["data"]["setup"]
        if want(seen):
            return seen
        time.sleep(0.1)
    raise AssertionError(f"setup never got there: {seen}")


@pytest.fixture
def servers() -> Iterator[list[Server]]:
    """Servers started by the test; any still alive at the end is killed."""
    started: list[Server] = []
    yield started
    for server in started:
        if server.process.poll() is None:
            os.killpg(server.process.pid, signal.SIGKILL)
            server.process.wait(timeout=30)


async def test_sigkill_and_restart_adopts_the_running_container(
    tmp_path: Path,
    docker_settings: Callable[..., Settings],
    docker_engine: Any,
    docker_images: TestImages,
    servers: list[Server],
) -> None:
    settings = docker_settings(data_dir=tmp_path)
    token = await _catalogue(settings, docker_images["forever"])
    env = server_env(settings)
    label = {"label": f"{LABEL_INSTANCE}={settings.instance}"}

    first = await asyncio.to_thread(start, tmp_path, env=env)
    servers.append(first)
    created = first.post(
        'mutation { createSetup(input: {app: "busy", start: true}) { setup { id } } }', token
    )
    setup_id = created["data"]["createSetup"]["setup"]["id"]
    running = await asyncio.to_thread(
        _wait, first, token, setup_id, lambda s: s["status"] == "RUNNING"
    )
    container_id = running["pods"][0]["containerId"]

    os.killpg(first.process.pid, signal.SIGKILL)
    first.process.wait(timeout=30)
    assert docker_engine.containers.get(container_id).status == "running"  # Pods outlive Port

    second = await asyncio.to_thread(start, tmp_path, env=env)
    servers.append(second)
    await asyncio.sleep(2)  # several reconcile passes of the new process (every 0.3 s)
    seen = second.post(SETUP, token, {"id": setup_id})["data"]["setup"]
    assert seen["status"] == "RUNNING"
    assert [p["containerId"] for p in seen["pods"]] == [container_id]
    assert [c.id for c in docker_engine.containers.list(all=True, filters=label)] == [container_id]

    # A clean stop of Port leaves Pods running too; deleting the Setup removes them.
    await asyncio.to_thread(stop, second)
    third = await asyncio.to_thread(start, tmp_path, env=env)
    servers.append(third)
    third.post(
        "mutation($id: ID!) { deleteSetup(input: {id: $id}) { deletedId } }",
        token,
        {"id": setup_id},
    )
    assert docker_engine.containers.list(all=True, filters=label) == []
    await asyncio.to_thread(stop, third)


async def _add_release(settings: Settings, version: str, image: str) -> None:
    engine = db.create_engine(settings.sqlalchemy_url)
    try:
        async with db.sessionmaker(engine)() as session, session.begin():
            app_id = await session.scalar(select(App.id).where(App.identifier == "busy"))
            assert app_id is not None
            add_release(session, app_id, version, (("cpu", image, []),))
    finally:
        await engine.dispose()


async def test_sigkill_in_the_middle_of_a_rollout_converges_to_one_pod(
    tmp_path: Path,
    docker_settings: Callable[..., Settings],
    docker_engine: Any,
    docker_images: TestImages,
    servers: list[Server],
) -> None:
    settings = docker_settings(data_dir=tmp_path)
    token = await _catalogue(settings, docker_images["forever"])
    newer = f"port-test/forever-next:{settings.instance}"
    docker_engine.api.tag(docker_images["forever"], *newer.split(":"))
    env = server_env(
        settings,
        PORT_JOB_LEASE_SECONDS="2",
        PORT_JOB_POLL_SECONDS="0.2",
        PORT_UPDATE_GRACE_SECONDS="3",  # long enough to be killed inside the health gate
        PORT_POLL_SECONDS="0",
    )
    label = {"label": f"{LABEL_INSTANCE}={settings.instance}"}
    try:
        first = await asyncio.to_thread(start, tmp_path, env=env)
        servers.append(first)
        created = first.post(
            'mutation { createSetup(input: {app: "busy", start: true}) { setup { id } } }', token
        )
        setup_id = created["data"]["createSetup"]["setup"]["id"]
        await asyncio.to_thread(_wait, first, token, setup_id, lambda s: s["status"] == "RUNNING")

        await _add_release(settings, "1.1.0", newer)
        asked = first.post(
            'mutation($id: ID!) { rollOutSetup(input: {id: $id, version: "1.1.0"}) { setup '
            "{ id } } }",
            token,
            {"id": setup_id},
        )
        assert "errors" not in asked, asked
        # The candidate runs beside the old Pod: kill Port inside the health gate.
        await asyncio.to_thread(_wait, first, token, setup_id, _two_containers)
        os.killpg(first.process.pid, signal.SIGKILL)
        first.process.wait(timeout=30)
        assert len(docker_engine.containers.list(filters=label)) == 2

        second = await asyncio.to_thread(start, tmp_path, env=env)
        servers.append(second)
        done = await asyncio.to_thread(_wait, second, token, setup_id, _updated)
        assert (done["status"], done["release"]["version"]) == ("RUNNING", "1.1.0")
        [pod] = done["pods"]
        [container] = docker_engine.containers.list(all=True, filters=label)
        assert container.id == pod["containerId"]
        assert container.attrs["Config"]["Image"] == newer  # the new release's build
        await asyncio.to_thread(stop, second)
    finally:  # its containers: docker_settings removes them, after showing a failure's
        docker_engine.images.remove(newer, force=True)
