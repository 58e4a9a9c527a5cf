"""Websockets through the app proxy: Port under uvicorn on a real socket, the app a real
websocket server (uvicorn on 127.0.0.1, where the fake engine says its Pod listens),
and a websocket client as the browser on the app's origin.

The engine is a fake here: what is tested is the relay, not the container.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
import uvicorn
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidStatus

from port.serve import server_config
from port.settings import Settings
from port.work.server import create_app
from tests.deployfakes import FakeBackend, add_app
from tests.harness import Catalogue, eventually, free_port
from tests.pages import Browser, add_user

# The relay does not depend on the database: SQLite alone.
pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
IMAGE = "localhost:5000/port-test/echo:1"


async def echo(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """The app: says which headers it got and which subprotocol was asked for, then
    sends every message back as it came (text as text, bytes as bytes)."""
    if scope["type"] == "http":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"echo"})
        return
    await receive()  # websocket.connect
    offered = scope.get("subprotocols") or []
    await send({"type": "websocket.accept", "subprotocol": offered[0] if offered else None})
    headers = {k.decode(): v.decode() for k, v in scope["headers"]}
    await send({"type": "websocket.send", "text": json.dumps(headers)})
    while (message := await receive())["type"] == "websocket.receive":
        if message.get("bytes") is not None:
            await send({"type": "websocket.send", "bytes": message["bytes"]})
        else:
            await send({"type": "websocket.send", "text": message["text"]})


@dataclass
class Proxied:
    port_number: int
    setup_id: int
    alice: Browser
    host: str

    async def connect(self, browser: Browser, **options: Any) -> ClientConnection:
        """A websocket from the app's origin, with ``browser``'s cookies of it."""
        jar = browser.app(self.host).cookies
        cookie = "; ".join(f"{name}={value}" for name, value in jar.items())
        return await connect(
            f"ws://{self.host}/socket",
            host="127.0.0.1",  # as browsers resolve *.localhost
            port=self.port_number,
            additional_headers={"Cookie": cookie} if cookie else {},
            max_size=None,
            **options,
        )


async def _serve(server: uvicorn.Server) -> asyncio.Task[None]:
    task = asyncio.create_task(server.serve())
    await eventually(lambda: server.started, "uvicorn to listen")
    return task


@pytest.fixture
async def proxied(catalogue: Catalogue) -> AsyncIterator[Proxied]:
    app_port, number = free_port(), free_port()
    app = uvicorn.Server(
        uvicorn.Config(echo, host="127.0.0.1", port=app_port, log_level="warning", lifespan="off")
    )
    backend = FakeBackend("port")
    backend.images.add(IMAGE)
    backend.address = "127.0.0.1"
    settings = Settings(
        data_dir=catalogue.settings.data_dir,
        database_url=catalogue.settings.database_url,
        instance="port",  # what FakeBackend("port") manages
        server_url=f"http://localhost:{number}",
        port=number,
        reconcile_seconds=0.2,
        serve_worker=True,
        job_poll_seconds=0.2,
        access_log=False,
        poll_seconds=0,
        allowed_registries=["localhost:5000"],
    )
    ws = {"ports": [{"name": "web", "port": app_port, "protocol": "http", "path": "/"}]}
    async with catalogue.sessions() as session, session.begin():
        await add_app(session, "echo", flavours=(("cpu", IMAGE, []),), run=ws)
    port = uvicorn.Server(server_config(create_app(settings, backend=backend), settings))
    tasks = [await _serve(app), await _serve(port)]
    await add_user(catalogue, "alice")
    await add_user(catalogue, "bob")
    alice = Browser(f"http://localhost:{number}")
    try:
        await alice.sign_in("alice")
        setup_id = await alice.install("echo")
        host = f"echo-{setup_id}.apps.localhost:{number}"

        async def opened() -> int:
            return (await alice.open(setup_id)).status_code

        await eventually(opened, "the app to serve", until=lambda status: status != 503)
        yield Proxied(number, setup_id, alice, host)
    finally:
        await alice.close()
        for server in (port, app):
            server.should_exit = True
        await asyncio.gather(*tasks)


async def test_messages_travel_both_ways_whole_and_in_order(proxied: Proxied) -> None:
    socket = await proxied.connect(proxied.alice, subprotocols=["chat.v1"])
    try:
        assert socket.subprotocol == "chat.v1"  # the app's choice, passed back
        seen = json.loads(await socket.recv())
        assert seen["host"] == proxied.host
        assert "port_session" not in seen.get("cookie", "")  # Port's cookies stay
        assert "port_app" not in seen.get("cookie", "")
        assert seen["x-forwarded-proto"] == "http"
        for i in range(20):
            await socket.send(f"message {i}")
        assert [await socket.recv() for _ in range(20)] == [f"message {i}" for i in range(20)]
        big = bytes(range(256)) * (8 << 12)  # 8 MB in one binary message
        await socket.send(big)
        assert await socket.recv() == big
    finally:
        await socket.close()


async def test_only_the_owner_opens_a_websocket(proxied: Proxied) -> None:
    for name in ("anonymous", "bob"):
        stranger = Browser(f"http://localhost:{proxied.port_number}")
        try:
            if name == "bob":
                await stranger.sign_in("bob")
                await stranger.open(proxied.setup_id)  # not his: no entry, no cookie
            with pytest.raises(InvalidStatus) as refused:
                await proxied.connect(stranger)
            assert refused.value.response.status_code in (403, 404), name
        finally:
            await stranger.close()
