"""Opening an app, every part real: Port under uvicorn on a real socket, the Docker
engine running a busybox web app, and HTTP clients as a browser's two origins.

Port's origin is ``http://localhost:<port>``; the app's is
``http://<app>-<setup>.apps.localhost:<port>``, which the clients here reach on
127.0.0.1 with that ``Host`` (browsers resolve ``*.localhost`` so themselves). Each
origin has its own client, so its own cookie jar, as in a browser.
"""

from __future__ import annotations

import asyncio
import functools
import re
import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import uvicorn
from sqlalchemy import select

from manifests.specs import Run
from port.deploy.backends.base import PodStatus
from port.deploy.models import EventKind, Pod, SetupEvent
from port.serve import listen, listen_for_pods, pods_host, server_config
from port.settings import Settings
from port.work.server import create_app
from tests.deployfakes import add_app, add_release
from tests.harness import Catalogue, eventually, free_port, free_ports
from tests.integration.dockerfixtures import TestImages
from tests.pages import FORM_TOKEN, Browser, add_user

pytestmark = [pytest.mark.docker]
# What the database does not change (streams, Pods coming and going): SQLite alone.
ENGINE_ONLY = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)

WEB = {"ports": [{"name": "web", "port": 8080, "protocol": "http", "path": "/"}]}
ECHO = {"ports": [{"name": "echo", "port": 7000, "protocol": "tcp", "path": "/"}]}
PUBLISHED = re.compile(r"Port echo \(tcp[^)]*\): <code>localhost:(\d+)</code>")


def greeting(word: str) -> dict[str, Any]:
    env = [{"name": "GREETING", "value": word, "description": "", "required": False}]
    return WEB | {"env": [e | {"secret": False} for e in env], "command": None, "args": None}


@dataclass
class Store:
    settings: Settings
    catalogue: Catalogue
    port_number: int
    browsers: list[Browser]
    server: Any
    host_address: str | None  # where Pods reach the host (and Port)

    def browser(self) -> Browser:
        browser = Browser(f"http://localhost:{self.port_number}")
        self.browsers.append(browser)
        return browser

    def host(self, setup_id: int, app: str = "webapp") -> str:
        return f"{app}-{setup_id}.apps.localhost:{self.port_number}"

    async def install(self, browser: Browser, app: str = "webapp", **fields: str) -> int:
        # 1.2.0 cannot run: it is the rollback's.
        setup_id = await browser.install(app, **({"version": "1.0.0"} | fields))
        await self.serving(setup_id)
        return setup_id

    async def serving(self, setup_id: int) -> None:
        async def pod() -> Pod | None:
            async with self.catalogue.sessions() as session:
                found: Pod | None = await session.scalar(
                    select(Pod).where(Pod.setup_id == setup_id, Pod.retired.is_(False))
                )
                return found

        def ready(row: Any) -> bool:
            return row is not None and row.status == PodStatus.RUNNING and row.address

        row = await eventually(pod, f"setup {setup_id} to run with an address", until=ready)
        served = Run.from_json(row.run).http
        if served is not None:  # RUNNING is the container's state: its server may lag

            async def listening() -> bool:
                try:
                    _reader, writer = await asyncio.wait_for(
                        asyncio.open_connection(row.address, served.port), 1
                    )
                except (OSError, TimeoutError):
                    return False
                writer.close()
                return True

            await eventually(listening, f"setup {setup_id}'s app to listen")

    async def event(self, setup_id: int, kind: EventKind) -> None:
        async def kinds() -> list[EventKind]:
            async with self.catalogue.sessions() as session:
                found = await session.scalars(
                    select(SetupEvent.kind).where(SetupEvent.setup_id == setup_id)
                )
                return list(found)

        await eventually(kinds, f"{kind} of setup {setup_id}", until=lambda k: kind in k)


@pytest.fixture
async def store(
    catalogue: Catalogue,
    docker_settings: Callable[..., Settings],
    docker_images: TestImages,
    tmp_path: Path,
) -> AsyncIterator[Store]:
    number, published = free_port(), free_ports(2)
    settings = docker_settings(
        database_url=catalogue.settings.database_url,
        data_dir=tmp_path / "data",
        server_url=f"http://localhost:{number}",
        port=number,
        publish_ports=f"{published.start}-{published.stop - 1}",
        reconcile_seconds=0.3,
        serve_worker=True,
        job_poll_seconds=0.2,
        update_grace_seconds=1,
        restart_backoff_seconds=0.5,
        access_log=False,
        poll_seconds=0,  # the catalogue is made here, not indexed
    )
    async with catalogue.sessions() as session, session.begin():
        web = await add_app(
            session,
            "webapp",
            flavours=(("cpu", docker_images["webapp"], []),),
            run=greeting("one"),
        )
        add_release(
            session, web.id, "1.1.0", (("cpu", docker_images["webapp"], []),), greeting("two")
        )
        add_release(session, web.id, "1.2.0", (("cpu", docker_images["exit3"], []),), WEB)
        await add_app(session, "quiet", flavours=(("cpu", docker_images["forever"], []),))
        await add_app(session, "echo", flavours=(("cpu", docker_images["echo"], []),), run=ECHO)
    config = server_config(create_app(settings), settings, log_level="warning")
    server = uvicorn.Server(config)
    host = await pods_host(settings)
    door = listen_for_pods(settings, host, sys.stdout)  # as `port serve` does
    sockets = [listen(settings.host, number), *([door] if door else [])]
    task = asyncio.create_task(server.serve(sockets=sockets))
    await eventually(lambda: server.started, "uvicorn to listen")
    for name in ("alice", "bob"):
        await add_user(catalogue, name)
    kept = Store(settings, catalogue, number, [], server, host)
    try:
        yield kept
    finally:
        for browser in kept.browsers:
            await browser.close()
        server.should_exit = True
        await task
        for sock in sockets:
            sock.close()


async def test_the_owner_opens_the_app_and_nobody_else_enters(store: Store) -> None:
    alice = store.browser()
    await alice.sign_in("alice")
    setup_id = await store.install(alice)
    page = await alice.port.get(f"/setups/{setup_id}")
    address = f"http://{store.host(setup_id)}/"
    assert address in page.text  # shown on the Setup's page, with its Open button
    assert f'href="/setups/{setup_id}/open"' in page.text

    opened = await alice.open(setup_id)
    assert opened.status_code == 200, opened.text
    assert opened.text.strip() == f"hello from setup {setup_id}: one"
    again = await alice.app(store.host(setup_id)).get("/")  # the origin's cookie holds
    assert again.status_code == 200

    anonymous = store.browser()
    refused = await anonymous.follow(await anonymous.app(store.host(setup_id)).get("/"))
    assert refused.status_code == 200
    assert 'action="/sign-in"' in refused.text  # Port's sign-in page, not the app
    assert "hello from" not in refused.text

    bob = store.browser()
    await bob.sign_in("bob")
    assert (await bob.open(setup_id)).status_code == 404  # not his: there is none
    stolen = await bob.follow(await bob.app(store.host(setup_id)).get("/"))
    assert stolen.status_code == 404
    assert "hello from" not in stolen.text


async def test_an_entry_code_works_once_and_for_its_own_setup_only(store: Store) -> None:
    alice = store.browser()
    await alice.sign_in("alice")
    first, second = await store.install(alice), await store.install(alice)
    link = (await alice.port.get(f"/setups/{first}/open")).headers["location"]
    target = urlsplit(link)
    code_path = f"{target.path}?{target.query}"
    elsewhere = await alice.app(store.host(second)).get(code_path)
    assert elsewhere.status_code == 403  # a code of the first Setup opens no other
    entered = await alice.app(target.netloc).get(code_path)
    assert entered.status_code == 303
    cookie = entered.headers["set-cookie"]
    assert "HttpOnly" in cookie
    assert "SameSite=Lax" in cookie
    assert "Domain" not in cookie
    replayed = await store.browser().app(target.netloc).get(code_path)
    assert replayed.status_code == 403  # used: a copied link lets no one else in
    assert "expired" in replayed.text


async def test_ports_credentials_never_reach_the_app(store: Store) -> None:
    alice = store.browser()
    await alice.sign_in("alice")
    setup_id = await store.install(alice)
    await alice.open(setup_id)
    app = alice.app(store.host(setup_id))
    session = alice.port.cookies["port_session"]
    echoed = await app.get(
        "/cgi-bin/env",
        headers={
            "Authorization": "Bearer port_secret_token",
            "X-Forwarded-For": "6.6.6.6",
            # Sent by hand (no browser would): Port's cookie beside the app origin's own.
            "Cookie": f"port_session={session}; mine=kept; port_app={app.cookies['port_app']}",
        },
    )
    assert echoed.status_code == 200, echoed.text
    seen = dict(line.split("=", 1) for line in echoed.text.splitlines() if "=" in line)
    assert "HTTP_AUTHORIZATION" not in seen
    assert seen["HTTP_COOKIE"] == "mine=kept"  # the app's own cookie, nothing of Port's
    assert seen["HTTP_X_FORWARDED_FOR"] == "127.0.0.1"  # Port's word, not the client's
    assert seen["HTTP_X_FORWARDED_PROTO"] == "http"
    assert seen["HTTP_X_FORWARDED_HOST"] == store.host(setup_id)
    assert seen["HTTP_HOST"] == store.host(setup_id)

    tossing = await app.get("/cgi-bin/cookie")
    cookies = tossing.headers.get_list("set-cookie")
    assert [c.split(";")[0] for c in cookies] == ["tossed=1", "own=1"]
    assert not [c for c in cookies if "domain" in c.lower()]  # host-only, this origin's


async def test_an_app_reaches_port_from_its_container_and_nothing_else_of_the_host(
    store: Store,
) -> None:
    assert store.host_address, "the test engine runs on this machine: Pods reach its host"
    alice = store.browser()
    await alice.sign_in("alice")
    setup_id = await store.install(alice)
    await alice.open(setup_id)
    app = alice.app(store.host(setup_id))
    env = dict(line.split("=", 1) for line in (await app.get("/cgi-bin/env")).text.splitlines())
    told = env["PORT_SERVER_URL"]
    assert told == f"http://port.internal:{store.port_number}"
    healthz = await app.get(f"/cgi-bin/fetch?{told.split('//')[1]}/healthz")  # from inside
    assert healthz.text.strip() == "ok"

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.0 200 OK\r\n\r\nsecret of the host\n")
        await writer.drain()
        writer.close()

    other = await asyncio.start_server(answer, store.host_address, free_port())
    try:
        number = other.sockets[0].getsockname()[1]
        async with httpx.AsyncClient() as host:  # it answers, on the host itself
            assert (await host.get(f"http://{store.host_address}:{number}/")).text
        elsewhere = await app.get(f"/cgi-bin/fetch?port.internal:{number}/")
        assert elsewhere.text.strip() == "unreachable"  # the host's other services: refused
    finally:
        other.close()
        await other.wait_closed()


async def test_a_setup_without_a_running_pod_says_why(store: Store) -> None:
    alice = store.browser()
    await alice.sign_in("alice")
    setup_id = await store.install(alice)
    await alice.open(setup_id)
    page = await alice.port.get(f"/setups/{setup_id}")
    token = FORM_TOKEN.search(page.text)
    assert token
    await alice.port.post(f"/setups/{setup_id}", data={"form_token": token[1], "action": "stop"})

    async def answer() -> httpx.Response:
        return await alice.app(store.host(setup_id)).get("/")

    # While the Pod stops, the page may still say it is running (it reloads itself).
    def says_stopped(answer: httpx.Response) -> bool:
        return answer.status_code == 503 and "Webapp is stopped" in answer.text

    stopped = await eventually(answer, "the stopped page", until=says_stopped)
    assert "Start it from Port" in stopped.text
    assert f"http://localhost:{store.port_number}/setups/{setup_id}" in stopped.text
    unknown = await alice.app(f"webapp-99999.apps.localhost:{store.port_number}").get("/")
    assert unknown.status_code in (303, 404)


async def test_a_tcp_port_is_published_on_a_host_port_of_the_admins_range(store: Store) -> None:
    alice = store.browser()
    await alice.sign_in("alice")
    (setup_id, first), (_, second) = await _published(store, alice), await _published(store, alice)
    assert first != second
    assert {first, second} <= set(store.settings.publish_range or ())

    async def echoed(number: int) -> bytes:
        """What comes back; nothing when the connection is closed on us (EOF or reset)."""
        reader, writer = await asyncio.open_connection("127.0.0.1", number)
        try:
            writer.write(b"hello over tcp\n")
            await writer.drain()
            return await asyncio.wait_for(reader.read(100), 10)
        except ConnectionError:
            return b""
        finally:
            writer.close()

    def hello(answer: bytes) -> bool:
        return answer == b"hello over tcp\n"

    for number in (first, second):  # its nc may listen a moment after the Pod runs
        await eventually(functools.partial(echoed, number), f"an echo on {number}", until=hello)

    page = await alice.port.get(f"/setups/{setup_id}")
    token = FORM_TOKEN.search(page.text)
    assert token
    await alice.port.post(f"/setups/{setup_id}", data={"form_token": token[1], "action": "stop"})
    # Stopped: the port stays the Setup's, but leads nowhere (closed at once).
    await eventually(
        lambda: echoed(first), "the stopped app's port to close", until=lambda b: b == b""
    )
    assert hello(await echoed(second))
    bob = store.browser()
    await bob.sign_in("bob")
    assert str(first) not in (await bob.port.get(f"/setups/{setup_id}")).text


async def _published(store: Store, browser: Browser) -> tuple[int, int]:
    """Install the echo app: its Setup and published host port, once its page shows it."""
    setup_id = await browser.install("echo")
    await store.serving(setup_id)

    async def shown() -> re.Match[str] | None:
        return PUBLISHED.search((await browser.port.get(f"/setups/{setup_id}")).text)

    found = await eventually(shown, "the published port on the page", until=bool)
    assert found
    return setup_id, int(found[1])


@ENGINE_ONLY
async def test_large_bodies_stream_through_both_ways(store: Store) -> None:
    alice = store.browser()
    await alice.sign_in("alice")
    setup_id = await store.install(alice)
    await alice.open(setup_id)
    app = alice.app(store.host(setup_id))
    peak: list[int] = []
    base = _rss()

    async def sample() -> None:
        while True:
            peak.append(_rss() - base)
            await asyncio.sleep(0.02)

    sampler = asyncio.create_task(sample())
    try:
        received = 0
        async with app.stream("GET", "/big") as download:
            assert download.status_code == 200
            async for chunk in download.aiter_raw():
                received += len(chunk)
        assert received == 50 << 20

        async def upload() -> AsyncIterator[bytes]:
            for _ in range(50):
                yield bytes(1 << 20)

        counted = await app.post(
            "/cgi-bin/count",
            content=upload(),
            headers={"Content-Length": str(50 << 20), "Content-Type": "application/octet-stream"},
        )
    finally:
        sampler.cancel()
    assert counted.status_code == 200, counted.text
    assert int(counted.text.strip()) == 50 << 20
    assert max(peak) < 24 << 20, f"the server's memory grew by {max(peak) >> 20} MB"


@ENGINE_ONLY
async def test_the_address_serves_throughout_an_update_and_a_rollback(store: Store) -> None:
    alice = store.browser()
    await alice.sign_in("alice")
    setup_id = await store.install(alice)
    await alice.open(setup_id)
    app = alice.app(store.host(setup_id))
    answers: list[tuple[int, str]] = []
    done = asyncio.Event()

    async def keep_asking() -> None:
        while not done.is_set():
            answer = await app.get("/")
            answers.append((answer.status_code, answer.text.strip()))
            await asyncio.sleep(0.01)

    asker = asyncio.create_task(keep_asking())
    try:
        await _update(alice, setup_id, "1.1.0")
        await store.event(setup_id, EventKind.UPDATE_SUCCEEDED)
        await eventually(lambda: answers[-1][1], "1.1.0 to answer", until=_says("two"))
        await _update(alice, setup_id, "1.2.0")  # its container exits at once
        await store.event(setup_id, EventKind.UPDATE_ROLLED_BACK)
        asked = len(answers)
        await eventually(lambda: len(answers), "more answers", until=lambda n: n > asked + 20)
    finally:
        done.set()
        await asker
    texts = [text for _, text in answers]
    assert texts[0].endswith(": one")
    assert texts[-1].endswith(": two")
    assert not [t for t in texts if not t.endswith((": one", ": two"))]  # never 1.2.0's
    failures = [a for a in answers if a[0] != 200]
    assert failures == [], f"{len(failures)} of {len(answers)} requests failed: {failures[:3]}"


def _says(word: str) -> Callable[[str], bool]:
    return lambda text: text.endswith(f": {word}")


async def _update(browser: Browser, setup_id: int, version: str) -> None:
    page = await browser.port.get(f"/setups/{setup_id}")
    token = FORM_TOKEN.search(page.text)
    assert token
    answer = await browser.port.post(
        f"/setups/{setup_id}",
        data={"form_token": token[1], "action": "update", "version": version},
    )
    assert answer.status_code in (200, 303), answer.text


def _rss() -> int:
    status = Path("/proc/self/status").read_text()
    found = re.search(r"VmRSS:\s+(\d+) kB", status)
    assert found
    return int(found[1]) << 10
