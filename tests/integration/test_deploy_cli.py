"""`port setup ...` and `port pod ...` on the real engine: each change shows at once."""

from __future__ import annotations

import asyncio
import json
import os
import pty
import select
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from port.deploy.backends.base import LABEL_INSTANCE
from port.settings import Settings, get_settings
from tests.deployfakes import add_app, add_release, add_user
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


def _at_a_terminal(*args: str, answers: list[tuple[str, str]]) -> tuple[int, str, str]:
    """``port <args>`` with a pseudo-terminal for stdin and stderr (where it asks), each
    prompt ending in the first of ``answers`` answered with the second; (exit code,
    stdout, what the terminal showed)."""
    controller, terminal = pty.openpty()
    port = Path(sys.executable).with_name("port")
    process = subprocess.Popen(
        [str(port), *args], stdin=terminal, stderr=terminal, stdout=subprocess.PIPE
    )
    os.close(terminal)
    shown, pending = b"", list(answers)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        ready, _, _ = select.select([controller], [], [], 0.5)
        if ready:
            try:
                chunk = os.read(controller, 4096)
            except OSError:  # the command closed the terminal: it ended
                break
            if not chunk:
                break
            shown += chunk
            if pending and shown.rstrip().endswith(pending[0][0].encode()):
                os.write(controller, pending.pop(0)[1].encode() + b"\n")
        elif process.poll() is not None:
            break
    os.close(controller)
    out, _ = process.communicate(timeout=30)
    return process.returncode, out.decode(), shown.decode(errors="replace")


async def test_create_asks_for_grants_at_a_terminal_and_refuses_elsewhere(
    catalogue: Catalogue,
    settings: Settings,
    docker_images: TestImages,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    folder = {"kind": "folder", "name": "images", "target": "/images", "description": "to read"}
    shm = {"kind": "shared_memory", "name": "shm", "min": 128}
    async with catalogue.sessions() as session, session.begin():
        app = await add_app(session, identifier="scope", versions=())
        add_release(
            session, app.id, "1.0.0", (("cpu", docker_images["env"], []),), None, [folder, shm]
        )
        await add_user(session, "alice")
    monkeypatch.setenv("PORT_GRANTABLE_FOLDERS", json.dumps([str(tmp_path)]))
    get_settings.cache_clear()

    refused = await run("setup", "create", "scope", "--owner", "alice", code=1)
    assert "asks to be granted images: a read-only host folder at /images" in refused.output
    assert "--grant images=/host/folder --grant shm" in refused.output
    outside = await run(
        "setup", "create", "scope", "--owner", "alice", "--grant", "images=/etc", code=1
    )
    assert "/etc is not under a folder" in outside.output
    assert json.loads((await run("setup", "list", "--json")).output) == []

    code, out, terminal = await asyncio.to_thread(
        _at_a_terminal,
        "setup",
        "create",
        "scope",
        "--owner",
        "alice",
        answers=[("(empty: refuse):", str(tmp_path)), ("grant shm? [y/N]:", "y")],
    )
    assert code == 0, terminal
    assert "why: to read" in terminal
    setup_id = out.strip()
    shown = json.loads((await run("setup", "show", setup_id, "--json")).output)
    assert [(g["name"], g.get("host")) for g in shown["grants"]] == [
        ("images", str(tmp_path)),
        ("shm", None),
    ]
    assert shown["grants"][1]["agreed"] == {"kind": "shared_memory", "min": 128}

    withdrawn = await run("setup", "grant", setup_id)
    assert withdrawn.output.strip() == f"setup {setup_id} grants: none"
    assert json.loads((await run("setup", "show", setup_id, "--json")).output)["grants"] == []
