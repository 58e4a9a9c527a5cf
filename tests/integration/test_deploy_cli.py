"""`port setup ...` and `port pod ...` on the real engine: each change shows at once."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from click.testing import CliRunner, Result

from port.deploy.backends.base import LABEL_INSTANCE
from port.settings import Settings, get_settings
from tests.deployfakes import add_app, add_user
from tests.harness import Catalogue, run_cli
from tests.integration.dockerfixtures import TestImages

pytestmark = pytest.mark.docker


@pytest.fixture
def settings(
    catalogue: Catalogue, docker_settings: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch
) -> Iterator[Settings]:
    settings = docker_settings(database_url=catalogue.settings.database_url)
    monkeypatch.setenv("PORT_DATABASE_URL", settings.sqlalchemy_url)
    for name in ("instance", "docker_network", "stop_timeout_seconds"):
        monkeypatch.setenv(f"PORT_{name.upper()}", str(getattr(settings, name)))
    monkeypatch.setenv("PORT_DATA_DIR", str(settings.data_dir))
    get_settings.cache_clear()
    yield settings
    get_settings.cache_clear()


async def run(*args: str, code: int = 0) -> Result:
    """The command in a thread: it runs an event loop of its own."""
    return await asyncio.to_thread(run_cli, CliRunner(), *args, code=code)


async def test_setup_and_pod_commands(
    catalogue: Catalogue, settings: Settings, docker_engine: Any, docker_images: TestImages
) -> None:
    async with catalogue.sessions() as session, session.begin():
        await add_app(session, identifier="busy", flavours=(("cpu", docker_images["env"], []),))
        await add_user(session, "alice")
    label = {"label": f"{LABEL_INSTANCE}={settings.instance}"}

    created = await run(
        "setup", "create", "busy", "--owner", "alice", "--env", "GREETING=hi", "--start"
    )
    setup_id = created.output.strip()
    assert setup_id == "1"
    [shown] = json.loads((await run("setup", "list", "--json")).output)
    assert (shown["app"], shown["owner"], shown["status"]) == ("busy", "alice", "RUNNING")
    [container] = docker_engine.containers.list(filters=label)
    assert shown["pods"][0]["container"] == container.id[:12]

    [pod] = json.loads((await run("pod", "list", "--json")).output)
    restarted = (await run("pod", "restart", str(pod["id"]))).output
    assert restarted.strip() == f"pod {pod['id']}: RUNNING"
    [after] = docker_engine.containers.list(filters=label)
    assert after.id != container.id

    detail = json.loads((await run("setup", "show", setup_id, "--json")).output)
    assert [e["kind"] for e in detail["events"]][-2:] == ["POD_RESTARTED", "POD_RUNNING"]

    assert "STOPPED" in (await run("setup", "stop", setup_id)).output
    assert docker_engine.containers.list(all=True, filters=label) == []
    assert "RUNNING" in (await run("setup", "start", setup_id)).output
    assert len(docker_engine.containers.list(filters=label)) == 1
    deleted = await run("setup", "delete", setup_id)
    assert deleted.output.strip() == f"setup {setup_id} deleted"
    assert docker_engine.containers.list(all=True, filters=label) == []

    refused = await run("setup", "create", "busy", "--owner", "nobody", code=1)
    assert "no user nobody" in refused.output
    reserved = await run(
        "setup", "create", "busy", "--owner", "alice", "--env", "PORT_POD_ID=1", code=1
    )
    assert "is reserved" in reserved.output
