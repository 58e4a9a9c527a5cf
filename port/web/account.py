"""A signed-in user's own account: their password, their API tokens and their Arkitekt
redeem token (stored sealed, never shown: the page says only whether one is stored).

Changing the password asks for the current one (a borrowed, unlocked browser must not
be enough to take an account over) and ends every other session: the browser that
changed it is signed in again with a new session.
"""

from __future__ import annotations

from typing import Any

from litestar import Request, get, post
from litestar.datastructures import State
from litestar.exceptions import HTTPException
from litestar.params import FromPath
from litestar.response import Redirect, Template
from sqlalchemy.ext.asyncio import AsyncSession

from port.accounts import service as accounts
from port.accounts.models import Token, User
from port.accounts.passwords import password_matches
from port.accounts.throttle import SignInThrottle
from port.accounts.websessions import start_session
from port.deploy.secrets import has_redeem_token
from port.errors import ClientError
from port.web.served import Served, render, served_of
from port.web.visitor import Cookies, Viewer, form_of, known_sessions, to_sign_in, viewer_of


async def _signed_in(request: Request[Any, Any, Any], served: Served) -> Viewer:
    viewer = await viewer_of(request, served)
    if viewer is None or viewer.principal.user_id is None:
        raise HTTPException(status_code=401, detail="Sign in to see your account.")
    return viewer


async def _account(
    served: Served,
    session: AsyncSession,
    viewer: Viewer,
    code: int = 200,
    *,
    new_token: str | None = None,
    error: str | None = None,
    field: str | None = None,
    cookies: Any = None,
) -> Template:
    assert viewer.principal.user_id is not None  # noqa: S101 (checked by _signed_in)
    user = await session.get(User, viewer.principal.user_id)
    tokens: list[Token] = await accounts.list_tokens(session, viewer.principal.user_id)
    return render(
        "account.html",
        viewer,
        code,
        cookies=cookies,
        has_password=user is not None and user.password_hash is not None,
        redeem_stored=await has_redeem_token(session, viewer.principal.user_id),
        arkitekt_url=served.settings.arkitekt_url,
        tokens=[t for t in tokens if t.revoked_at is None],
        revoked=[t for t in tokens if t.revoked_at is not None],
        new_token=new_token,
        error=error,
        field=field,
    )


@get("/account", name="account", include_in_schema=False)
async def account_page(request: Request[Any, Any, Any], state: State) -> Template | Redirect:
    served = served_of(state)
    viewer = await viewer_of(request, served)
    if viewer is None or viewer.principal.user_id is None:
        return to_sign_in(request)
    async with served.sessions() as session:
        return await _account(served, session, viewer)


@post("/account/password", include_in_schema=False)
async def change_password(
    request: Request[Any, Any, Any], state: State, throttle: SignInThrottle
) -> Template | Redirect:
    served = served_of(state)
    viewer = await _signed_in(request, served)
    fields = await form_of(request, served.settings, viewer.secret)
    new = fields.get("new_password", "")
    address = request.client.host if request.client else "unknown"
    async with served.sessions() as session, session.begin():
        user = await session.get(User, viewer.principal.user_id)
        assert user is not None  # noqa: S101 (a live session's user exists)
        # A borrowed browser guessing the current password is slowed like a sign-in.
        if throttle.wait(user.name, address) > 0:
            return await _account(
                served,
                session,
                viewer,
                429,
                error="Too many wrong passwords: wait a little.",
                field="current",
            )
        with throttle.attempt(user.name, address):
            matches = await password_matches(user.password_hash, fields.get("current_password", ""))
        if not matches:
            throttle.failed(user.name, address)
            return await _account(
                served,
                session,
                viewer,
                400,
                error="That is not your current password.",
                field="current",
            )
        if new != fields.get("repeat_password"):
            return await _account(
                served, session, viewer, 400, error="The two new passwords differ.", field="repeat"
            )
        try:
            await accounts.set_password(session, user, new, by=viewer.principal)
        except ClientError as exc:
            return await _account(served, session, viewer, 400, error=str(exc), field="new")
        secret = await start_session(session, user)
    known_sessions(request).forget(user_id=user.id)  # every other session just ended
    cookies = Cookies.of(served.settings)
    return Redirect("/account", status_code=303, cookies=[cookies.session_cookie(secret)])


@post("/account/tokens", include_in_schema=False)
async def create_token(request: Request[Any, Any, Any], state: State) -> Template:
    served = served_of(state)
    viewer = await _signed_in(request, served)
    fields = await form_of(request, served.settings, viewer.secret)
    async with served.sessions() as session, session.begin():
        user = await session.get(User, viewer.principal.user_id)
        assert user is not None  # noqa: S101 (a live session's user exists)
        try:
            _token, secret = await accounts.create_token(session, user, fields.get("name", ""))
        except ClientError as exc:
            return await _account(served, session, viewer, 400, error=str(exc), field="token")
        answer = await _account(served, session, viewer, 201, new_token=secret)
    answer.headers["Cache-Control"] = "no-store"  # the secret stays out of every cache
    return answer


@post("/account/tokens/{token_id:int}/revoke", include_in_schema=False)
async def revoke_token(
    request: Request[Any, Any, Any], state: State, token_id: FromPath[int]
) -> Redirect:
    served = served_of(state)
    viewer = await _signed_in(request, served)
    await form_of(request, served.settings, viewer.secret)
    async with served.sessions() as session, session.begin():
        try:
            await accounts.revoke_token(session, token_id, by=viewer.principal)
        except ClientError as exc:
            raise HTTPException(status_code=404, detail=str(exc)) from exc
    return Redirect("/account", status_code=303)


@post("/account/arkitekt", include_in_schema=False)
async def set_redeem_token(request: Request[Any, Any, Any], state: State) -> Template | Redirect:
    """Store the user's Arkitekt redeem token (its Pods of Arkitekt apps get it as
    FAKTS_REDEEM_TOKEN), or forget it; never shown back, never logged."""
    served = served_of(state)
    viewer = await _signed_in(request, served)
    fields = await form_of(request, served.settings, viewer.secret)
    forget = fields.get("forget") == "yes"
    token = None if forget else fields.get("redeem_token", "").strip()
    if token == "":
        async with served.sessions() as session:
            return await _account(
                served, session, viewer, 400, error="Paste the token first.", field="redeem"
            )
    try:
        await served.operations.set_redeem_token(viewer.principal, token)
    except ClientError as exc:
        async with served.sessions() as session:
            return await _account(served, session, viewer, 400, error=str(exc), field="redeem")
    return Redirect("/account", status_code=303)
