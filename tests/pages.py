"""Helpers for tests of Port's pages over HTTP: users with passwords, signing in as a
browser does (form token included), and a second browser on the same client."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit

import httpx
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


class Browser:
    """A browser on a real socket: Port's origin and each app origin it visits, with a
    cookie jar each, as a browser keeps them. App origins (``*.apps.localhost``) are
    reached on 127.0.0.1 with their ``Host``, as browsers resolve them."""

    def __init__(self, port_url: str) -> None:
        self.port_url = port_url
        self.port = httpx.AsyncClient(base_url=port_url, timeout=30)
        self.apps: dict[str, httpx.AsyncClient] = {}

    def app(self, host: str) -> httpx.AsyncClient:
        if host not in self.apps:
            self.apps[host] = httpx.AsyncClient(
                base_url=f"http://127.0.0.1:{urlsplit(self.port_url).port}",
                headers={"Host": host},
                timeout=30,
            )
        return self.apps[host]

    async def sign_in(self, name: str, password: str = PASSWORD) -> None:
        page = await self.port.get("/sign-in")
        answer = await self.port.post(
            "/sign-in", data={"form_token": form_token(page), "name": name, "password": password}
        )
        assert answer.status_code == 303, answer.text

    async def install(self, app: str, **fields: str) -> int:
        """Fill in and send ``app``'s install form (no updates, start at once, and
        ``fields``); the new Setup's id."""
        form = await self.port.get(f"/apps/{app}/install")
        answer = await self.port.post(
            f"/apps/{app}/install",
            data={"form_token": form_token(form), "update_policy": "NONE", "start": "yes"} | fields,
        )
        assert answer.status_code == 303, answer.text
        return int(answer.headers["location"].rsplit("/", 1)[1])

    async def open(self, setup_id: int) -> httpx.Response:
        """Press "Open" and follow the redirects across the two origins."""
        return await self.follow(await self.port.get(f"/setups/{setup_id}/open"))

    async def follow(self, answer: httpx.Response) -> httpx.Response:
        """Follow ``answer``'s redirects; a relative one stays on the origin it came from."""
        for _ in range(5):
            if answer.status_code not in (302, 303, 307):
                return answer
            target = urlsplit(answer.headers["location"])
            path = target.path + (f"?{target.query}" if target.query else "")
            there = target.netloc or answer.request.headers["host"]
            if there == urlsplit(self.port_url).netloc:
                answer = await self.port.get(path)
            else:
                answer = await self.app(there).get(path)
        raise AssertionError("redirected in circles")

    async def close(self) -> None:
        for client in (self.port, *self.apps.values()):
            await client.aclose()
