"""Setups on the real Docker engine: the reconciler's stories, and the API end to end.

Images are built FROM scratch with Debian's busybox-static (tests/integration/
dockerfixtures.py); every test has a Port instance of its own, so it sees only its own
containers, and they are removed (and printed, when the test failed) afterwards.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import pytest
from litestar.testing import AsyncTestClient
from sqlalchemy import select

from port.accounts.service import create_token
from port.deploy import setups
from port.deploy.backends.base import LABEL_INSTANCE
from port.deploy.backends.docker import DockerBackend
from port.deploy.models import Pod, SetupEvent
from port.deploy.reconciler import Reconciler
from port.jobs.queue import jobs
from port.principal import Principal
from port.settings import Settings
from port.work.server import create_app
from tests.deployfakes import CUDA, Flavours, add_app, add_user
from tests.harness import Catalogue
from tests.integration.dockerfixtures import SecondEngine, TestImages

pytestmark = pytest.mark.docker
T = TypeVar("T")


async def settle(
    reconciler: Reconciler, read: Callable[[], Awaitable[T]], done: Callable[[T], bool]
) -> T:
    """Run passes until ``done(read())``; bounded (30 s), so a broken Port fails, not hangs."""
    for _ in range(300):
        await reconciler.reconcile()
        value = await read()
        if done(value):
            return value
        await asyncio.sleep(0.1)
    raise AssertionError(f"did not settle; last seen: {value!r}")


@dataclass
class Engine:
    """A catalogue whose app runs ``image``, alice, and a reconciler on a real engine."""

    catalogue: Catalogue
    settings: Settings
    client: Any  # the docker SDK client, to look and to meddle as a person would
    reconciler: Reconciler
    alice: Principal

    async def start(self, **request: Any) -> int:
        caps = await self.reconciler.capabilities()
        async with self.catalogue.sessions() as session, session.begin():
            setup = await setups.create_setup(
                session, self.alice, setups.SetupRequest(app="busy", **request), caps, self.settings
            )
            await setups.start_setup(session, setup, caps, self.settings)
            return setup.id

    async def pod(self, setup_id: int) -> Pod:
        async with self.catalogue.sessions() as session:
            pods = list(
                await session.scalars(
                    select(Pod).where(Pod.setup_id == setup_id, Pod.retired.is_(False))
                )
            )
        assert len(pods) == 1, pods
        return pods[0]

    async def events(self, setup_id: int) -> list[str]:
        async with self.catalogue.sessions() as session:
            return list(
                await session.scalars(
                    select(SetupEvent.kind)
                    .where(SetupEvent.setup_id == setup_id)
                    .order_by(SetupEvent.id)
                )
            )

    def containers(self) -> list[Any]:
        return list(
            self.client.containers.list(
                all=True, filters={"label": f"{LABEL_INSTANCE}={self.settings.instance}"}
            )
        )

    async def running(self, setup_id: int) -> Pod:
        return await settle(self.reconciler, lambda: self.pod(setup_id), _is_running)


def _is_running(pod: Pod) -> bool:
    return pod.status == "RUNNING"


MakeEngine = Callable[..., Awaitable[Engine]]


@pytest.fixture
async def engines(
    catalogue: Catalogue, docker_settings: Callable[..., Settings], docker_engine: Any
) -> AsyncIterator[MakeEngine]:
    """``await engines(image, flavours=None, client=None, **settings)``: app `busy` running
    ``image`` (or ``flavours``), alice, and a reconciler on the engine; closed afterwards."""
    made: list[Engine] = []

    async def make(
        image: str, flavours: Flavours | None = None, client: Any = None, **overrides: Any
    ) -> Engine:
        settings = docker_settings(database_url=catalogue.settings.database_url, **overrides)
        async with catalogue.sessions() as session, session.begin():
            await add_app(session, identifier="busy", flavours=flavours or (("cpu", image, []),))
            alice = await add_user(session, "alice")
        principal = Principal(user_id=alice.id, name="alice", is_admin=False, via="token")
        reconciler = Reconciler(catalogue.sessions, settings, DockerBackend(settings))
        made.append(Engine(catalogue, settings, client or docker_engine, reconciler, principal))
        return made[-1]

    yield make
    for world in made:
        await world.reconciler.close()


@pytest.fixture
async def engine(engines: MakeEngine, docker_images: TestImages) -> Engine:
    return await engines(docker_images["env"], restart_backoff_seconds=0.2)


async def test_a_setup_runs_as_a_sandboxed_labelled_container(engine: Engine) -> None:
    setup_id = await engine.start(env={"GREETING": "hello from port"})
    pod = await engine.running(setup_id)
    [container] = engine.containers()
    assert container.id == pod.container_id
    assert container.name == f"{engine.settings.instance}-busy-s{setup_id}-p{pod.id}"
    labels = container.labels
    assert (labels["port.setup"], labels["port.pod"]) == (str(setup_id), str(pod.id))
    assert (labels["port.release"], labels["port.flavour"], labels["port.owner"]) == (
        "1.0.0",
        "cpu",
        "alice",
    )
    host = container.attrs["HostConfig"]
    assert host["Privileged"] is False
    assert host["NanoCpus"] == 2_000_000_000  # the flavour's 2 CPUs
    assert host["Memory"] == 1 << 30
    await settle(
        engine.reconciler,
        lambda: engine.reconciler.backend.logs(container.id, 100),
        lambda text: "env printed" in text,
    )
    output = await engine.reconciler.backend.logs(container.id, 100)
    assert "GREETING=hello from port" in output
    assert f"PORT_SETUP_ID={setup_id}" in output
    assert f"PORT_POD_ID={pod.id}" in output

    async with engine.catalogue.sessions() as session, session.begin():
        setups.stop_setup(session, await setups.get_setup(session, engine.alice, setup_id))
    await engine.reconciler.reconcile()
    assert engine.containers() == []


async def test_an_image_that_exits_at_once_fails_and_restarts_with_backoff(
    engines: MakeEngine, docker_images: TestImages
) -> None:
    world = await engines(docker_images["exit3"], restart_backoff_seconds=0.2)
    setup_id = await world.start()
    pod = await settle(
        world.reconciler,
        lambda: world.pod(setup_id),
        lambda p: p.restarts >= 2 and p.exit_code is not None,  # restarted, and failed again
    )
    assert pod.exit_code == 3
    assert pod.failures >= 2
    kinds = await world.events(setup_id)
    assert kinds.count("POD_FAILED") >= 2
    assert "POD_RESTARTED" in kinds
    assert len(world.containers()) <= 1  # each restart replaces, never piles up


async def test_a_container_removed_by_hand_is_recreated(engine: Engine) -> None:
    setup_id = await engine.start()
    first = (await engine.running(setup_id)).container_id
    engine.client.containers.get(first).remove(force=True)
    pod = await settle(
        engine.reconciler,
        lambda: engine.pod(setup_id),
        lambda p: p.status == "RUNNING" and p.container_id != first,
    )
    assert [c.id for c in engine.containers()] == [pod.container_id]
    assert "POD_RECREATED" in await engine.events(setup_id)


async def test_a_new_port_process_adopts_running_containers(engine: Engine) -> None:
    setup_id = await engine.start()
    before = (await engine.running(setup_id)).container_id
    fresh = Reconciler(engine.catalogue.sessions, engine.settings, DockerBackend(engine.settings))
    try:
        for _ in range(3):
            await fresh.reconcile()
    finally:
        await fresh.backend.close()
    assert [c.id for c in engine.containers()] == [before]
    assert (await engine.pod(setup_id)).container_id == before


async def test_a_deleted_setups_container_is_removed(engine: Engine) -> None:
    setup_id = await engine.start()
    await engine.running(setup_id)
    async with engine.catalogue.sessions() as session, session.begin():
        await session.delete(await setups.get_setup(session, engine.alice, setup_id))
    await engine.reconciler.reconcile()
    assert engine.containers() == []


async def test_an_engine_stopped_and_started_again(
    engines: MakeEngine,
    docker_engine: Any,
    docker_images: TestImages,
    second_engine: SecondEngine,
) -> None:
    image = docker_images["forever"]
    second_engine.load(docker_engine, image)
    world = await engines(
        image,
        client=second_engine.client(),
        docker_host=second_engine.url,
        docker_network="port-second",
        restart_backoff_seconds=0.2,
    )
    setup_id = await world.start()
    await world.running(setup_id)

    await asyncio.to_thread(second_engine.stop)
    await world.reconciler.reconcile()
    pod = await world.pod(setup_id)
    assert pod.status == "UNKNOWN"
    assert pod.message is not None
    assert "unreachable" in pod.message

    await asyncio.to_thread(second_engine.start)
    pod = await world.running(setup_id)  # its container died with the engine: restarted
    assert len(world.containers()) == 1
    assert "ENGINE_DOWN" in await world.events(setup_id)


@pytest.mark.parametrize("policy", ["if-not-present", "always"])
async def test_an_image_is_pulled_from_a_registry_with_progress(
    engines: MakeEngine,
    docker_engine: Any,
    docker_images: TestImages,
    docker_registry: str,
    policy: str,
) -> None:
    image, _by_digest = docker_images.push_unique(docker_registry, "pulled")
    world = await engines(image, pull_policy=policy)
    try:
        setup_id = await world.start()
        pod = await world.running(setup_id)
        assert pod.pull is not None
        assert pod.pull["total"] >= 512 * 1024  # the unique layer came over the wire
        assert pod.pull["done"] == pod.pull["total"]
        assert pod.image_digest == _by_digest.partition("@")[2]  # what the registry holds
    finally:
        for container in world.containers():  # first, or the image would stay, untagged
            container.remove(force=True)
        docker_engine.images.remove(image, force=True)


async def test_a_rebuilt_tag_is_noticed_when_it_is_pulled_again(
    engines: MakeEngine, docker_engine: Any, docker_images: TestImages, docker_registry: str
) -> None:
    """Real Arkitekt repositories rebuild an image under the same tag: the Pod records
    the digest it runs, and a restart that pulls another image says so."""
    tag = f"v{secrets.token_hex(3)}"
    image, first = docker_images.push_unique(docker_registry, "rebuilt", tag)
    world = await engines(image, pull_policy="always")
    try:
        setup_id = await world.start()
        pod = await world.running(setup_id)
        assert pod.image_digest == first.partition("@")[2]
        _, second = docker_images.push_unique(docker_registry, "rebuilt", tag)  # rebuilt
        async with world.catalogue.sessions() as session, session.begin():
            setups.restart_pod(session, await setups.get_pod(session, world.alice, pod.id))
        again = await settle(
            world.reconciler,
            lambda: world.pod(setup_id),
            lambda p: p.status == "RUNNING" and p.container_id != pod.container_id,
        )
        assert again.image_digest == second.partition("@")[2]
        async with world.catalogue.sessions() as session:
            [message] = await session.scalars(
                select(SetupEvent.message).where(SetupEvent.kind == "IMAGE_CHANGED")
            )
        assert message.startswith(f"{image} is another image than before: ")
        assert first.partition("@")[2] in message
    finally:
        for container in world.containers():
            container.remove(force=True)
        docker_engine.images.remove(image, force=True)


async def test_pull_policy_never_fails_with_the_reason(
    engines: MakeEngine, docker_images: TestImages, docker_registry: str
) -> None:
    image, _ = docker_images.push_unique(docker_registry, "never")
    world = await engines(image, pull_policy="never")
    setup_id = await world.start()
    await world.reconciler.reconcile()
    pod = await world.pod(setup_id)
    assert pod.status == "FAILED"
    assert pod.message == f"image {image} is not present and PORT_PULL_POLICY=never"
    assert world.containers() == []


@pytest.mark.usefixtures("gpu_refused")
async def test_a_cuda_flavour_asks_the_engine_for_a_gpu(
    engines: MakeEngine, docker_images: TestImages
) -> None:
    """With a declared GPU the CUDA build is chosen and started with a device request;
    this engine has no NVIDIA runtime, so it refuses, and the Pod says so."""
    cpu, gpu = docker_images["forever"], docker_images["env"]
    world = await engines(
        cpu,
        (("cpu", cpu, []), ("cuda", gpu, CUDA)),
        docker_gpus=[{"vendor": "nvidia", "cuda_version": "12.2"}],
    )
    setup_id = await world.start()
    await world.reconciler.reconcile()
    pod = await world.pod(setup_id)
    assert (pod.flavour, pod.gpus, pod.status) == ("cuda", 1, "FAILED")
    assert pod.message is not None
    assert "gpu" in pod.message.lower()
    assert world.containers() == []  # the refused container is not left behind


async def test_the_api_runs_a_setup_on_the_engine(
    catalogue: Catalogue,
    docker_settings: Callable[..., Settings],
    docker_engine: Any,
    docker_images: TestImages,
) -> None:
    settings = docker_settings(
        database_url=catalogue.settings.database_url,
        reconcile_seconds=0.2,
        serve_worker=True,  # reconcile passes are jobs: the server's worker runs them
        poll_seconds=0,
    )
    async with catalogue.sessions() as session, session.begin():
        await add_app(session, identifier="busy", flavours=(("cpu", docker_images["forever"], []),))
        alice = await add_user(session, "alice")
        _, token = await create_token(session, alice, "tests")
    auth = {"Authorization": f"Bearer {token}"}

    async def gql(client: AsyncTestClient[Any], query: str, **variables: Any) -> Any:
        response = await client.post(
            "/graphql", json={"query": query, "variables": variables}, headers=auth
        )
        body = response.json()
        assert "errors" not in body, body
        return body["data"]

    async with AsyncTestClient(app=create_app(settings)) as client:
        created = await gql(
            client,
            'mutation { createSetup(input: {app: "busy", start: true}) { setup { id pods { '
            "id } } } }",
        )
        setup_id = created["createSetup"]["setup"]["id"]
        for _ in range(300):  # the server's own reconciler starts it
            seen = await gql(
                client,
                "query($id: ID!) { setup(id: $id) { status pods { containerId logs(tail: 5) } } }",
                id=setup_id,
            )
            if seen["setup"]["status"] == "RUNNING" and "tick" in seen["setup"]["pods"][0]["logs"]:
                break
            await asyncio.sleep(0.1)
        assert seen["setup"]["status"] == "RUNNING"
        container_id = seen["setup"]["pods"][0]["containerId"]
        assert docker_engine.containers.get(container_id).status == "running"

        async with catalogue.sessions() as session:
            passes = await jobs(session, kind="reconcile")
        assert any(j.status == "succeeded" for j in passes)  # the pass ran as a job
        assert all(j.key == "reconcile" for j in passes)  # one key: one pass at a time

        await gql(
            client,
            "mutation($id: ID!) { deleteSetup(input: {id: $id}) { deletedId } }",
            id=setup_id,
        )
        remaining = docker_engine.containers.list(
            all=True, filters={"label": f"{LABEL_INSTANCE}={settings.instance}"}
        )
        assert remaining == []
