"""A channel of an OCI repository, end to end on the real engine and the real local
registry: images pushed there and named by digest in descriptors written by
`arkitekt-spec`, a Setup on the channel runs its build, follows the channel when it moves
(health-gated, as every update), and nobody else is ever moved to a channel's build."""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from arkitekt_spec.release import channel_version
from sqlalchemy import select

from port.catalogue.models import IndexRunStatus, Release
from port.catalogue.repos import add_repo
from port.catalogue.scanning import scan_repo
from port.deploy import setups
from port.deploy.backends.docker import DockerBackend
from port.deploy.models import Pod, UpdatePolicy
from port.deploy.reconciler import Reconciler
from port.deploy.updater import Updater, plan_updates
from port.errors import InvalidInput
from port.principal import Principal
from port.settings import Settings
from tests.deployfakes import add_user, reconciled_until
from tests.harness import Catalogue, require
from tests.integration.dockerfixtures import TestImages
from tests.integration.ocifixtures import Pusher, descriptor, flavour

pytestmark = pytest.mark.docker


@pytest.fixture
async def lab(
    catalogue: Catalogue, docker_settings: Callable[..., Settings]
) -> AsyncIterator[tuple[Settings, Reconciler]]:
    settings = docker_settings(
        database_url=catalogue.settings.database_url,
        update_grace_seconds=0.5,
        allow_local_repos=True,  # the registry is on loopback
    )
    reconciler = Reconciler(catalogue.sessions, settings, DockerBackend(settings))
    yield settings, reconciler
    await reconciler.close()


async def test_a_setup_on_a_channel_follows_its_builds(
    catalogue: Catalogue,
    lab: tuple[Settings, Reconciler],
    docker_engine: Any,
    docker_images: TestImages,
) -> None:
    registry = os.environ.get("PORT_TEST_REGISTRY") or require("PORT_TEST_REGISTRY")
    settings, reconciler = lab
    _tag, first_image = docker_images.push_unique(registry, "channel-app")
    _tag, second_image = docker_images.push_unique(registry, "channel-app")
    repository = f"port-test/channel-{secrets.token_hex(4)}"
    pusher = Pusher(registry, repository)

    def build(revision: str, image: str) -> bytes:
        version = channel_version("2.0.0", revision)
        return descriptor(
            version, flavour("cpu", image), identifier="chan", channel="main", revision=revision
        )

    try:
        pusher.release("1.0.0", descriptor("1.0.0", flavour("cpu", first_image), identifier="chan"))
        pusher.release("main", build("a" * 40, first_image))
        async with catalogue.sessions() as session, session.begin():
            repo = await add_repo(
                session, f"oci+http://{registry}/{repository}", allow_local=True, channels=["main"]
            )
            alice = await add_user(session, "alice")
            repo_id = repo.id
        first = await scan_repo(catalogue.sessions, settings, repo_id)
        assert first.run.status == IndexRunStatus.SUCCEEDED, first.run.message
        owner = Principal(user_id=alice.id, name="alice", is_admin=False, via="token")
        caps = await reconciler.capabilities()

        async with catalogue.sessions() as session, session.begin():
            on_main = await setups.create_setup(
                session, owner, setups.SetupRequest(app="chan", channel="main"), caps, settings
            )
            await setups.start_setup(session, on_main, caps, settings)
            # A Setup that takes every pre-release is never moved to a channel's build.
            eager = await setups.create_setup(
                session,
                owner,
                setups.SetupRequest(
                    app="chan", update_policy=UpdatePolicy.MAJOR, include_prereleases=True
                ),
                caps,
                settings,
            )
            setup_id, eager_id = on_main.id, eager.id
            with pytest.raises(InvalidInput, match="follow the channel instead"):
                await setups.create_setup(
                    session,
                    owner,
                    setups.SetupRequest(app="chan", version="2.0.0-dev.aaaaaaa"),
                    caps,
                    settings,
                )
            with pytest.raises(InvalidInput, match="updatePolicy does not apply"):
                await setups.create_setup(
                    session,
                    owner,
                    setups.SetupRequest(
                        app="chan", channel="main", update_policy=UpdatePolicy.MINOR
                    ),
                    caps,
                    settings,
                )
        pod, container = await running(catalogue, reconciler, docker_engine, setup_id)
        assert pod.image == first_image  # by digest, as the descriptor names it
        assert pod.image_digest == first_image.split("@", 1)[1]
        assert container.attrs["Config"]["Image"] == first_image

        # The channel moves: the Setup on it is planned to the new build, nobody else.
        pusher.release("main", build("b" * 40, second_image))
        moved = await scan_repo(catalogue.sessions, settings, repo_id)
        assert moved.run.status == IndexRunStatus.SUCCEEDED, moved.run.message
        async with catalogue.sessions() as session, session.begin():
            planned = await plan_updates(session, setup_ids=[setup_id, eager_id])
        assert [(p.setup_id, p.current, p.target) for p in planned] == [
            (setup_id, "2.0.0-dev.aaaaaaa", "2.0.0-dev.bbbbbbb")
        ]
        said = await Updater(catalogue.sessions, settings, reconciler).run(
            setup_id, "2.0.0-dev.bbbbbbb"
        )
        assert "is healthy" in said, said
        new, container = await running(catalogue, reconciler, docker_engine, setup_id)
        assert new.id != pod.id
        assert new.image == second_image
        assert container.attrs["Config"]["Image"] == second_image
        async with catalogue.sessions() as session, session.begin():
            again = await plan_updates(session, setup_ids=[setup_id, eager_id])
            superseded = await session.scalar(
                select(Release.current).where(Release.version == "2.0.0-dev.aaaaaaa")
            )
        assert again == []  # on the channel's build: nothing to do
        assert superseded is False
    finally:
        pusher.client.close()


async def running(
    catalogue: Catalogue, reconciler: Reconciler, client: Any, setup_id: int
) -> tuple[Pod, Any]:
    """The Setup's Pod once it runs and its image digest is known, and its container."""
    pod = await reconciled_until(
        catalogue.sessions,
        reconciler,
        setup_id,
        lambda p: p.status == "RUNNING" and bool(p.image_digest),
    )
    return pod, client.containers.get(pod.container_id)
