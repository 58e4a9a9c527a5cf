"""The Litestar application: GraphQL at /graphql, webhooks, health, readiness and
metrics, with the anonymous response cache in front.

``build_app`` makes it over an ``ApiState``; ``port.work.server.create_app`` composes
that state and what runs beside the server.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager, nullcontext
from typing import Any

from litestar import Litestar, MediaType, Request, Response, get
from litestar.datastructures import State
from litestar.enums import ScopeType
from litestar.exceptions import HTTPException
from litestar.template import TemplateConfig
from litestar.types import (
    ASGIApp,
    ControllerRouterHandler,
    HTTPRequestEvent,
    Message,
    Receive,
    ReceiveMessage,
    Scope,
    Send,
)
from sqlalchemy import text
from strawberry.litestar import make_graphql_controller

from port.accounts.bearer import principal_for
from port.api.cache import reads_catalogue
from port.api.context import ApiState, get_context
from port.api.schema import build_schema
from port.api.webhooks import PATHS as WEBHOOK_PATHS
from port.api.webhooks import webhook
from port.assets import PAGE_HEADERS, graphiql_html, static_router
from port.errors import ClientError, Unauthenticated
from port.metrics import HTTP_LATENCY, HTTP_REQUESTS, exposition

log = logging.getLogger(__name__)

# metric labels: no free-form paths
BODY_SECONDS = 30.0  # for a whole request body (at most PORT_MAX_BODY_KB)
MAX_JSON_DEPTH = 64  # a GraphQL body's variables need a few levels, never hundreds
_STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"')  # JSON strings, whose brackets do not nest
_BRACKETS = re.compile(r"[\[\]{}]")
ROUTES = {"/graphql", "/healthz", "/readyz", "/metrics", *WEBHOOK_PATHS}


async def _log_unexpected(exc: Exception, scope: Scope) -> None:
    """A 500's cause in the log (Litestar logs exceptions only in debug mode); what a
    client did wrong (a 4xx, a ClientError: a bad token, a page that wants a sign-in) is
    its answer's business, not the log's: anyone could flood it otherwise."""
    if isinstance(exc, ClientError) or (isinstance(exc, HTTPException) and exc.status_code < 500):
        return
    log.error(
        "unexpected error answering %s %s", scope.get("method", ""), scope["path"], exc_info=exc
    )


@get("/healthz", media_type=MediaType.TEXT, sync_to_thread=False)
def healthz() -> str:
    """The process answers."""
    return "ok"


@get("/readyz", media_type=MediaType.TEXT)
async def readyz(state: State) -> Response[str]:
    """The database answers too."""
    try:
        async with state.api.engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
    except Exception:  # noqa: BLE001 - any failure means "not ready", and says so
        return Response("database unreachable", status_code=503, media_type=MediaType.TEXT)
    return Response("ok", media_type=MediaType.TEXT)


@get("/metrics", media_type="text/plain; version=0.0.4", sync_to_thread=False)
def metrics() -> bytes:
    """Prometheus text format."""
    return exposition()


def _unauthenticated(_request: Request[Any, Any, Any], exc: Unauthenticated) -> Response[Any]:
    """A wrong, revoked or expired credential is a 401 with a coded GraphQL error body."""
    return Response(
        {"data": None, "errors": [{"message": str(exc), "extensions": exc.extensions}]},
        status_code=401,
        headers={"WWW-Authenticate": "Bearer"},
    )


def _measured(app: ASGIApp) -> ASGIApp:
    """Count and time every HTTP request by method, route and status."""

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await app(scope, receive, send)
            return
        method = scope["method"]
        start = time.perf_counter()
        status = 500

        async def send_and_record(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await app(scope, receive, send_and_record)
        finally:
            route = scope["path"] if scope["path"] in ROUTES else "other"
            HTTP_REQUESTS.labels(method, route, str(status)).inc()
            HTTP_LATENCY.labels(method, route).observe(time.perf_counter() - start)

    return middleware


def _body_deadline(max_body: int) -> Callable[[ASGIApp], ASGIApp]:
    """A request's body must arrive whole within ``BODY_SECONDS``: a client that sends a
    byte now and then holds no connection and no task for longer (apps' own uploads go
    through the app proxy, before this). Bodies are small here (``max_body``): read
    first, then handed on as they came."""

    def wrap(app: ASGIApp) -> ASGIApp:
        async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != ScopeType.HTTP or scope["method"] in ("GET", "HEAD", "OPTIONS"):
                await app(scope, receive, send)
                return
            try:
                async with asyncio.timeout(BODY_SECONDS):
                    raw, complete = await _read_body(receive, max_body)
            except TimeoutError:
                late = _error(f"the request body did not arrive within {BODY_SECONDS:g} s")
                await _send_json(send, late, status=408)
                return
            await app(scope, _replay(raw, complete, receive), send)

        return middleware

    return wrap


def _cached(state: ApiState, max_body: int) -> Callable[[ASGIApp], ASGIApp]:
    """Answer catalogue queries from the shared cache; fill it from fresh answers. A
    credential is verified first (a bad one goes on to be refused as usual)."""
    cache = state.cache

    def wrap(app: ASGIApp) -> ASGIApp:
        async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
            if (
                scope["type"] != ScopeType.HTTP
                or scope["method"] != "POST"
                or scope["path"] != "/graphql"
            ):
                await app(scope, receive, send)
                return
            credential = next(
                (value for name, value in scope["headers"] if name == b"authorization"), None
            )
            raw, complete = await _read_body(receive, max_body)
            replay = _replay(raw, complete, receive)
            body, problem = _json_body(scope, raw) if complete else (None, None)
            if problem is not None:
                await _send_json(send, _error(problem), status=400)
                return
            signed_in = credential is not None
            read = isinstance(body, dict) and reads_catalogue(body, signed_in=signed_in)
            # A catalogue read executes in its turn (PORT_API_CATALOGUE_READS at once).
            turn: AbstractAsyncContextManager[object] = (
                state.catalogue_reads if read else nullcontext()
            )
            key = cache.key(body, signed_in=signed_in) if read and isinstance(body, dict) else None
            if (
                key is not None
                and credential is not None
                and not await _verified(state, credential)
            ):
                key = None
            if key is None:
                async with turn:
                    await app(scope, replay, send)
                return
            kept, fresh = cache.get(key)
            running = cache.computing(key)
            if kept is not None and (fresh or running is not None):
                await _send_json(send, kept)  # stale only while another request refreshes
                return
            if running is not None:
                answer = await asyncio.shield(running)
                if answer is not None:
                    await _send_json(send, answer)
                    return
            cache.start(key)
            kept_answer: list[bytes] = []
            try:
                async with turn:
                    await app(scope, replay, _recording(send, kept_answer.append))
            finally:
                cache.finish(key, kept_answer[0] if kept_answer else None)

        return middleware

    return wrap


async def _verified(state: ApiState, credential: bytes) -> bool:
    """Whether the ``Authorization`` value proves a caller (as ``context_for`` checks).
    One proved in the last ``RECHECK_SECONDS`` needs no query: a shared answer then
    costs what an anonymous one does. A token revoked here is forgotten at once; one
    revoked or deactivated elsewhere is refused within those seconds, as in streams."""
    header = credential.decode("latin-1")
    if state.callers.get(header) is not None:
        return True
    try:
        async with state.sessions() as session, session.begin():
            caller = await principal_for(session, header, state.verifier)
    except Unauthenticated:
        return False
    if caller is None:
        return False
    state.callers.put(header, caller)
    return True


async def _read_body(receive: Receive, limit: int) -> tuple[bytes, bool]:
    """The request body, up to ``limit`` bytes; False when more was left unread."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b"".join(chunks), False
        chunk = message.get("body", b"")
        chunks.append(chunk)
        size += len(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks), True
        if size > limit:
            return b"".join(chunks), False


def _replay(raw: bytes, complete: bool, receive: Receive) -> Receive:
    """A receive that first hands out what was already read."""
    sent = False

    async def replay() -> ReceiveMessage:
        nonlocal sent
        if not sent:
            sent = True
            first: HTTPRequestEvent = {
                "type": "http.request",
                "body": raw,
                "more_body": not complete,
            }
            return first
        return await receive()

    return replay


def _json_body(scope: Scope, raw: bytes) -> tuple[Any, str | None]:
    """A JSON request's body, or why it is refused before Strawberry sees it (which
    would answer 500 to what is not UTF-8, not an object, or nested without end).
    Other content types go on untouched."""
    content_type = next((v for k, v in scope["headers"] if k == b"content-type"), b"")
    if not content_type.lower().startswith(b"application/json"):
        return None, None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return None, f"the request body is not UTF-8 (byte {exc.start})"
    depth = 0
    for bracket in _BRACKETS.findall(_STRINGS.sub("", text)):
        depth = depth + 1 if bracket in "[{" else depth - 1
        if depth > MAX_JSON_DEPTH:
            return None, f"the request body nests deeper than {MAX_JSON_DEPTH} levels"
    try:
        body = json.loads(text)
    except ValueError as exc:
        return None, f"the request body is not JSON: {exc}"
    if not isinstance(body, dict | list):  # a list: Strawberry's own word on batching
        return None, 'the request body must be a JSON object: {"query": "..."}'
    return body, None


def _error(message: str) -> bytes:
    error = {"message": message, "extensions": {"code": ClientError.code}}
    return json.dumps({"data": None, "errors": [error]}).encode()


async def _send_json(send: Send, payload: bytes, status: int = 200) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload, "more_body": False})


def _recording(send: Send, keep: Callable[[bytes], None]) -> Send:
    """Pass the response on; hand a successful, error-free JSON body to ``keep``."""
    status = 0
    chunks: list[bytes] = []

    async def recording(message: Message) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                body = b"".join(chunks)
                if status == 200 and b'"errors"' not in body:
                    keep(body)
        await send(message)

    return recording


def build_app(
    state: ApiState,
    lifespan: Callable[[Litestar], AbstractAsyncContextManager[None]],
    pages: Sequence[ControllerRouterHandler] = (),
    template_config: TemplateConfig[Any] | None = None,
) -> Litestar:
    """The Litestar application over ``state``, with ``pages`` (the web UI) beside the
    API; ``lifespan`` starts and stops what runs beside it (port/work/server.py composes
    all of it)."""
    settings = state.settings
    strawberry_controller = make_graphql_controller(
        build_schema(settings),
        path="/graphql",
        context_getter=get_context,
        graphql_ide="graphiql",
    )

    class GraphQLController(strawberry_controller):  # type: ignore[misc,valid-type]
        async def render_graphql_ide(self, request: Request[Any, Any, Any]) -> Response[str]:
            """GraphiQL on Port's own assets (Strawberry's page loads them from a CDN)."""
            return Response(graphiql_html(), media_type=MediaType.HTML, headers=PAGE_HEADERS)

    return Litestar(
        route_handlers=[
            GraphQLController,
            static_router(),
            healthz,
            readyz,
            metrics,
            webhook,
            *pages,
        ],
        template_config=template_config,
        state=State({"api": state}),
        lifespan=[lifespan],
        middleware=[
            _measured,
            _body_deadline(settings.max_body_kb * 1024),
            _cached(state, settings.max_body_kb * 1024),
        ],
        exception_handlers={Unauthenticated: _unauthenticated},
        after_exception=[_log_unexpected],
        request_max_body_size=settings.max_body_kb * 1024,
        debug=False,
    )
