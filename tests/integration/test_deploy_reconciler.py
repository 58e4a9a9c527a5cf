"""The reconciler and the Setup service against a fake engine, on SQLite and PostgreSQL.

The fake engine (tests/deployfakes.py) lets these tests crash containers, remove them
behind Port's back and take the engine down in microseconds; test_deploy_engine.py and
test_deploy_docker.py run the same kinds of stories against the real Docker engine.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from port.deploy import setups
from port.deploy.backends.base import (
    LABEL_APP,
    LABEL_INSTANCE,
    LABEL_POD,
    LABEL_SETUP,
    BackendError,
    PodSpec,
)
from port.deploy.models import Pod, Setup, SetupEvent, UpdatePolicy
from port.deploy.reconciler import Reconciler
from port.deploy.selection import Capabilities, Gpu, NoFittingFlavour
from port.errors import InvalidInput, NotFound
from port.orm import utcnow
from port.principal import Principal
from tests.deployfakes import (
    CUDA,
    GPU_MACHINE,
    FakeBackend,
    Flavours,
    add_app,
    add_user,
    reconcile_pulled,
)
from tests.harness import Catalogue

ROCM = [{"kind": "rocm", "min_version": "5.7", "required": True, "weight": 1, "count": 2}]


class World:
    """A catalogue with an app and two users, a fake engine and a reconciler."""

    def __init__(self, catalogue: Catalogue, backend: FakeBackend, **settings: Any) -> None:
        self.catalogue = catalogue
        self.settings = catalogue.settings.model_copy(
            update={"instance": "t", "restart_backoff_seconds": 2.0, **settings}
        )
        self.backend = backend
        self.reconciler = Reconciler(catalogue.sessions, self.settings, backend)
        self.alice = Principal(user_id=None, name="alice", is_admin=False, via="token")

    async def setup(self, **request: Any) -> int:
        """Create a Setup of stardist for alice and start it; its id."""
        caps = await self.reconciler.capabilities()
        async with self.catalogue.sessions() as session, session.begin():
            setup = await setups.create_setup(
                session,
                self.alice,
                setups.SetupRequest(app="stardist", **request),
                caps,
                self.settings,
            )
            await setups.start_setup(session, setup, caps, self.settings)
            return setup.id

    async def pods(self, setup_id: int) -> list[Pod]:
        async with self.catalogue.sessions() as session:
            rows = await session.scalars(
                select(Pod).where(Pod.setup_id == setup_id).order_by(Pod.id)
            )
            return list(rows)

    async def pod(self, setup_id: int) -> Pod:
        active = [p for p in await self.pods(setup_id) if not p.retired]
        assert len(active) == 1, active
        return active[0]

    async def events(self, setup_id: int) -> list[str]:
        async with self.catalogue.sessions() as session:
            rows = await session.scalars(
                select(SetupEvent.kind)
                .where(SetupEvent.setup_id == setup_id)
                .order_by(SetupEvent.id)
            )
            return list(rows)

    async def expire_backoff(self, setup_id: int) -> None:
        async with self.catalogue.sessions() as session, session.begin():
            for pod in await session.scalars(select(Pod).where(Pod.setup_id == setup_id)):
                if pod.next_attempt_at is not None:
                    pod.next_attempt_at = utcnow() - timedelta(seconds=1)


async def alices_world(catalogue: Catalogue, backend: FakeBackend, **settings: Any) -> World:
    """A World of the default app and alice, on ``backend`` with ``settings``."""
    world = World(catalogue, backend, **settings)
    async with catalogue.sessions() as session, session.begin():
        await add_app(session)
        alice = await add_user(session, "alice")
    world.alice = Principal(user_id=alice.id, name="alice", is_admin=False, via="token")
    return world


@pytest.fixture
async def world(catalogue: Catalogue) -> World:
    backend = FakeBackend("t")
    backend.images.add("img/cpu:1")
    world = World(catalogue, backend)
    async with catalogue.sessions() as session, session.begin():
        await add_app(session, versions=("1.0.0", "1.1.0", "2.0.0-rc.1"))
        alice = await add_user(session, "alice")
        await add_user(session, "bob")
    world.alice = Principal(user_id=alice.id, name="alice", is_admin=False, via="token")
    return world


async def test_a_started_setup_runs_one_labelled_container(world: World) -> None:
    setup_id = await world.setup(env={"GREETING": "hi"})
    assert (await world.pod(setup_id)).status == "PENDING"
    await world.reconciler.reconcile()
    pod = await world.pod(setup_id)
    assert pod.status == "RUNNING"
    [container] = world.backend.running()
    assert pod.container_id == container.id
    spec = container.spec
    assert world.backend.object_name(spec) == f"t-stardist-s{setup_id}-p{pod.id}"
    assert spec.labels[LABEL_INSTANCE] == "t"
    assert spec.labels[LABEL_SETUP] == str(setup_id)
    assert spec.labels[LABEL_POD] == str(pod.id)
    assert spec.labels["port.release"] == "1.1.0"  # newest current non-pre-release
    assert spec.labels["port.owner"] == "alice"
    assert spec.env["GREETING"] == "hi"
    assert spec.env["PORT_SETUP_ID"] == str(setup_id)
    assert spec.env["PORT_POD_ID"] == str(pod.id)
    assert spec.env["PORT_SERVER_URL"] == "http://127.0.0.1:8080"
    assert (spec.cpus, spec.memory_bytes, spec.gpus) == (2.0, 1 << 30, 0)
    assert await world.events(setup_id) == ["CREATED", "STARTED", "POD_RUNNING"]
    await world.reconciler.reconcile()  # a second pass changes nothing
    assert len(world.backend.starts) == 1


async def test_a_crashed_container_restarts_with_a_doubling_backoff(world: World) -> None:
    setup_id = await world.setup()
    await world.reconciler.reconcile()
    first = (await world.pod(setup_id)).container_id
    assert first is not None
    world.backend.crash(first, code=3)
    due = await world.reconciler.reconcile()
    pod = await world.pod(setup_id)
    assert (pod.status, pod.exit_code, pod.restarts) == ("FAILED", 3, 0)
    assert pod.message == "exited with code 3"
    assert (pod.failures, pod.next_attempt_at) == (1, due)
    await world.reconciler.reconcile()  # backoff not over: nothing happens
    assert len(world.backend.starts) == 1
    await world.expire_backoff(setup_id)
    await world.reconciler.reconcile()
    pod = await world.pod(setup_id)
    assert (pod.status, pod.restarts) == ("RUNNING", 1)
    assert pod.container_id != first
    assert first not in world.backend.containers  # the dead one is removed
    assert pod.container_id is not None
    world.backend.crash(pod.container_id)
    due = await world.reconciler.reconcile()
    pod = await world.pod(setup_id)
    assert (pod.failures, pod.next_attempt_at) == (2, due)  # the second wait is doubled
    assert (await world.events(setup_id))[-4:] == [
        "POD_FAILED",
        "POD_RESTARTED",
        "POD_RUNNING",
        "POD_FAILED",
    ]


async def test_an_image_that_exits_at_once_fails_and_is_retried(world: World) -> None:
    world.backend.exit_at_once["img/cpu:1"] = 3
    setup_id = await world.setup()
    await world.reconciler.reconcile()  # started; it exited at once
    await world.reconciler.reconcile()  # seen exited: FAILED, backoff
    pod = await world.pod(setup_id)
    assert (pod.status, pod.exit_code) == ("FAILED", 3)
    await world.expire_backoff(setup_id)
    await world.reconciler.reconcile()
    assert len(world.backend.starts) == 2
    assert (await world.pod(setup_id)).restarts == 1


async def test_a_container_removed_behind_ports_back_is_recreated(world: World) -> None:
    setup_id = await world.setup()
    await world.reconciler.reconcile()
    world.backend.containers.clear()
    await world.reconciler.reconcile()
    pod = await world.pod(setup_id)
    assert pod.status == "RUNNING"
    assert len(world.backend.running()) == 1
    assert "POD_RECREATED" in await world.events(setup_id)


async def test_a_restarted_port_adopts_running_containers(world: World) -> None:
    setup_id = await world.setup()
    await world.reconciler.reconcile()
    before = (await world.pod(setup_id)).container_id
    again = Reconciler(world.catalogue.sessions, world.settings, world.backend)
    await again.reconcile()
    assert len(world.backend.starts) == 1
    assert (await world.pod(setup_id)).container_id == before


async def test_a_container_started_but_never_recorded_is_adopted(world: World) -> None:
    """Port died between creating the container and writing its id down."""
    from port.deploy.reconciler import POD_SPEC_LOADS, pod_spec

    setup_id = await world.setup()
    async with world.catalogue.sessions() as session:
        pod = await session.scalar(
            select(Pod).where(Pod.setup_id == setup_id).options(*POD_SPEC_LOADS)
        )
        assert pod is not None
        orphan = await world.backend.start(pod_spec(world.settings, pod, pod.setup))
    await world.reconciler.reconcile()
    assert len(world.backend.containers) == 1
    assert (await world.pod(setup_id)).container_id == orphan
    assert "POD_ADOPTED" in await world.events(setup_id)


async def test_containers_without_a_setup_are_removed(world: World) -> None:
    setup_id = await world.setup()
    await world.reconciler.reconcile()
    async with world.catalogue.sessions() as session, session.begin():
        await session.delete(await session.get(Setup, setup_id))
    await world.reconciler.reconcile()
    assert world.backend.containers == {}


async def test_another_instances_containers_are_left_alone(world: World) -> None:
    neighbour = FakeBackend("other")
    neighbour.containers = world.backend.containers  # one engine, two Port instances
    theirs = await neighbour.start(
        PodSpec(image="x", labels={LABEL_INSTANCE: "other", LABEL_POD: "1", LABEL_APP: "napari"})
    )
    await world.setup()
    await world.reconciler.reconcile()
    assert theirs in world.backend.containers
    assert len(world.backend.containers) == 2


def test_the_restart_backoff_doubles_up_to_its_cap(world: World) -> None:
    waits = [world.reconciler.backoff(n).total_seconds() for n in range(1, 11)]
    assert waits == [2, 4, 8, 16, 32, 64, 128, 256, 300, 300]


async def test_stopping_removes_the_container_and_retires_the_pod(world: World) -> None:
    setup_id = await world.setup()
    await world.reconciler.reconcile()
    async with world.catalogue.sessions() as session, session.begin():
        setup = await setups.get_setup(session, world.alice, setup_id)
        setups.stop_setup(session, setup)
    await world.reconciler.reconcile()
    assert world.backend.containers == {}
    [pod] = await world.pods(setup_id)
    assert (pod.status, pod.retired) == ("STOPPED", True)
    assert pod.stopped_at is not None


async def test_restart_pod_gives_a_fresh_container(world: World) -> None:
    setup_id = await world.setup()
    await world.reconciler.reconcile()
    before = (await world.pod(setup_id)).container_id
    async with world.catalogue.sessions() as session, session.begin():
        pod = await setups.get_pod(session, world.alice, (await world.pod(setup_id)).id)
        setups.restart_pod(session, pod)
    await world.reconciler.reconcile()
    pod = await world.pod(setup_id)
    assert (pod.status, pod.restarts) == ("RUNNING", 1)
    assert pod.container_id != before
    assert len(world.backend.containers) == 1


async def test_an_engine_outage_marks_pods_unknown_and_recovers(world: World) -> None:
    setup_id = await world.setup()
    await world.reconciler.reconcile()
    world.backend.down = True
    await world.reconciler.reconcile()
    pod = await world.pod(setup_id)
    assert pod.status == "UNKNOWN"
    assert pod.message == "engine unreachable: fake engine is down"
    await world.reconciler.reconcile()  # still down: one event, not one per pass
    assert (await world.events(setup_id)).count("ENGINE_DOWN") == 1
    world.backend.down = False
    await world.reconciler.reconcile()
    pod = await world.pod(setup_id)
    assert (pod.status, pod.message) == ("RUNNING", None)
    assert len(world.backend.starts) == 1  # the same container, adopted back


async def test_a_slow_pull_delays_no_other_pod(catalogue: Catalogue) -> None:
    """Repro: a pass held the reconciler for the whole of a slow pull, so every other
    Setup stayed PENDING and a crashed container went unnoticed until it ended. Now the
    pass starts the pull and goes on; the pull's end wakes the reconciler."""
    backend = FakeBackend("t")
    backend.images.add("img/cpu:1")
    backend.registry.add("slow/app:1")
    backend.held["slow/app:1"] = asyncio.Event()
    world = World(catalogue, backend)
    async with catalogue.sessions() as session, session.begin():
        await add_app(session)
        await add_app(session, identifier="slowpoke", flavours=(("cpu", "slow/app:1", []),))
        alice = await add_user(session, "alice")
    world.alice = Principal(user_id=alice.id, name="alice", is_admin=False, via="token")
    fast = await world.setup()
    caps = await world.reconciler.capabilities()
    async with catalogue.sessions() as session, session.begin():
        request = setups.SetupRequest(app="slowpoke")
        slow_setup = await setups.create_setup(session, world.alice, request, caps, world.settings)
        await setups.start_setup(session, slow_setup, caps, world.settings)
    slow = slow_setup.id

    await asyncio.wait_for(world.reconciler.reconcile(), 5)
    assert (await world.pod(fast)).status == "RUNNING"
    assert (await world.pod(slow)).status == "PULLING"
    [container] = backend.running()
    backend.crash(container.id)
    await asyncio.wait_for(world.reconciler.reconcile(), 5)  # the pull is still going
    assert (await world.pod(fast)).status == "FAILED"
    pulling = await world.pod(slow)
    assert pulling.status == "PULLING"
    assert pulling.pull == {"layers": 1, "done": 5, "total": 10}  # progress, saved
    assert backend.pulls == ["slow/app:1"]  # one pull, not one per pass

    world.reconciler._wake.clear()
    backend.held["slow/app:1"].set()
    await asyncio.wait_for(world.reconciler._wake.wait(), 5)  # its end asks for a pass
    await world.reconciler.reconcile()
    pod = await world.pod(slow)
    assert pod.status == "RUNNING"
    assert pod.pull == {"layers": 1, "done": 10, "total": 10}
    assert backend.pulls == ["slow/app:1"]


async def test_a_setup_deleted_while_its_pod_starts_leaves_no_error_and_no_container(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    """Repro: deleting a Setup while its Pod was being launched ended the pass with an
    ``IntegrityError FOREIGN KEY`` traceback. Now the pass drops its changes quietly
    and the next one removes the container nobody wants."""
    setup_id = await world.setup()

    async def delete_meanwhile(_spec: PodSpec) -> None:  # as another process would
        async with world.catalogue.sessions() as session, session.begin():
            await session.delete(await session.get(Setup, setup_id))

    world.backend.while_starting = delete_meanwhile
    await world.reconciler.reconcile()
    world.backend.while_starting = None
    assert [r for r in caplog.records if r.levelname == "ERROR"] == []
    assert await world.pods(setup_id) == []
    await world.reconciler.reconcile()
    assert world.backend.containers == {}


async def test_a_setup_deleted_before_its_retried_pod_starts_leaves_no_error(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    """The soak's race: a Pod retried after a backoff (so the pass changed it already)
    lost its Setup before the start; the check that it is still wanted flushed the
    change first and ended the pass with a ``StaleDataError`` traceback."""
    setup_id = await world.setup()
    async with world.catalogue.sessions() as session, session.begin():
        pod = await session.scalar(select(Pod).where(Pod.setup_id == setup_id))
        assert pod is not None
        pod.next_attempt_at = utcnow() - timedelta(seconds=1)  # its backoff is over
    checked = world.reconciler._check_registry

    async def delete_meanwhile(pod: Pod) -> None:  # as another process would
        async with world.catalogue.sessions() as session, session.begin():
            await session.delete(await session.get(Setup, setup_id))
        await checked(pod)

    world.reconciler._check_registry = delete_meanwhile  # type: ignore[method-assign]
    await world.reconciler.reconcile()
    assert [r for r in caplog.records if r.levelname == "ERROR"] == []
    assert await world.pods(setup_id) == []
    assert world.backend.containers == {}


async def test_a_pull_that_outlasts_its_deadline_fails_its_pod(catalogue: Catalogue) -> None:
    backend = FakeBackend("t")
    backend.registry.add("img/cpu:1")
    backend.held["img/cpu:1"] = asyncio.Event()  # never let go: a tarpit
    world = await alices_world(catalogue, backend, pull_timeout_seconds=0.3)
    setup_id = await world.setup()
    await world.reconciler.reconcile()
    await asyncio.sleep(0.6)
    await world.reconciler.reconcile()
    pod = await world.pod(setup_id)
    assert pod.status == "FAILED"
    assert pod.message == "pulling img/cpu:1 took longer than 0.3 s (PORT_PULL_TIMEOUT_SECONDS)"
    assert pod.next_attempt_at is not None  # retried after its backoff, like any failure
    await world.reconciler.close()


@pytest.mark.parametrize(
    ("policy", "present", "pulled", "status"),
    [
        ("if-not-present", True, False, "RUNNING"),
        ("if-not-present", False, True, "RUNNING"),
        ("always", True, True, "RUNNING"),
        ("never", False, False, "FAILED"),
    ],
)
async def test_pull_policies(
    catalogue: Catalogue, policy: str, present: bool, pulled: bool, status: str
) -> None:
    backend = FakeBackend("t")
    backend.registry.add("img/cpu:1")
    if present:
        backend.images.add("img/cpu:1")
    world = await alices_world(catalogue, backend, pull_policy=policy)
    setup_id = await world.setup()
    await world.reconciler.reconcile()
    if pulled:  # the pass started the pull and went on; the next one starts the Pod
        assert (await world.pod(setup_id)).status == "PULLING"
        await reconcile_pulled(world.reconciler)
    pod = await world.pod(setup_id)
    assert (backend.pulls == ["img/cpu:1"]) is pulled
    assert pod.status == status
    if pulled:
        assert pod.pull == {"layers": 1, "done": 10, "total": 10}
    if status == "FAILED":
        assert pod.message == "image img/cpu:1 is not present and PORT_PULL_POLICY=never"


async def test_an_image_that_cannot_be_pulled_fails_with_the_reason(world: World) -> None:
    world.backend.images.clear()
    setup_id = await world.setup()
    await reconcile_pulled(world.reconciler)
    pod = await world.pod(setup_id)
    assert pod.status == "FAILED"
    assert pod.message == "img/cpu:1: not found"
    assert pod.next_attempt_at is not None


async def test_a_cuda_flavour_runs_on_a_gpu_machine_with_a_device_request(
    catalogue: Catalogue,
) -> None:
    backend = FakeBackend("t", caps=GPU_MACHINE)
    backend.images.update({"img/cpu:1", "img/gpu:1"})
    world = World(catalogue, backend, max_cpus=1.5, max_memory_mb=512)
    async with catalogue.sessions() as session, session.begin():
        await add_app(session, flavours=(("cpu", "img/cpu:1", []), ("cuda", "img/gpu:1", CUDA)))
        alice = await add_user(session, "alice")
    world.alice = Principal(user_id=alice.id, name="alice", is_admin=False, via="token")
    setup_id = await world.setup()
    await world.reconciler.reconcile()
    pod = await world.pod(setup_id)
    assert (pod.flavour, pod.gpus) == ("cuda", 1)
    assert pod.selection["rejected"] == {"cpu": ["fits, but cuda uses the GPU"]}
    spec = world.backend.starts[0]
    assert (spec.image, spec.gpus) == ("img/gpu:1", 1)
    assert (spec.cpus, spec.memory_bytes) == (1.5, 512 << 20)  # capped by the admin maxima
    assert (pod.gpu_vendor, spec.gpu_vendor) == ("nvidia", "nvidia")


async def test_a_rocm_flavour_gets_the_amd_gpus_of_the_machine(catalogue: Catalogue) -> None:
    amd = Gpu("amd", rocm_version="6.0")
    backend = FakeBackend("t", caps=Capabilities.one(cpus=8, memory_mb=32768, gpus=(amd,) * 3))
    backend.images.update({"img/cpu:1", "img/rocm:1", "img/cuda:1"})
    world = World(catalogue, backend)
    flavours: Flavours = (
        ("cpu", "img/cpu:1", []),
        ("cuda", "img/cuda:1", CUDA),
        ("rocm", "img/rocm:1", ROCM),
    )
    async with catalogue.sessions() as session, session.begin():
        await add_app(session, flavours=flavours)
        alice = await add_user(session, "alice")
    world.alice = Principal(user_id=alice.id, name="alice", is_admin=False, via="token")
    setup_id = await world.setup()
    await world.reconciler.reconcile()
    pod = await world.pod(setup_id)
    assert (pod.flavour, pod.gpus, pod.gpu_vendor) == ("rocm", 2, "amd")
    assert pod.selection["rejected"]["cuda"] == ["0 of 1 CUDA GPUs fit (not an NVIDIA GPU)"]
    spec = world.backend.starts[0]
    assert (spec.image, spec.gpus, spec.gpu_vendor) == ("img/rocm:1", 2, "amd")


async def test_no_fitting_flavour_fails_create_with_reasons(world: World) -> None:
    async with world.catalogue.sessions() as session, session.begin():
        await add_app(session, identifier="gpuonly", flavours=(("cuda", "img/gpu:1", CUDA),))
    caps = await world.reconciler.capabilities()
    async with world.catalogue.sessions() as session:
        with pytest.raises(NoFittingFlavour) as caught:
            await setups.create_setup(
                session, world.alice, setups.SetupRequest(app="gpuonly"), caps, world.settings
            )
    assert caught.value.code == "NO_FITTING_FLAVOUR"
    assert caught.value.reasons == {"cuda": ("no CUDA GPU",)}


@pytest.mark.parametrize(
    ("request_fields", "error", "message"),
    [
        ({"env": {"PORT_POD_ID": "1"}}, InvalidInput, "reserved"),
        ({"env": {"1BAD": "x"}}, InvalidInput, "not a variable name"),
        ({"version": "9.9.9"}, NotFound, "no release 9.9.9"),
        ({"flavour": "gpu"}, InvalidInput, "no flavour 'gpu'"),
        ({"update_policy": UpdatePolicy.RANGE}, InvalidInput, "needs a versionRange"),
        (
            {"update_policy": UpdatePolicy.RANGE, "version_range": ">=1.0.0 <two"},
            InvalidInput,
            "'<two' is not a comparison",
        ),
        ({"version_range": ">=1.0.0"}, InvalidInput, "only used with updatePolicy RANGE"),
    ],
)
async def test_bad_setup_requests_are_refused_with_the_reason(
    world: World, request_fields: dict[str, Any], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        await world.setup(**request_fields)


async def test_prereleases_only_when_asked(world: World) -> None:
    setup_id = await world.setup(include_prereleases=True)
    async with world.catalogue.sessions() as session:
        setup = await setups.get_setup(session, world.alice, setup_id)
        await session.refresh(setup, ["release"])
        assert setup.release.version == "2.0.0-rc.1"


async def test_users_see_only_their_own_setups(world: World) -> None:
    setup_id = await world.setup()
    async with world.catalogue.sessions() as session:
        bob_id = await session.scalar(select(Setup.owner_id).where(Setup.id == setup_id))
        assert bob_id == world.alice.user_id
        bob = Principal(user_id=(bob_id or 0) + 1, name="bob", is_admin=False, via="token")
        admin = Principal(user_id=None, name="root", is_admin=True, via="cli")
        with pytest.raises(NotFound):
            await setups.get_setup(session, bob, setup_id)
        assert (await setups.get_setup(session, admin, setup_id)).id == setup_id
        assert list(await session.scalars(setups.visible(bob))) == []


async def test_one_pod_the_engine_refuses_does_not_block_the_others(world: World) -> None:
    first = await world.setup()
    second = await world.setup()
    await world.reconciler.reconcile()
    stuck = (await world.pod(first)).container_id
    assert stuck is not None
    world.backend.crash(stuck)
    refuse = world.backend.stop

    async def stop(container_id: str, timeout: float = 10) -> None:  # noqa: ASYNC109
        if container_id == stuck:
            raise BackendError("device or resource busy")
        await refuse(container_id, timeout)

    world.backend.stop = stop  # type: ignore[method-assign]
    await world.expire_backoff(first)
    await world.reconciler.reconcile()  # FAILED first; its restart needs the refused stop
    await world.expire_backoff(first)
    second_container = (await world.pod(second)).container_id
    assert second_container is not None
    world.backend.containers.pop(second_container)  # removed by hand
    await world.reconciler.reconcile()  # pod `first` fails again; `second` is recreated
    assert (await world.pod(second)).status == "RUNNING"
    assert "POD_RECREATED" in await world.events(second)
