"""Carrying one request to a Pod and its answer back, streamed both ways.

HTTP goes through one shared ``httpx.AsyncClient`` (kept-alive connections to Pods),
bodies as they come in either direction: nothing is buffered whole, so a 50 MB upload
or download costs a few chunks of memory. Websockets are relayed message by message
(``websockets`` towards the Pod). Hop-by-hop headers stay on their hop; the caller
passes the headers the Pod may see.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import suppress
from typing import Any

import httpx
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

log = logging.getLogger(__name__)

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
Headers = list[tuple[bytes, bytes]]

CONNECT_SECONDS = 5.0  # a Pod that takes longer to accept is not there
MESSAGE_MAX = 16 << 20  # largest websocket message relayed, as uvicorn's default
HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
    }
)
# Made by websockets itself for the Pod's side of a handshake.
WEBSOCKET_OWN = frozenset(
    {b"host", b"sec-websocket-key", b"sec-websocket-version", b"sec-websocket-extensions"}
    | {b"sec-websocket-protocol", b"content-length"}
)


class Unreachable(Exception):
    """The Pod refused or did not take the connection: nothing of the request was sent,
    so it may be tried again elsewhere."""


def end_to_end(headers: Iterable[tuple[bytes, bytes]]) -> Headers:
    """``headers`` without the hop-by-hop ones, and without those ``Connection`` names."""
    pairs = list(headers)
    named = {
        token.strip().lower()
        for key, value in pairs
        if key.lower() == b"connection"
        for token in value.split(b",")
    }
    return [(k, v) for k, v in pairs if k.lower() not in HOP_BY_HOP and k.lower() not in named]


def host_only_cookie(value: bytes) -> bytes:
    """A ``Set-Cookie`` value without ``Domain``: an app may set cookies for its own
    origin only, never for Port's or another app's (cookie tossing)."""
    parts = value.split(b";")
    kept = [parts[0], *(p for p in parts[1:] if p.strip().lower().split(b"=")[0] != b"domain")]
    return b";".join(kept)


class _Body:
    """The request body as the client sends it; ``started`` once the Pod read any."""

    def __init__(self, receive: Receive) -> None:
        self.receive = receive
        self.started = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        self.started = True
        while True:
            message = await self.receive()
            if message["type"] == "http.disconnect":
                raise httpx.ReadError("the client went away")
            if chunk := message.get("body", b""):
                yield chunk
            if not message.get("more_body", False):
                return


def _has_body(headers: Headers) -> bool:
    for key, value in headers:
        name = key.lower()
        if name == b"transfer-encoding" or (name == b"content-length" and value.strip() != b"0"):
            return True
    return False


class Relay:
    """One per server: its client keeps connections to Pods between requests."""

    def __init__(self) -> None:
        self.client = httpx.AsyncClient(
            timeout=httpx.Timeout(connect=CONNECT_SECONDS, read=None, write=None, pool=None),
            limits=httpx.Limits(max_connections=None, max_keepalive_connections=64),
            follow_redirects=False,
            trust_env=False,  # never an HTTP proxy of the environment between Port and Pods
        )

    async def close(self) -> None:
        await self.client.aclose()

    async def http(
        self, scope: Scope, receive: Receive, send: Send, upstream: str, headers: Headers
    ) -> None:
        """Send the request to ``upstream`` (``host:port``) and its answer back.

        Raises ``Unreachable`` when the Pod did not take the connection; any later
        failure ends the answer where it is (a 502 when nothing was sent yet)."""
        target = scope.get("raw_path") or scope["path"].encode()
        query = scope.get("query_string") or b""
        url = f"http://{upstream}{target.decode('latin-1')}"
        if query:
            url += "?" + query.decode("latin-1")
        body = _Body(receive) if _has_body(headers) else None
        request = self.client.build_request(
            scope["method"], url, headers=end_to_end(headers), content=body
        )
        try:
            response = await self.client.send(request, stream=True)
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            if body is None or not body.started:
                raise Unreachable(str(exc)) from exc
            await _bad_gateway(send, "the app closed the connection")
            return
        except httpx.HTTPError as exc:
            log.info("proxy: %s %s failed: %s", scope["method"], url, exc)
            await _bad_gateway(send, "the app did not answer")
            return
        try:
            await send(
                {
                    "type": "http.response.start",
                    "status": response.status_code,
                    "headers": [
                        (k, host_only_cookie(v) if k.lower() == b"set-cookie" else v)
                        for k, v in end_to_end(response.headers.raw)
                    ],
                }
            )
            if scope["method"] != "HEAD":
                async for chunk in response.aiter_raw():
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b""})
        except httpx.HTTPError as exc:  # the answer is cut: the client sees it end early
            log.info("proxy: %s %s broke off: %s", scope["method"], url, exc)
        finally:
            await response.aclose()

    async def websocket(
        self, scope: Scope, receive: Receive, send: Send, upstream: str, headers: Headers
    ) -> None:
        """Relay a websocket to ``upstream`` until either side closes it.

        Raises ``Unreachable`` when the Pod did not take the connection (the client's
        handshake is still open then)."""
        target = (scope.get("raw_path") or scope["path"].encode()).decode("latin-1")
        query = (scope.get("query_string") or b"").decode("latin-1")
        # The URI names the client's Host (websockets sends it, as the HTTP relay does);
        # the connection goes to the Pod.
        host = next((v.decode("latin-1") for k, v in headers if k.lower() == b"host"), upstream)
        uri = f"ws://{host}{target}" + (f"?{query}" if query else "")
        pod_host, pod_port = upstream.rsplit(":", 1)
        forwarded = [
            (k.decode("latin-1"), v.decode("latin-1"))
            for k, v in end_to_end(headers)
            if k.lower() not in WEBSOCKET_OWN
        ]
        try:
            pod = await connect(
                uri,
                host=pod_host,
                port=int(pod_port),
                additional_headers=forwarded,
                subprotocols=scope.get("subprotocols") or None,
                open_timeout=CONNECT_SECONDS,
                max_size=MESSAGE_MAX,
                compression=None,
                proxy=None,
                user_agent_header=None,
            )
        except (OSError, TimeoutError) as exc:
            raise Unreachable(str(exc)) from exc
        except InvalidStatus as exc:  # the app refused the handshake: so does Port
            await send({"type": "websocket.close", "code": 1008, "reason": ""})
            log.info("proxy: websocket %s refused by the app: %s", uri, exc)
            return
        except InvalidHandshake as exc:
            await send({"type": "websocket.close", "code": 1011, "reason": ""})
            log.info("proxy: websocket %s failed: %s", uri, exc)
            return
        async with pod:
            await send({"type": "websocket.accept", "subprotocol": pod.subprotocol})
            await _both_ways(receive, send, pod)


async def _both_ways(receive: Receive, send: Send, pod: ClientConnection) -> None:
    async def from_client() -> None:
        while True:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                await pod.close(message.get("code", 1000))
                return
            if message.get("bytes") is not None:
                await pod.send(message["bytes"])
            elif message.get("text") is not None:
                await pod.send(message["text"])

    async def from_pod() -> None:
        try:
            async for data in pod:
                key = "text" if isinstance(data, str) else "bytes"
                await send({"type": "websocket.send", key: data})
        except ConnectionClosed:
            pass
        code = pod.close_code or 1000
        with suppress(Exception):  # the client may be gone already
            await send({"type": "websocket.close", "code": code if code != 1006 else 1011})

    tasks = [asyncio.create_task(from_client()), asyncio.create_task(from_pod())]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with suppress(asyncio.CancelledError, ConnectionClosed, OSError):
                await task


async def _bad_gateway(send: Send, why: str) -> None:
    body = f"502 Bad Gateway: {why}.\n".encode()
    await send(
        {
            "type": "http.response.start",
            "status": 502,
            "headers": [(b"content-type", b"text/plain; charset=utf-8")],
        }
    )
    await send({"type": "http.response.body", "body": body})
