"""Catalogue queries execute in turns (PORT_API_CATALOGUE_READS at once); everything
else goes straight on. Through the real middleware, around an app that counts."""

from __future__ import annotations

import asyncio
import json
from types import SimpleNamespace
from typing import Any

from port.api.app import _cached
from port.api.cache import ResponseCache

CATALOGUE = "{ apps { totalCount } }"
OWN = "{ me { name } }"


class Counting:
    """An ASGI app that holds every request until released, counting those inside."""

    def __init__(self) -> None:
        self.inside: list[str] = []
        self.most = 0
        self.release = asyncio.Event()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        body = json.loads((await receive())["body"])
        self.inside.append(body["query"])
        self.most = max(self.most, self.inside.count(CATALOGUE))
        await self.release.wait()
        self.inside.remove(body["query"])
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})


async def post(app: Any, query: str, n: int = 0) -> None:
    scope = {
        "type": "http",
        "method": "POST",
        "path": "/graphql",
        "headers": [(b"content-type", b"application/json")],
    }
    body = json.dumps({"query": query, "variables": {"n": n}}).encode()
    messages = [{"type": "http.request", "body": body, "more_body": False}]

    async def receive() -> Any:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(_message: Any) -> None:
        pass

    await app(scope, receive, send)


async def settled() -> None:
    for _ in range(20):  # every task runs until it waits
        await asyncio.sleep(0)


async def test_catalogue_queries_take_turns_and_others_go_straight_on() -> None:
    for cache_seconds in (0.0, 5.0):  # caching off or on: the same turns
        state = SimpleNamespace(
            cache=ResponseCache(ttl=cache_seconds), catalogue_reads=asyncio.Semaphore(2)
        )
        inner = Counting()
        app = _cached(state, 1 << 16)(inner)  # type: ignore[arg-type]
        # Distinct variables: the cache must not fold them into one computation.
        reads = [post(app, CATALOGUE, n) for n in range(5)]
        tasks = [asyncio.create_task(r) for r in reads]
        own = asyncio.create_task(post(app, OWN))
        await settled()
        assert inner.inside.count(CATALOGUE) == 2  # the others wait their turn
        assert OWN in inner.inside  # not a catalogue read: no turn to wait for
        inner.release.set()
        await asyncio.gather(*tasks, own)
        assert inner.most == 2
        assert inner.inside == []
