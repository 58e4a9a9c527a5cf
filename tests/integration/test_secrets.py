"""Secret variables on the real engine and through the real commands: the container's
environment holds them, `docker inspect` labels and Port's logs do not; a rotated key
keeps them readable; a Port whose key cannot open them refuses to start."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from click.testing import CliRunner, Result
from pydantic import SecretStr
from sqlalchemy import select

from port.deploy import setups
from port.deploy.backends.docker import DockerBackend
from port.deploy.models import Secret
from port.deploy.reconciler import Reconciler
from port.principal import Principal
from port.secretbox import new_key
from port.settings import Settings, get_settings
from tests.deployfakes import add_app, add_user, reconciled_until
from tests.harness import Catalogue, run_cli
from tests.integration.dockerfixtures import TestImages

pytestmark = pytest.mark.docker

VALUE = "pa55-word-in-the-pod"


@pytest.fixture
def settings(
    catalogue: Catalogue, docker_settings: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch
) -> Iterator[Settings]:
    """Settings with a secret key, also as the environment of `port` commands."""
    key = new_key()
    settings = docker_settings(
        database_url=catalogue.settings.database_url, secret_key=SecretStr(key)
    )
    monkeypatch.setenv("PORT_DATABASE_URL", settings.sqlalchemy_url)
    monkeypatch.setenv("PORT_SECRET_KEY", key)
    for name in ("instance", "docker_network", "stop_timeout_seconds"):
        monkeypatch.setenv(f"PORT_{name.upper()}", str(getattr(settings, name)))
    monkeypatch.setenv("PORT_DATA_DIR", str(settings.data_dir))
    get_settings.cache_clear()
    yield settings
    get_settings.cache_clear()


async def run(*args: str, code: int = 0) -> Result:
    return await asyncio.to_thread(run_cli, CliRunner(), *args, code=code)


async def test_the_container_holds_its_secret_and_nothing_else_does(
    catalogue: Catalogue,
    settings: Settings,
    docker_engine: Any,
    docker_images: TestImages,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    caplog.set_level(logging.DEBUG)
    async with catalogue.sessions() as session, session.begin():
        await add_app(session, identifier="busy", flavours=(("cpu", docker_images["env"], []),))
        user = await add_user(session, "alice")
    alice = Principal(user_id=user.id, name="alice", is_admin=False, via="token")
    reconciler = Reconciler(catalogue.sessions, settings, DockerBackend(settings))
    try:
        caps = await reconciler.capabilities()
        async with catalogue.sessions() as session, session.begin():
            setup = await setups.create_setup(
                session,
                alice,
                setups.SetupRequest(app="busy", secrets={"DB_PASSWORD": VALUE}),
                caps,
                settings,
            )
            await setups.start_setup(session, setup, caps, settings)
            setup_id = setup.id
        pod = await reconciled_until(catalogue.sessions, reconciler, setup_id)
        container = docker_engine.containers.get(pod.container_id)
        assert f"DB_PASSWORD={VALUE}" in container.attrs["Config"]["Env"]  # the app reads it
        assert VALUE not in json.dumps(container.attrs["Config"]["Labels"])
        shown = (await run("setup", "show", str(setup_id), "--json")).output
        assert json.loads(shown)["secrets"] == ["DB_PASSWORD"]
        assert VALUE not in shown

        # A rotation: the new key with the old as previous, `port secrets rotate`, and
        # then the new key alone still opens it (a restarted Pod gets it again).
        old = settings.secret_key
        assert old is not None
        new = new_key()
        monkeypatch.setenv("PORT_SECRET_KEY", new)
        monkeypatch.setenv("PORT_PREVIOUS_SECRET_KEYS", json.dumps([old.get_secret_value()]))
        get_settings.cache_clear()
        rotated = await run("secrets", "rotate")
        assert rotated.output.strip() == "1 secrets sealed with the current key"
        monkeypatch.delenv("PORT_PREVIOUS_SECRET_KEYS")
        get_settings.cache_clear()
        reconciler.settings = settings.model_copy(update={"secret_key": SecretStr(new)})
        await run("pod", "restart", str(pod.id))
        again = await reconciled_until(catalogue.sessions, reconciler, setup_id)
        restarted = docker_engine.containers.get(again.container_id)
        assert restarted.id != container.id
        assert f"DB_PASSWORD={VALUE}" in restarted.attrs["Config"]["Env"]

        # The old key alone opens nothing any more: Port refuses to start with it.
        monkeypatch.setenv("PORT_SECRET_KEY", old.get_secret_value())
        get_settings.cache_clear()
        refused = await run("worker", code=1)
        assert "cannot be opened with PORT_SECRET_KEY" in refused.output
        monkeypatch.delenv("PORT_SECRET_KEY")
        get_settings.cache_clear()
        unkeyed = await run("worker", code=1)
        assert "1 secrets are stored, but PORT_SECRET_KEY is not set" in unkeyed.output
    finally:
        await reconciler.close()
    async with catalogue.sessions() as session:
        [sealed] = await session.scalars(select(Secret.sealed))
    assert VALUE not in sealed
    assert not [r for r in caplog.records if VALUE in r.getMessage()]
