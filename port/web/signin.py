"""Signing in and out of the pages.

``GET /sign-in`` shows the form (and sets the short-lived ``port_signin`` cookie its
form token is made from); ``POST /sign-in`` checks the name and password, slowed down
after repeated failures (``port.accounts.throttle``), and on success starts a new
session: a new cookie value at every sign-in, so a cookie planted before sign-in is
worth nothing after it. ``POST /sign-out`` ends the session.
"""

from __future__ import annotations

import math
from typing import Any

from litestar import Request, get, post
from litestar.datastructures import State
from litestar.params import FromQuery
from litestar.response import Redirect, Template

from port.accounts import service as accounts
from port.accounts.throttle import SignInThrottle
from port.accounts.websessions import end_session, form_token, start_session
from port.web.served import render, served_of
from port.web.visitor import (
    Cookies,
    form_of,
    known_sessions,
    safe_next,
    sign_in_secret,
    viewer_of,
)

WRONG = "Wrong name or password."  # the same words for an unknown name


def _form(
    request: Request[Any, Any, Any],
    cookies: Cookies,
    *,
    next_page: str,
    name: str = "",
    error: str | None = None,
    code: int = 200,
    headers: dict[str, str] | None = None,
) -> Template:
    secret, new = sign_in_secret(request, cookies)
    answer = render(
        "sign_in.html",
        None,
        code,
        cookies=[cookies.sign_in_cookie(secret)] if new else [],
        form_token=form_token(secret),
        next=next_page,
        name=name,
        error=error,
    )
    answer.headers.update(headers or {})
    return answer


@get("/sign-in", name="sign-in", include_in_schema=False)
async def sign_in_page(
    request: Request[Any, Any, Any], state: State, next: FromQuery[str | None] = None
) -> Template | Redirect:
    served = served_of(state)
    if await viewer_of(request, served) is not None:
        return Redirect(safe_next(next), status_code=303)
    return _form(request, Cookies.of(served.settings), next_page=safe_next(next))


@post("/sign-in", include_in_schema=False)
async def sign_in(
    request: Request[Any, Any, Any], state: State, throttle: SignInThrottle
) -> Template | Redirect:
    served = served_of(state)
    cookies = Cookies.of(served.settings)
    fields = await form_of(request, served.settings, request.cookies.get(cookies.sign_in))
    name = fields.get("name", "").strip()
    password = fields.get("password", "")
    next_page = safe_next(fields.get("next"))
    address = request.client.host if request.client else "unknown"
    wait = throttle.wait(name, address)
    if wait > 0:
        seconds = math.ceil(wait)
        return _form(
            request,
            cookies,
            next_page=next_page,
            name=name,
            error=f"Too many failed sign-ins: try again in {seconds} s.",
            code=429,
            headers={"Retry-After": str(seconds)},
        )
    with throttle.attempt(name, address):
        async with served.sessions() as session:
            user = await accounts.sign_in(session, name, password)
    if user is None:
        throttle.failed(name, address)
        return _form(request, cookies, next_page=next_page, name=name, error=WRONG, code=401)
    async with served.sessions() as session, session.begin():
        old = request.cookies.get(cookies.session)
        if old:
            await end_session(session, old)
            known_sessions(request).forget(old)
        secret = await start_session(session, user)  # its id and name: loaded, detached
    throttle.succeeded(name)
    return Redirect(
        next_page,
        status_code=303,
        cookies=[cookies.session_cookie(secret), cookies.gone(cookies.sign_in)],
    )


@post("/sign-out", include_in_schema=False)
async def sign_out(request: Request[Any, Any, Any], state: State) -> Redirect:
    served = served_of(state)
    cookies = Cookies.of(served.settings)
    secret = request.cookies.get(cookies.session)
    await form_of(request, served.settings, secret)
    if secret:
        async with served.sessions() as session, session.begin():
            await end_session(session, secret)
        known_sessions(request).forget(secret)
    return Redirect("/", status_code=303, cookies=[cookies.gone(cookies.session)])
