"""Capabilities granted by consent, on the real engine: a Pod gets exactly what its owner
granted within the admin's policy (a folder, read-only unless asked and allowed, a
device, shared memory, a Linux capability), nothing when a capability is declined or
refused, and an update that asks for more waits for the owner's consent."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from port.deploy import setups
from port.deploy.backends.docker import DockerBackend
from port.deploy.grants import Consent
from port.deploy.models import EventKind, Pod, Setup, SetupEvent, UpdatePolicy
from port.deploy.reconciler import Reconciler
from port.deploy.selection import ConsentNeeded
from port.deploy.updater import Updater, plan_updates
from port.errors import InvalidInput
from port.jobs.models import Job
from port.principal import Principal
from port.settings import DEFAULT_CAPABILITIES, Settings
from tests.deployfakes import add_app, add_release, add_user, reconciled_until
from tests.harness import Catalogue
from tests.integration.dockerfixtures import TestImages

pytestmark = pytest.mark.docker

IMAGES = {"kind": "folder", "name": "images", "target": "/images", "description": "to open"}
RESULTS = {"kind": "folder", "name": "results", "target": "/results", "readOnly": False}
CAMERA = {"kind": "device", "name": "camera", "class": "other", "target": "/dev/camera"}
SHM = {"kind": "shared_memory", "name": "shm", "min": 128}
NICE = {"kind": "linux_capability", "name": "nice", "cap": "SYS_NICE", "required": False}
MIB = 1 << 20


@dataclass
class Bench:
    """An app `scope` whose flavour asks for ``capabilities``, alice, a real engine."""

    catalogue: Catalogue
    settings: Settings
    client: Any
    reconciler: Reconciler
    alice: Principal
    folders: Path

    async def create(self, *consents: Consent, start: bool = True) -> int:
        caps = await self.reconciler.capabilities()
        async with self.catalogue.sessions() as session, session.begin():
            setup = await setups.create_setup(
                session,
                self.alice,
                setups.SetupRequest(app="scope", version="1.0.0", grants=consents),
                caps,
                self.settings,
            )
            if start:
                await setups.start_setup(session, setup, caps, self.settings)
            return setup.id

    async def pod(self, setup_id: int) -> Pod:
        async with self.catalogue.sessions() as session:
            return (
                await session.scalars(
                    select(Pod).where(Pod.setup_id == setup_id, Pod.retired.is_(False))
                )
            ).one()

    async def running(self, setup_id: int) -> tuple[Pod, Any]:
        pod = await reconciled_until(self.catalogue.sessions, self.reconciler, setup_id)
        return pod, self.client.containers.get(pod.container_id)

    def folder(self, name: str) -> Path:
        path = self.folders / name
        path.mkdir(parents=True, exist_ok=True)
        return path


MakeBench = Callable[..., Any]


@pytest.fixture
async def bench(
    catalogue: Catalogue,
    docker_settings: Callable[..., Settings],
    docker_engine: Any,
    docker_images: TestImages,
    tmp_path: Path,
) -> AsyncIterator[MakeBench]:
    """``await bench(capabilities, **settings)``: the policy lets tmp_path/lab be granted
    (writable), /dev/zero as an `other` device, SYS_NICE, 256 MB of shared memory."""
    made: list[Bench] = []

    async def make(capabilities: list[dict[str, Any]], **overrides: Any) -> Bench:
        folders = tmp_path / "lab"
        policy: dict[str, Any] = {
            "grantable_folders": [f"{folders}:rw"],
            "grantable_devices": {"other": ["/dev/zero"]},
            "grantable_linux_capabilities": ["SYS_NICE"],
            "grantable_shared_memory_mb": 256,
            "update_grace_seconds": 0.5,
        }
        settings = docker_settings(
            database_url=catalogue.settings.database_url, **{**policy, **overrides}
        )
        async with catalogue.sessions() as session, session.begin():
            app = await add_app(session, identifier="scope", versions=())
            add_release(
                session,
                app.id,
                "1.0.0",
                (("cpu", docker_images["forever"], []),),
                None,
                capabilities,
            )
            user = await add_user(session, "alice")
        alice = Principal(user_id=user.id, name="alice", is_admin=False, via="token")
        reconciler = Reconciler(catalogue.sessions, settings, DockerBackend(settings))
        made.append(Bench(catalogue, settings, docker_engine, reconciler, alice, folders))
        return made[-1]

    yield make
    for bench_ in made:
        await bench_.reconciler.close()


def sh(container: Any, script: str) -> tuple[int, str]:
    result = container.exec_run(["/bin/busybox", "sh", "-c", script])
    return result.exit_code, result.output.decode(errors="replace")


async def test_the_engine_gives_exactly_what_was_granted(bench: MakeBench) -> None:
    lab: Bench = await bench([IMAGES, RESULTS, CAMERA, SHM, NICE])
    images, results = lab.folder("images"), lab.folder("results")
    (images / "cells.tif").write_text("pixels")
    setup_id = await lab.create(
        Consent("images", str(images)),
        Consent("results", str(results)),
        Consent("camera", "/dev/zero"),
        Consent("shm"),
        # nice is optional: declined by not granting it
    )

    pod, container = await lab.running(setup_id)

    host = container.attrs["HostConfig"]
    mounts = {m["Destination"]: (m["Source"], m["RW"]) for m in container.attrs["Mounts"]}
    assert mounts == {"/images": (str(images), False), "/results": (str(results), True)}
    assert [(d["PathOnHost"], d["PathInContainer"]) for d in host["Devices"]] == [
        ("/dev/zero", "/dev/camera")
    ]
    assert host["ShmSize"] == 128 * MIB
    assert sorted(host["CapAdd"]) == sorted(DEFAULT_CAPABILITIES)  # no SYS_NICE: declined
    assert host["Privileged"] is False
    # What the app notices: it reads its images, cannot change them, writes its results.
    assert sh(container, "cat /images/cells.tif") == (0, "pixels")
    assert sh(container, "echo x > /images/new")[0] != 0
    assert sh(container, "echo done > /results/out")[0] == 0
    assert (results / "out").read_text() == "done\n"
    assert sh(container, "head -c 4 /dev/camera | wc -c")[1].strip() == "4"
    # Provenance: the Pod records what it was given.
    assert [g["name"] for g in pod.grants] == ["images", "results", "camera", "shm"]
    assert pod.grants[0] == {
        "name": "images",
        "kind": "folder",
        "source": str(images),
        "target": "/images",
        "readOnly": True,
    }


async def test_granted_optional_capability_is_added_and_nothing_else(bench: MakeBench) -> None:
    lab: Bench = await bench([NICE])
    setup_id = await lab.create(Consent("nice"))
    _, container = await lab.running(setup_id)
    host = container.attrs["HostConfig"]
    assert sorted(host["CapAdd"]) == sorted([*DEFAULT_CAPABILITIES, "SYS_NICE"])
    assert not container.attrs["Mounts"]
    assert not host["Devices"]
    assert host["ShmSize"] == 64 * MIB  # the engine's default


async def test_what_the_policy_refuses_is_refused_before_anything_runs(
    bench: MakeBench,
) -> None:
    lab: Bench = await bench([IMAGES, SHM])
    fine = Consent("images", str(lab.folder("images")))
    for consents, reason in [
        ((Consent("images", "/etc"), Consent("shm")), "/etc is not under a folder"),
        ((Consent("images", f"{lab.folders}/../../etc"), Consent("shm")), "'..' is not allowed"),
        ((fine, Consent("shm", "/dev/shm")), "takes no host side"),
        ((fine, Consent("shm"), Consent("camera", "/dev/zero")), "no capability 'camera'"),
        ((fine,), "needs the shared_memory capability 'shm' granted"),
    ]:
        with pytest.raises((InvalidInput, ConsentNeeded), match=reason):
            await lab.create(*consents)
    async with lab.catalogue.sessions() as session:
        assert (await session.scalars(select(Setup))).all() == []
    assert (
        lab.client.containers.list(
            all=True, filters={"label": f"port.instance={lab.settings.instance}"}
        )
        == []
    )


async def test_an_update_asking_for_more_waits_for_consent(bench: MakeBench) -> None:
    lab: Bench = await bench([])
    async with lab.catalogue.sessions() as session, session.begin():
        setup = await setups.create_setup(
            session,
            lab.alice,
            setups.SetupRequest(app="scope", version="1.0.0", update_policy=UpdatePolicy.MINOR),
            await lab.reconciler.capabilities(),
            lab.settings,
        )
        await setups.start_setup(session, setup, await lab.reconciler.capabilities(), lab.settings)
        setup_id = setup.id
        app_id = setup.app_id
    await lab.running(setup_id)
    async with lab.catalogue.sessions() as session, session.begin():
        image = (await lab.pod(setup_id)).image
        add_release(session, app_id, "1.1.0", (("cpu", image, []),), None, [IMAGES])
    updater = Updater(lab.catalogue.sessions, lab.settings, lab.reconciler)

    async def plan() -> list[str]:
        async with lab.catalogue.sessions() as session, session.begin():
            return [p.target for p in await plan_updates(session, setup_ids=[setup_id])]

    assert await plan() == ["1.1.0"]
    said = await updater.run(setup_id, "1.1.0")
    assert "waits for consent" in said
    assert "folder 'images'" in said
    old = await lab.pod(setup_id)
    async with lab.catalogue.sessions() as session:
        waiting = await session.get(Setup, setup_id)
        assert waiting is not None
        assert waiting.consent_needed == {
            "version": "1.1.0",
            "asks": {"cpu": [IMAGES]},
        }
        kinds = list(
            await session.scalars(select(SetupEvent.kind).where(SetupEvent.setup_id == setup_id))
        )
    assert kinds.count(EventKind.UPDATE_NEEDS_CONSENT) == 1
    assert await plan() == []  # asked once: not planned again until granted
    assert (await lab.pod(setup_id)).id == old.id  # the old Pod runs on, untouched

    images = lab.folder("images")
    async with lab.catalogue.sessions() as session, session.begin():
        setup = await setups.get_setup(session, lab.alice, setup_id)
        await setups.set_grants(session, setup, [Consent("images", str(images))], lab.settings)
    async with lab.catalogue.sessions() as session:
        queued = await session.scalar(select(Job.payload).where(Job.kind == "update"))
    assert queued == {"setup_id": setup_id, "version": "1.1.0", "manual": True}
    said = await updater.run(setup_id, "1.1.0")
    assert "is healthy" in said, said
    new, container = await lab.running(setup_id)
    assert new.id != old.id
    assert {m["Destination"]: m["Source"] for m in container.attrs["Mounts"]} == {
        "/images": str(images)
    }


async def test_root_equivalent_grants_only_for_an_app_the_admin_named(bench: MakeBench) -> None:
    hostnet = {"kind": "host_network", "name": "net"}
    lab: Bench = await bench([hostnet])
    with pytest.raises(InvalidInput, match="an admin must allow scope first"):
        await lab.create(Consent("net"))

    allowed = {"host_access_apps": ["scope"]}  # the admin allows it, for every process
    lab.settings = lab.settings.model_copy(update=allowed)
    lab.reconciler.settings = lab.reconciler.settings.model_copy(update=allowed)
    setup_id = await lab.create(Consent("net"))
    pod, container = await lab.running(setup_id)
    assert container.attrs["HostConfig"]["NetworkMode"] == "host"
    assert pod.grants == [{"name": "net", "kind": "host_network"}]
