"""Tenants kept apart on the real engine: no Setup ever gets another user's container.

Each story is one an attacker among Port's users could play: delete a Setup at the
right moment and hope that the next one (someone else's) inherits its container, its
environment and its event stream.
"""

from __future__ import annotations

import asyncio
import http.server
import json
import secrets
import shutil
import subprocess
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update

from port import db
from port.catalogue.models import Flavour
from port.deploy import setups
from port.deploy.backends.base import LABEL_INSTANCE
from port.deploy.backends.docker import DockerBackend
from port.deploy.instance import resolved
from port.deploy.models import Pod, SetupEvent
from port.deploy.reconciler import Reconciler, pod_spec
from port.errors import QuotaExceeded
from port.principal import Principal
from port.settings import Settings
from tests.deployfakes import add_app, add_user, reconcile_pulled
from tests.harness import Catalogue
from tests.integration.dockerfixtures import DelayingRegistry, TestImages, remove_instance

pytestmark = pytest.mark.docker

SECRET = "ALICE_DB_PASSWORD=correct-horse-battery-staple"


@dataclass
class Lab:
    """Two users of one Port, alice (app `alpha`) and bob (app `beta`), on a real engine."""

    catalogue: Catalogue
    settings: Settings
    client: Any
    reconciler: Reconciler
    users: dict[str, Principal]

    async def create(self, who: str, app: str, *, env: dict[str, str] | None = None) -> int:
        caps = await self.reconciler.capabilities()
        async with self.catalogue.sessions() as session, session.begin():
            setup = await setups.create_setup(
                session,
                self.users[who],
                setups.SetupRequest(app=app, env=env or {}),
                caps,
                self.settings,
            )
            await setups.start_setup(session, setup, caps, self.settings)
            return setup.id

    async def delete(self, who: str, setup_id: int) -> list[str]:
        """What deleteSetup does: the row goes, then its containers are removed."""
        async with self.catalogue.sessions() as session, session.begin():
            setup = await setups.get_setup(session, self.users[who], setup_id)
            containers = [p.container_id for p in setups.active_pods(setup) if p.container_id]
            await session.delete(setup)
        return containers

    async def pod(self, setup_id: int) -> Pod:
        async with self.catalogue.sessions() as session:
            return (
                await session.scalars(
                    select(Pod).where(Pod.setup_id == setup_id, Pod.retired.is_(False))
                )
            ).one()

    async def events(self, setup_id: int) -> list[tuple[str, str]]:
        async with self.catalogue.sessions() as session:
            rows = await session.execute(
                select(SetupEvent.kind, SetupEvent.message)
                .where(SetupEvent.setup_id == setup_id)
                .order_by(SetupEvent.id)
            )
            return [(kind, message) for kind, message in rows]

    def containers(self) -> list[Any]:
        return list(
            self.client.containers.list(
                all=True, filters={"label": f"{LABEL_INSTANCE}={self.settings.instance}"}
            )
        )

    async def running(self, setup_id: int) -> Pod:
        for _ in range(150):
            await self.reconciler.reconcile()
            pod = await self.pod(setup_id)
            if pod.status == "RUNNING":
                return pod
            await asyncio.sleep(0.1)
        raise AssertionError(f"setup {setup_id} did not run: {pod.status} {pod.message}")


MakeLab = Callable[..., Any]


@pytest.fixture
async def lab(
    catalogue: Catalogue,
    docker_settings: Callable[..., Settings],
    docker_engine: Any,
    docker_images: TestImages,
) -> AsyncIterator[Callable[..., Any]]:
    """``await lab(alpha_image, beta_image, **settings)``."""
    made: list[Lab] = []

    async def make(alpha: str, beta: str, **overrides: Any) -> Lab:
        settings = docker_settings(database_url=catalogue.settings.database_url, **overrides)
        users = {}
        async with catalogue.sessions() as session, session.begin():
            await add_app(session, identifier="alpha", flavours=(("cpu", alpha, []),))
            await add_app(session, identifier="beta", flavours=(("cpu", beta, []),))
            for name in ("alice", "bob"):
                user = await add_user(session, name)
                users[name] = Principal(user_id=user.id, name=name, is_admin=False, via="token")
        reconciler = Reconciler(catalogue.sessions, settings, DockerBackend(settings))
        made.append(Lab(catalogue, settings, docker_engine, reconciler, users))
        return made[-1]

    yield make
    for world in made:
        await world.reconciler.close()


async def test_a_setup_deleted_during_its_pull_leaves_nothing_for_the_next_tenant(
    lab: MakeLab, docker_images: TestImages, docker_registry: str
) -> None:
    """Repro: alice's pull is slow; she deletes her Setup meanwhile; bob creates one. When
    the pull ends, nothing of alice's runs, and bob's Setup runs bob's app, not her env."""
    image, _ = docker_images.push_unique(docker_registry, "slow")
    with DelayingRegistry(docker_registry) as registry:
        slow = image.replace(docker_registry, registry.address, 1)
        docker_images.pushed.append(slow.rpartition(":")[0])  # removed after the session
        world: Lab = await lab(slow, docker_images["env"], allowed_registries=[registry.address])
        alice_setup = await world.create("alice", "alpha", env={"ALICE_DB_PASSWORD": "x"})
        alice_pod = (await world.pod(alice_setup)).id
        first_pass = asyncio.create_task(world.reconciler.reconcile())
        assert await asyncio.to_thread(registry.pulling.wait, 30), "the pull never started"
        await world.delete("alice", alice_setup)
        bob_setup = await world.create("bob", "beta")
        bob_pod = (await world.pod(bob_setup)).id
        registry.release()
        await asyncio.wait_for(first_pass, 60)

    assert (bob_setup, bob_pod) != (alice_setup, alice_pod)  # ids are never handed out twice
    pod = await world.running(bob_setup)
    [container] = world.containers()  # bob's alone: alice's launch created nothing
    assert container.id == pod.container_id
    assert container.labels["port.owner"] == "bob"
    assert container.labels["port.app"] == "beta"
    assert await _eventually_printed(world, container.id)
    assert "ALICE_DB_PASSWORD" not in await world.reconciler.backend.logs(container.id, 200)
    assert all(kind != "POD_ADOPTED" for kind, _ in await world.events(bob_setup))


async def test_a_slow_registry_delays_no_other_tenant(
    lab: MakeLab, docker_images: TestImages, docker_registry: str
) -> None:
    """Repro: a registry that answered slowly held the reconcile pass for the whole pull,
    so bob's Setup stayed PENDING behind alice's. Now bob's runs while her image is
    still held back, and hers starts once the registry lets go."""
    image, _ = docker_images.push_unique(docker_registry, "tarpit")
    with DelayingRegistry(docker_registry) as registry:
        slow = image.replace(docker_registry, registry.address, 1)
        docker_images.pushed.append(slow.rpartition(":")[0])  # removed after the session
        world: Lab = await lab(
            slow, docker_images["forever"], allowed_registries=[registry.address]
        )
        alice_setup = await world.create("alice", "alpha")
        await asyncio.wait_for(world.reconciler.reconcile(), 30)
        assert await asyncio.to_thread(registry.pulling.wait, 30), "the pull never started"
        bob_setup = await world.create("bob", "beta")
        bob = await asyncio.wait_for(world.running(bob_setup), 60)
        alice = await world.pod(alice_setup)
        assert alice.status == "PULLING"
        assert [c.id for c in world.containers()] == [bob.container_id]
        registry.release()
        alice = await world.running(alice_setup)
    assert alice.pull is not None
    assert alice.pull["done"] == alice.pull["total"] >= 512 * 1024


async def _eventually_printed(world: Lab, container_id: str) -> bool:
    for _ in range(50):
        if "env printed" in await world.reconciler.backend.logs(container_id, 200):
            return True
        await asyncio.sleep(0.1)
    return False


async def test_a_container_that_ignores_sigterm_is_never_adopted_by_the_next_setup(
    lab: MakeLab, docker_images: TestImages
) -> None:
    """Repro: alice's container ignores SIGTERM, so it lives through the stop window
    after she deletes her Setup; bob's new Setup runs meanwhile and never adopts it."""
    world: Lab = await lab(docker_images["deaf"], docker_images["forever"], stop_timeout_seconds=4)
    alice_setup = await world.create("alice", "alpha")
    alice_container = (await world.running(alice_setup)).container_id
    containers = await world.delete("alice", alice_setup)
    removal = asyncio.create_task(world.reconciler.remove_containers(containers))
    bob_setup = await world.create("bob", "beta")
    bob = await world.running(bob_setup)
    await removal
    assert bob.container_id != alice_container
    assert [c.id for c in world.containers()] == [bob.container_id]
    assert all(kind != "POD_ADOPTED" for kind, _ in await world.events(bob_setup))


async def test_a_container_with_a_pods_id_but_another_identity_is_removed_not_adopted(
    lab: MakeLab, docker_images: TestImages
) -> None:
    """Adoption needs every identity label: a container that names bob's Pod but alice's
    Setup, owner or app (what a reused id would leave) is removed, and bob gets his own."""
    world: Lab = await lab(docker_images["forever"], docker_images["forever"])
    bob_setup = await world.create("bob", "beta")
    pod = await world.pod(bob_setup)
    async with world.catalogue.sessions() as session:
        loaded = await world.reconciler._load(session, pod.id)
        assert loaded is not None
        spec = pod_spec(world.settings, loaded, loaded.setup)
    impostor = world.client.containers.run(
        docker_images["forever"],
        detach=True,
        name=world.reconciler.backend.object_name(spec),
        labels={**spec.labels, "port.owner": "alice", "port.app": "alpha"},
    )
    bob = await world.running(bob_setup)
    assert bob.container_id != impostor.id
    assert [c.id for c in world.containers()] == [bob.container_id]
    assert all(kind != "POD_ADOPTED" for kind, _ in await world.events(bob_setup))


async def test_two_ports_on_one_engine_with_default_settings_leave_each_other_alone(
    tmp_path: Path,
    sqlite_template: Path,
    docker_engine: Any,
    docker_network: str,
    docker_images: TestImages,
) -> None:
    """Repro: two installations with the default instance name removed each other's
    containers as unknown. Now each makes its own name once, stores it, and shows it."""
    worlds: list[tuple[Reconciler, int]] = []
    engines = []
    try:
        for name in ("one", "two"):
            path = tmp_path / f"{name}.db"
            shutil.copy(sqlite_template, path)
            settings = Settings(
                data_dir=tmp_path / name,
                database_url=f"sqlite+aiosqlite:///{path}",
                docker_network=docker_network,
                stop_timeout_seconds=1,
            )
            assert settings.instance is None  # the default: made and stored on first use
            engine = db.create_engine(settings.sqlalchemy_url)
            engines.append(engine)
            sessions = db.sessionmaker(engine)
            async with sessions() as session, session.begin():
                await add_app(
                    session, identifier="alpha", flavours=(("cpu", docker_images["forever"], []),)
                )
                user = await add_user(session, "alice")
            reconciler = Reconciler(sessions, settings, DockerBackend(resolved(settings)))
            alice = Principal(user_id=user.id, name="alice", is_admin=False, via="token")
            caps = await reconciler.capabilities()
            async with sessions() as session, session.begin():
                setup = await setups.create_setup(
                    session, alice, setups.SetupRequest(app="alpha"), caps, reconciler.settings
                )
                await setups.start_setup(session, setup, caps, reconciler.settings)
            worlds.append((reconciler, setup.id))
        names = [r.settings.instance_name for r, _ in worlds]
        assert names[0] != names[1]
        assert all(name.startswith("port-") for name in names)
        assert (
            resolved(worlds[0][0].settings.model_copy(update={"instance": None})).instance
            == names[0]
        )
        for _ in range(3):
            for reconciler, _setup in worlds:
                await reconciler.reconcile()
        for name in names:
            running = docker_engine.containers.list(filters={"label": f"port.instance={name}"})
            assert len(running) == 1, f"{name} lost its container"
    finally:
        for reconciler, _ in worlds:
            remove_instance(docker_engine, reconciler.settings.instance_name)
            await reconciler.backend.close()
        for engine in engines:
            await engine.dispose()


@pytest.fixture
def host_listener() -> Iterator[int]:
    """An HTTP server of the host's on 0.0.0.0 (every address it has); its port."""
    server = http.server.ThreadingHTTPServer(("0.0.0.0", 0), _Hello)  # noqa: S104 - the point
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


class _Hello(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b"the host answers\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_args: object) -> None:
        pass


@pytest.fixture
def host_addresses() -> Iterator[tuple[str, str]]:
    """Two private addresses of the host's, on an interface of the test's own (a veth
    pair: this kernel may have no dummy interfaces)."""
    name = f"ptv{secrets.token_hex(3)}"
    octet = secrets.randbelow(200) + 20
    addresses = (f"10.251.{octet}.1", f"10.251.{octet}.2")
    subprocess.run(
        ["ip", "link", "add", name, "type", "veth", "peer", "name", f"{name}p"], check=True
    )
    try:
        for address in addresses:
            subprocess.run(["ip", "addr", "add", f"{address}/32", "dev", name], check=True)
        for end in (name, f"{name}p"):
            subprocess.run(["ip", "link", "set", end, "up"], check=True)
        yield addresses
    finally:
        subprocess.run(["ip", "link", "delete", name], check=True)


def _in_pod(container: Any, *command: str) -> tuple[int, str]:
    """Run a busybox applet inside the Pod's container: (exit code, output)."""
    code, output = container.exec_run(["/bin/busybox", *command])
    return code, output.decode(errors="replace")


def _get(container: Any, address: str, port: int) -> str:
    """The body of ``GET /`` from inside the Pod, "" when nothing answered 200 (busybox
    nc: its wget resolves names through glibc's NSS, which a FROM-scratch image lacks)."""
    request = "printf 'GET / HTTP/1.0\\r\\n\\r\\n'"
    _code, answer = _in_pod(container, "sh", "-c", f"{request} | nc -w 3 {address} {port}")
    head, _, body = answer.partition("\r\n\r\n")
    return body if " 200 " in head.split("\r\n", 1)[0] else ""


async def test_a_pod_reaches_neither_other_tenants_nor_the_host_but_allowed_networks(
    lab: MakeLab,
    docker_images: TestImages,
    host_listener: int,
    host_addresses: tuple[str, str],
) -> None:
    """Repro: every Pod shared one bridge, so alice's Pod reached bob's app over HTTP,
    found it by DNS, and reached whatever the host binds to 0.0.0.0. Now each Setup has
    a network of its own and the host answers a Pod only on an allowed network."""
    allowed, refused = host_addresses
    world: Lab = await lab(
        docker_images["web"],
        docker_images["web"],
        egress_allowed_networks=[f"{allowed}/32"],
    )
    alice = world.client.containers.get(
        (await world.running(await world.create("alice", "alpha"))).container_id
    )
    bob_setup = await world.create("bob", "beta")
    bob = world.client.containers.get((await world.running(bob_setup)).container_id)
    [(alice_net, alice_addr)] = alice.attrs["NetworkSettings"]["Networks"].items()
    [(bob_net, bob_addr)] = bob.attrs["NetworkSettings"]["Networks"].items()
    assert alice_net != bob_net

    # bob's app works, in bob's own Pod
    for _ in range(50):
        page = _get(bob, "127.0.0.1", 8080)
        if page:
            break
        await asyncio.sleep(0.1)
    assert page.strip() == f"hello from setup {bob_setup}"
    # alice reaches neither bob's address nor his name
    assert _get(alice, bob_addr["IPAddress"], 8080) == ""
    _code, own = _in_pod(alice, "nslookup", alice.name, "127.0.0.11")
    assert alice_addr["IPAddress"] in own  # the engine's DNS answers for her own network
    _code, answer = _in_pod(alice, "nslookup", bob.name, "127.0.0.11")
    assert bob_addr["IPAddress"] not in answer
    # the host: not at the gateway of alice's network, not at a private address of its
    # own, but at the address an admin allowed
    assert _get(alice, alice_addr["Gateway"], host_listener) == ""
    assert _get(alice, refused, host_listener) == ""
    assert _get(alice, allowed, host_listener) == "the host answers\n"


async def test_networks_and_firewall_rules_go_with_the_last_setup(
    lab: MakeLab, docker_images: TestImages
) -> None:
    world: Lab = await lab(docker_images["forever"], docker_images["forever"])
    setup_id = await world.create("alice", "alpha")
    await world.running(setup_id)
    label = {"label": f"{LABEL_INSTANCE}={world.settings.instance}"}
    assert len(world.client.networks.list(filters=label)) == 1
    chains = await _iptables()
    firewall = world.reconciler.backend.firewall  # type: ignore[attr-defined]
    assert f"-N {firewall.forward}" in chains
    await world.reconciler.remove_containers(await world.delete("alice", setup_id))
    await world.reconciler.reconcile()
    assert world.client.networks.list(filters=label) == []
    chains = await _iptables()
    assert firewall.forward not in chains
    assert firewall.input not in chains


async def _iptables() -> str:
    done = await asyncio.to_thread(
        subprocess.run, ["iptables", "-S"], capture_output=True, text=True, check=True
    )
    return done.stdout


async def test_pods_get_default_limits_rotated_logs_and_the_admins_options(
    lab: MakeLab, docker_images: TestImages
) -> None:
    """Repro: a manifest without resources ran unlimited (Memory=0 NanoCpus=0), logs grew
    without bound, and every Pod ran as root on a writable root filesystem."""
    world: Lab = await lab(
        docker_images["forever"],
        docker_images["forever"],
        default_cpus=0.5,
        default_memory_mb=128,
        read_only_apps=["alpha"],
        non_root_apps=["alpha"],
    )
    async with world.catalogue.sessions() as session, session.begin():
        await session.execute(update(Flavour).values(cpus=None, memory=None))
    pod = await world.running(await world.create("alice", "alpha"))
    container = world.client.containers.get(pod.container_id)
    host = container.attrs["HostConfig"]
    assert host["NanoCpus"] == 500_000_000
    assert host["Memory"] == 128 << 20
    assert host["PidsLimit"] == world.settings.docker_pids_limit
    assert host["LogConfig"] == {
        "Type": "json-file",
        "Config": {"max-file": "3", "max-size": "10m"},
    }
    assert host["ReadonlyRootfs"] is True
    assert _in_pod(container, "id", "-u") == (0, "65534\n")
    code, said = _in_pod(container, "touch", "/written")
    assert code != 0
    assert "Read-only file system" in said
    assert _in_pod(container, "touch", "/tmp/scratch")[0] == 0

    bob = world.client.containers.get(
        (await world.running(await world.create("bob", "beta"))).container_id
    )
    assert bob.attrs["HostConfig"]["ReadonlyRootfs"] is False  # not an app the admin named
    assert _in_pod(bob, "id", "-u") == (0, "0\n")


async def test_a_flavour_whose_image_supports_it_runs_read_only_and_non_root(
    lab: MakeLab, docker_images: TestImages
) -> None:
    """port.yaml's ``sandbox`` says what the image supports; no admin setting needed."""
    world: Lab = await lab(docker_images["forever"], docker_images["forever"])
    async with world.catalogue.sessions() as session, session.begin():
        await session.execute(
            update(Flavour)
            .where(Flavour.image == docker_images["forever"])
            .values(read_only=True, non_root=True)
        )
    pod = await world.running(await world.create("alice", "alpha"))
    container = world.client.containers.get(pod.container_id)
    assert container.attrs["HostConfig"]["ReadonlyRootfs"] is True
    assert _in_pod(container, "id", "-u") == (0, "65534\n")
    assert _in_pod(container, "touch", "/tmp/scratch")[0] == 0


async def test_a_users_running_pods_stay_within_their_quota(
    lab: MakeLab, docker_images: TestImages
) -> None:
    """Repro: one user started 25 unlimited Pods in seconds. Now a quota of running Pods
    (and of their CPUs and memory) stops them with QUOTA_EXCEEDED; others are unaffected."""
    world: Lab = await lab(docker_images["forever"], docker_images["forever"], quota_pods=1)
    first = await world.create("alice", "alpha")
    with pytest.raises(QuotaExceeded, match="at most 1 running pods per user") as raised:
        await world.create("alice", "beta")
    assert raised.value.code == "QUOTA_EXCEEDED"
    await world.create("bob", "beta")  # bob has a quota of his own
    async with world.catalogue.sessions() as session, session.begin():
        setups.stop_setup(session, await setups.get_setup(session, world.users["alice"], first))
    await world.create("alice", "beta")  # a stopped Setup frees its place

    world.settings = world.settings.model_copy(update={"quota_pods": None, "quota_memory_mb": 1536})
    with pytest.raises(QuotaExceeded, match="2048 MB of memory"):
        await world.create("bob", "alpha")  # bob runs beta (1 GiB) already


async def test_logs_are_bounded_in_bytes_whatever_the_tail(
    lab: MakeLab, docker_images: TestImages
) -> None:
    """Repro: `logs(tail: 10000)` of a chatty Pod answered tens of MB at once."""
    chatty = docker_images.add(
        "chatty",
        [
            'CMD ["sh", "-c", "i=0; while [ $i -lt 3000 ]; do i=$((i+1)); '
            "echo line $i of a chatty app that writes a lot; done; echo last line; "
            'while true; do sleep 1; done"]'
        ],
    )
    world: Lab = await lab(chatty, chatty, logs_max_kb=4)
    pod = await world.running(await world.create("alice", "alpha"))
    for _ in range(100):
        output = await world.reconciler.backend.logs(pod.container_id or "", 10_000)
        if output.endswith("last line\n"):
            break
        await asyncio.sleep(0.1)
    assert output.endswith("last line\n")
    assert len(output.encode()) <= 4 * 1024
    assert output.startswith("line ")  # whole lines only


REGISTRY_SECRET = "PORT-INTERNAL-SECRET-4242"


class _InternalService(http.server.BaseHTTPRequestHandler):
    """A service on the host's loopback that answers like a registry with nothing to
    pull, and puts its own data in the error (as Port's API answered the engine)."""

    requests: list[str]

    def do_GET(self) -> None:
        self.requests.append(self.path)
        if self.path == "/v2/":
            body, status = b"{}", 200
        else:
            error = {"code": "MANIFEST_UNKNOWN", "message": REGISTRY_SECRET}
            body, status = json.dumps({"errors": [error]}).encode(), 404
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_HEAD = do_GET

    def log_message(self, *_args: object) -> None:
        pass


@pytest.fixture
def internal_service() -> Iterator[tuple[str, list[str]]]:
    """``127.0.0.1:<port>`` of a loopback-only service, and the paths it was asked for."""
    requests: list[str] = []
    handler = type("Handler", (_InternalService,), {"requests": requests})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}", requests
    finally:
        server.shutdown()
        server.server_close()


async def test_an_image_on_the_hosts_loopback_is_refused_and_the_engine_never_asks(
    lab: MakeLab, docker_images: TestImages, internal_service: tuple[str, list[str]]
) -> None:
    """Repro: a manifest image `127.0.0.1:<port>/...` made the host's engine send requests
    to the host's loopback. Refused before the pull, in Port's words."""
    address, requests = internal_service
    image = f"{address}/graphql:1"
    world: Lab = await lab(image, docker_images["forever"])
    setup_id = await world.create("alice", "alpha")
    await world.reconciler.reconcile()
    pod = await world.pod(setup_id)
    assert pod.status == "FAILED"
    assert pod.message == (
        f"image {image} refused: the registry {address} is on this server's own network: "
        "127.0.0.1 is not a public address. Port pulls images only from public registries "
        "and those an admin allows (PORT_ALLOWED_REGISTRIES)"
    )
    assert requests == []
    assert world.containers() == []


async def test_a_failed_pull_says_what_failed_without_the_registrys_words(
    lab: MakeLab,
    docker_images: TestImages,
    internal_service: tuple[str, list[str]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """An allowed registry's answer reaches the admin's log, never the user's Pod."""
    address, requests = internal_service
    image = f"{address}/graphql:1"
    world: Lab = await lab(image, docker_images["forever"], allowed_registries=[address])
    setup_id = await world.create("alice", "alpha")
    await reconcile_pulled(world.reconciler)
    pod = await world.pod(setup_id)
    assert requests, "the engine never asked the allowed registry"
    assert pod.status == "FAILED"
    assert pod.message == f"image {image} cannot be pulled: the registry has no such image"
    assert REGISTRY_SECRET not in " ".join(m for _, m in await world.events(setup_id))
    assert REGISTRY_SECRET in caplog.text  # the admin can still see what the engine said
