"""Helpers for tests of Port's pages over HTTP: users with passwords, signing in as a
browser does (form token included), and a second browser on the same client."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

from httpx import Cookies, Response
from litestar import Litestar
from litestar.testing import AsyncTestClient

from port.accounts import service as accounts
from port.principal import CLI
from tests.harness import Catalogue

FORM_TOKEN = re.compile(r'name="form_token" value="([0-9a-f]+)"')
PASSWORD = "correct horse battery"


def form_token(page: Response) -> str:
    """The form token of the first form in ``page``."""
    found = FORM_TOKEN.search(page.text)
    assert found, page.text
    return found.group(1)


async def add_user(catalogue: Catalogue, name: str, password: str = PASSWORD) -> int:
    """A user who can sign in with ``password``; its id."""
    async with catalogue.sessions() as session, session.begin():
        user = await accounts.create_user(session, name)
        await accounts.set_password(session, user, password, by=CLI)
        return user.id


async def sign_in(
    client: AsyncTestClient[Litestar], name: str, password: str = PASSWORD, next_page: str = "/"
) -> Response:
    """Fill in and send the sign-in form; the answer, not followed (303 when signed in)."""
    page = await client.get("/sign-in")
    return await client.post(
        "/sign-in",
        data={
            "form_token": form_token(page),
            "name": name,
            "password": password,
            "next": next_page,
        },
        follow_redirects=False,
    )


@contextmanager
def another_browser(client: AsyncTestClient[Litestar]) -> Iterator[AsyncTestClient[Litestar]]:
    """The same server from a browser with no cookies (one client: one event loop)."""
    kept = Cookies(client.cookies)
    client.cookies.clear()
    try:
        yield client
    finally:
        client.cookies = kept


def session_cookie(response: Response) -> str:
    """The ``Set-Cookie`` of a new session in ``response``."""
    headers = response.headers.get_list("set-cookie")
    return next(h for h in headers if h.startswith("port_session=") and "Max-Age=0" not in h)
