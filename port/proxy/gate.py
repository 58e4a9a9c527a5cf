"""App origins: every request whose ``Host`` is under ``PORT_APPS_DOMAIN`` comes here
instead of to Port's pages and API.

For each request: the Setup the host names; ``/.port/enter`` redeems an entry code;
otherwise the origin's cookie must let its holder into that Setup (``apps.entry``), or a
browser is sent to Port's origin to get a code (and to sign in first, if needed). Then
the request goes to the Setup's serving Pod (``apps.targets``), or, while none serves,
a page says why. Port's credentials (``Authorization``, Port's cookies, the origin's own
cookie) never reach the app.

Two small caches keep the per-request cost off the database: entries are rechecked
every ``RECHECK_SECONDS`` (a sign-out elsewhere takes effect within that), targets every
``TARGET_SECONDS``, and at once when their Pod stops answering (an update moved on).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from http.cookies import CookieError, SimpleCookie
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from port.accounts.known import KnownSessions
from port.apps.addresses import ENTER_PATH, AppOrigins, setup_id_of
from port.apps.entry import cookie_name, entered, redeem
from port.apps.targets import Target, find_target
from port.assets import TEMPLATES_DIR
from port.proxy.relay import Headers, Receive, Relay, Scope, Send, Unreachable
from port.settings import Settings

log = logging.getLogger(__name__)

TARGET_SECONDS = 1.0
TARGETS_MAX = 10_000
# Never passed on to an app: Port's own credentials and the origin's entry cookie.
PORT_COOKIES = ("port_session", "port_signin", "port_app")
STRIPPED = frozenset(
    {b"authorization", b"cookie", b"forwarded", b"x-real-ip"}
    | {b"x-forwarded-for", b"x-forwarded-host", b"x-forwarded-proto", b"x-forwarded-port"}
)
ASGIApp = Callable[[Scope, Receive, Send], Any]


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope.get("headers") or ():
        if key == name:
            return bytes(value)
    return None


def _cookies(scope: Scope) -> dict[str, str]:
    raw = b"; ".join(v for k, v in scope.get("headers") or () if k == b"cookie")
    jar: SimpleCookie = SimpleCookie()
    try:
        jar.load(raw.decode("latin-1"))
    except CookieError:
        return {}
    return {key: morsel.value for key, morsel in jar.items()}


def _app_cookies(scope: Scope) -> bytes | None:
    """The request's ``Cookie`` header without Port's cookies (``__Host-`` ones too)."""
    kept = []
    for key, value in scope.get("headers") or ():
        if key != b"cookie":
            continue
        for pair in value.split(b";"):
            name = pair.strip().split(b"=", 1)[0].decode("latin-1").removeprefix("__Host-")
            if pair.strip() and name not in PORT_COOKIES:
                kept.append(pair.strip())
    return b"; ".join(kept) if kept else None


def _local(target: str | None, default: str) -> str:
    """A path of this origin to go to after entering, never another site."""
    if not target or not target.startswith("/") or target.startswith(("//", "/\\")):
        return default
    return target


class AppsGate:
    """Wraps Port's own ASGI handler; answers for app origins, passes the rest on."""

    def __init__(
        self,
        port_app: ASGIApp,
        settings: Settings,
        sessions: async_sessionmaker[AsyncSession],
        relay: Relay,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.port_app = port_app
        self.settings = settings
        self.sessions = sessions
        self.relay = relay
        self.origins = AppOrigins.of(settings)
        self.cookie = cookie_name(self.origins.secure)
        self.port_url = settings.public_url.rstrip("/")
        self.entries = KnownSessions(clock)
        self.clock = clock
        self._targets: dict[int, tuple[float, Target | None]] = {}
        port_origin = "{0.scheme}://{0.netloc}".format(urlsplit(self.port_url))
        # The gate's own pages take their style and logo from Port's origin, nothing else.
        self._policy = (
            f"default-src 'none'; style-src {port_origin}; img-src {port_origin}; "
            "frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
        ).encode()
        self._pages = Environment(
            loader=FileSystemLoader(TEMPLATES_DIR), autoescape=True, undefined=StrictUndefined
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            label = self.origins.label_of((_header(scope, b"host") or b"").decode("latin-1"))
            if label is not None:
                try:
                    await self.serve(label, scope, receive, send)
                except Exception:
                    log.exception("proxy: %s %s failed", scope["type"], scope.get("path"))
                    if scope["type"] == "http":
                        await self._page(send, 500, "Something went wrong", None)
                return
        await self.port_app(scope, receive, send)

    async def serve(self, label: str, scope: Scope, receive: Receive, send: Send) -> None:
        http = scope["type"] == "http"
        setup_id = setup_id_of(label)
        if setup_id is None:
            await self._refuse(scope, send, 404, "There is no app at this address.")
        elif http and scope["path"] == ENTER_PATH:
            await self._enter(scope, send, setup_id)
        elif await self._entrant(scope, setup_id) is None:
            await self._send_to_port(scope, send, setup_id)
        else:
            target = await self._target(setup_id)
            if target is None or target.slug != label:
                await self._refuse(scope, send, 404, "There is no app at this address.")
            else:
                await self._forward(scope, receive, send, target)

    async def _forward(self, scope: Scope, receive: Receive, send: Send, target: Target) -> None:
        """To the serving Pod; once more to a Pod found anew if it does not answer."""
        headers = self._forwarded(scope)
        found: Target | None = target
        for attempt in range(2):
            if found is None or found.upstream is None:
                break
            try:
                if scope["type"] == "http":
                    await self.relay.http(scope, receive, send, found.upstream, headers)
                else:
                    await self.relay.websocket(scope, receive, send, found.upstream, headers)
                return
            except Unreachable as exc:
                # Its Pod is gone or going (an update moved on, a crash): look again.
                log.info("proxy: setup %s at %s: %s", found.setup_id, found.upstream, exc)
                self._targets.pop(found.setup_id, None)
                found = await self._target(found.setup_id) if attempt == 0 else found
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1013, "reason": ""})
        else:
            await self._status(send, found)

    async def _send_to_port(self, scope: Scope, send: Send, setup_id: int) -> None:
        """No entry: a browser goes to Port's origin for a code (signing in on the way)."""
        if scope["type"] == "http" and scope["method"] in ("GET", "HEAD"):
            query = (scope.get("query_string") or b"").decode("latin-1")
            back = quote(scope["path"] + (f"?{query}" if query else ""), safe="")
            await self._redirect(send, f"{self.port_url}/setups/{setup_id}/open?next={back}")
        else:
            await self._refuse(scope, send, 401, "Open the app from Port to enter it.")

    # --- entering ------------------------------------------------------------------------

    async def _enter(self, scope: Scope, send: Send, setup_id: int) -> None:
        params = parse_qs((scope.get("query_string") or b"").decode("latin-1"))
        code = (params.get("code") or [""])[0]
        async with self.sessions() as session, session.begin():
            secret = await redeem(session, code, setup_id)
        if secret is None:
            message = "Entry links work once, for a minute. Open the app from Port again."
            link = f"{self.port_url}/setups/{setup_id}"
            await self._page(send, 403, "This link has expired", message, link=link)
            return
        cookie = (
            f"{self.cookie}={secret}; Path=/; HttpOnly; SameSite=Lax; "
            f"Max-Age={self.settings.session_max_hours * 3600}"
        )
        if self.origins.secure:
            cookie += "; Secure"
        target = _local((params.get("next") or [None])[0], "/")
        await self._redirect(send, target, [(b"set-cookie", cookie.encode())])

    async def _entrant(self, scope: Scope, setup_id: int) -> object | None:
        secret = _cookies(scope).get(self.cookie)
        if not secret:
            return None
        key = f"{setup_id}/{secret}"
        if (known := self.entries.get(key)) is not None:
            return known
        async with self.sessions() as session, session.begin():
            principal = await entered(session, secret, setup_id, self.settings)
        if principal is not None:
            self.entries.put(key, principal)
        return principal

    # --- where to ------------------------------------------------------------------------

    async def _target(self, setup_id: int) -> Target | None:
        now = self.clock()
        kept = self._targets.get(setup_id)
        if kept is not None and now - kept[0] < TARGET_SECONDS:
            return kept[1]
        async with self.sessions() as session:
            target = await find_target(session, setup_id)
        if len(self._targets) >= TARGETS_MAX:
            self._targets.clear()
        self._targets[setup_id] = (now, target)
        return target

    def _forwarded(self, scope: Scope) -> Headers:
        """The headers the app sees: the client's, minus Port's credentials, plus how the
        request reached Port (Port is the edge: clients' own ``X-Forwarded-*`` go)."""
        headers = [(k, v) for k, v in scope["headers"] if k not in STRIPPED]
        if (cookies := _app_cookies(scope)) is not None:
            headers.append((b"cookie", cookies))
        client = scope.get("client")
        if client:
            headers.append((b"x-forwarded-for", str(client[0]).encode()))
        headers.append((b"x-forwarded-proto", self.origins.scheme.encode()))
        if (host := _header(scope, b"host")) is not None:
            headers.append((b"x-forwarded-host", host))
        return headers

    # --- answers of the gate itself ------------------------------------------------------

    async def _refuse(self, scope: Scope, send: Send, status: int, message: str) -> None:
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008, "reason": ""})
            return
        title = {401: "Sign-in needed", 403: "Not yours", 404: "Not found"}.get(status, "Refused")
        await self._page(send, status, title, message, link=f"{self.port_url}/")

    async def _status(self, send: Send, target: Target | None) -> None:
        """503 with what the Setup is doing; a page that reloads while it starts."""
        if target is None:
            await self._page(send, 404, "Not found", "This app was deleted.")
            return
        starting = target.status.value in ("PENDING", "PULLING", "STARTING", "RUNNING")
        await self._page(
            send,
            503,
            f"{target.app_name} is {target.status.value.lower()}",
            target.message
            or (
                "It will be here in a moment; this page reloads itself."
                if starting
                else "Start it from Port to open it."
            ),
            link=f"{self.port_url}/setups/{target.setup_id}",
            refresh=starting,
        )

    async def _page(
        self,
        send: Send,
        status: int,
        title: str,
        message: str | None,
        *,
        link: str | None = None,
        refresh: bool = False,
    ) -> None:
        body = (
            self._pages.get_template("app_status.html")
            .render(
                title=title, message=message, link=link, port_url=self.port_url, refresh=refresh
            )
            .encode()
        )
        headers = [
            (b"content-type", b"text/html; charset=utf-8"),
            (b"cache-control", b"no-store"),
            (b"content-security-policy", self._policy),
            (b"x-content-type-options", b"nosniff"),
        ]
        if refresh:
            headers.append((b"retry-after", b"3"))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    @staticmethod
    async def _redirect(send: Send, location: str, headers: Headers | None = None) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": 303,
                "headers": [
                    (b"location", location.encode("latin-1", "replace")),
                    (b"cache-control", b"no-store"),
                    (b"content-length", b"0"),
                    *(headers or ()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": b""})
