"""Who is looking at a page, and the checks on what a page's form sends.

A signed-in browser carries the session cookie (``port_session``; ``__Host-port_session``
when Port is served over https, so no other site, app origins on sub-domains included,
can plant one). It is ``HttpOnly`` and ``SameSite=Lax``. Every state-changing form
carries a form token derived from the cookie it is sent with (the session's, or before
sign-in the short-lived ``port_signin`` cookie), and a request whose ``Origin`` is not
Port's own is refused.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any, cast
from urllib.parse import urlsplit

from litestar import Request
from litestar.datastructures import Cookie
from litestar.exceptions import HTTPException
from litestar.response import Redirect

from port.accounts.known import KnownSessions
from port.accounts.websessions import Lifetime, form_token, form_token_matches, session_principal
from port.principal import Principal
from port.settings import Settings
from port.web.served import Served

SIGN_IN_COOKIE = "port_signin"  # "__Host-" in front over https, as for the session
SIGN_IN_COOKIE_SECONDS = 30 * 60  # how long a sign-in form stays good


@dataclass(frozen=True, slots=True)
class Cookies:
    """The names and flags of Port's cookies under ``settings``."""

    secure: bool
    session: str
    sign_in: str
    lifetime: Lifetime

    @classmethod
    def of(cls, settings: Settings) -> Cookies:
        secure = settings.public_url.startswith("https://")
        return cls(
            secure=secure,
            session="__Host-port_session" if secure else "port_session",
            sign_in=f"__Host-{SIGN_IN_COOKIE}" if secure else SIGN_IN_COOKIE,
            lifetime=Lifetime.of(settings),
        )

    def session_cookie(self, secret: str) -> Cookie:
        return Cookie(
            key=self.session,
            value=secret,
            max_age=int(self.lifetime.absolute.total_seconds()),
            path="/",
            secure=self.secure,
            httponly=True,
            samesite="lax",
        )

    def gone(self, key: str) -> Cookie:
        """A cookie that removes ``key`` from the browser."""
        return Cookie(key=key, value="", max_age=0, path="/", secure=self.secure, httponly=True)

    def sign_in_cookie(self, secret: str) -> Cookie:
        # Strict: a form posted from another site arrives without it, and is refused.
        return Cookie(
            key=self.sign_in,
            value=secret,
            max_age=SIGN_IN_COOKIE_SECONDS,
            path="/",
            secure=self.secure,
            httponly=True,
            samesite="strict",
        )


@dataclass(frozen=True, slots=True)
class Viewer:
    """A signed-in visitor: who, and the token their forms must carry."""

    principal: Principal
    secret: str

    @property
    def name(self) -> str:
        return self.principal.name

    @property
    def is_admin(self) -> bool:
        return self.principal.is_admin

    @property
    def form_token(self) -> str:
        return form_token(self.secret)


def known_sessions(request: Request[Any, Any, Any]) -> KnownSessions:
    """This application's ``KnownSessions`` (one per app, made on first use)."""
    state = request.app.state
    known = state.get("known_sessions")
    if known is None:
        known = KnownSessions()
        state["known_sessions"] = known
    return cast(KnownSessions, known)


async def viewer_of(request: Request[Any, Any, Any], served: Served) -> Viewer | None:
    """The signed-in visitor of ``request``, or None (no cookie, or an ended session)."""
    cookies = Cookies.of(served.settings)
    secret = request.cookies.get(cookies.session)
    if not secret:
        return None
    known = known_sessions(request)
    principal = known.get(secret)
    if principal is None:
        async with served.sessions() as session, session.begin():
            principal = await session_principal(session, secret, cookies.lifetime)
        if principal is None:
            return None
        known.put(secret, principal)
    return Viewer(principal, secret)


def sign_in_secret(request: Request[Any, Any, Any], cookies: Cookies) -> tuple[str, bool]:
    """The sign-in cookie's value, and whether it is new (then the answer must set it)."""
    kept = request.cookies.get(cookies.sign_in)
    if kept and len(kept) <= 64:
        return kept, False
    return secrets.token_urlsafe(32), True


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def check_origin(request: Request[Any, Any, Any], settings: Settings) -> None:
    """Refuse a form sent from a page of another origin (browsers say where from)."""
    origin = request.headers.get("origin")
    if origin is None:
        return  # not every browser sends it on every form; the form token still must match
    own = {_origin(str(request.base_url)), _origin(settings.public_url)}
    if origin.lower() not in own:
        raise HTTPException(status_code=403, detail="This form was sent from another site.")


async def form_of(
    request: Request[Any, Any, Any], settings: Settings, secret: str | None
) -> dict[str, str]:
    """The fields of a posted form whose token matches the cookie ``secret``; 403 otherwise."""
    check_origin(request, settings)
    form = await request.form()
    fields = {key: str(value) for key, value in form.items() if isinstance(value, str)}
    if secret is None or not form_token_matches(secret, fields.get("form_token", "")):
        raise HTTPException(
            status_code=403,
            detail="This form has expired or did not come from Port: open the page again.",
        )
    return fields


def to_sign_in(request: Request[Any, Any, Any]) -> Redirect:
    """To the sign-in page, and back here afterwards."""
    back = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return Redirect("/sign-in", query_params={"next": back}, status_code=303)


def safe_next(target: str | None) -> str:
    """Where to go after sign-in: a path on Port itself, never another site."""
    if not target or not target.startswith("/") or target.startswith(("//", "/\\")):
        return "/"
    return target
