"""The processes: `port serve` (the API server under uvicorn, on the configured host and
port) and `port worker` (the job worker alone).

With ``examples=True`` (what `make run` uses) an empty catalogue is first filled from
the bundled example repositories, so a newcomer has something to browse.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import sys
from collections.abc import Callable
from typing import Any, TextIO

import uvicorn
from sqlalchemy import func, select

from port import db
from port.accounts.service import FirstAdmin
from port.apps.addresses import AppOrigins
from port.catalogue.models import Repo
from port.demo import index_examples
from port.demo_images import build_example_images
from port.deploy.backends import load_backend
from port.deploy.backends.base import HOST_ALIAS
from port.deploy.instance import resolved
from port.deploy.secrets import check_readable
from port.errors import PortError
from port.jobs.worker import run_worker
from port.settings import Settings
from port.work import collector
from port.work.jobs import full_worker
from port.work.server import create_app

log = logging.getLogger(__name__)


def announce_admin(out: TextIO, base: str) -> Callable[[FirstAdmin], None]:
    """How the first admin's secrets reach the operator: on the terminal, once."""

    def announce(first: FirstAdmin) -> None:
        out.write(
            "\nPort created the first admin user. Shown only this once:\n\n"
            f"    sign in at {base}/sign-in as admin with the password\n"
            f"    {first.password}\n\n"
            "    API token (send it as `Authorization: Bearer <token>`):\n"
            f"    {first.token}\n\n"
            "Change the password on your account page, or with `port user passwd admin`.\n\n"
        )
        out.flush()

    return announce


async def _fill_empty_catalogue(settings: Settings, out: TextIO) -> None:
    engine = db.create_engine(settings.sqlalchemy_url)
    try:
        sessions = db.sessionmaker(engine)
        async with sessions() as session:
            if await session.scalar(select(func.count()).select_from(Repo)):
                return
        for url, outcome in await index_examples(sessions, settings):
            out.write(f"indexed example {url}: {outcome.run.status}\n")
    finally:
        await engine.dispose()


async def _secrets_readable(settings: Settings) -> None:
    """PortError when secrets are stored that PORT_SECRET_KEY cannot open."""
    engine = db.create_engine(settings.sqlalchemy_url)
    try:
        await db.check_migrated(engine)  # an unmigrated database says so, first
        async with db.sessionmaker(engine)() as session:
            await check_readable(session, settings)
    finally:
        await engine.dispose()


def server_config(app: Any, settings: Settings, **overrides: Any) -> uvicorn.Config:
    """How uvicorn serves Port: Port is the edge, so no client's ``X-Forwarded-*`` is
    believed (the app proxy sets its own)."""
    options: dict[str, Any] = {
        "host": settings.host,
        "port": settings.port,
        "log_level": "info",
        "access_log": settings.access_log,
        "timeout_graceful_shutdown": 10,  # finish requests in flight, then stop
        "proxy_headers": False,
    }
    return uvicorn.Config(app, **(options | overrides))


def listen(host: str, port: int) -> socket.socket:
    """A server socket, bound before anything is announced: an address taken by
    another server is a clear error, not a printed URL that leads elsewhere."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(2048)  # from here a client waits in the backlog, never is refused
    except OSError as exc:
        sock.close()
        raise PortError(
            f"cannot listen on {host}:{port}: {exc.strerror}; is another server there? "
            "Choose another port: PORT_PORT=8090 (make run PORT=8090)"
        ) from exc
    sock.set_inheritable(True)
    return sock


async def pods_host(settings: Settings) -> str | None:
    """The backend's ``host_address``, asked by a backend of its own."""
    backend = load_backend(settings)
    try:
        return await backend.host_address()
    except Exception:  # no engine, no access to it: serve all the same
        log.info("no address for Pods to reach Port: the engine did not answer", exc_info=True)
        return None
    finally:
        await backend.close()


def listen_for_pods(settings: Settings, host: str | None, out: TextIO) -> socket.socket | None:
    """Port's port on ``host``, the address Pods reach (``port.internal`` inside them),
    so an app reaches its server. None when Port listens on every address already, or
    the backend knows no such address (a remote engine)."""
    if host is None or settings.host in ("0.0.0.0", "::", ""):  # noqa: S104 - as chosen
        return None
    try:
        door = listen(host, settings.port)
    except PortError as exc:
        out.write(f"Warning: apps cannot reach Port from their containers: {exc}\n")
        return None
    out.write(f"Apps reach Port from their containers at http://{HOST_ALIAS}:{settings.port}.\n")
    return door


def serve(settings: Settings, *, examples: bool = False, out: TextIO = sys.stdout) -> None:
    """Listen, migrate, optionally index the examples, then serve until SIGINT/SIGTERM."""
    sockets = [listen(settings.host, settings.port)]
    db.upgrade(settings.sqlalchemy_url)
    asyncio.run(_secrets_readable(settings))  # refused before anything is announced
    if examples:
        build_example_images(settings, out)
        asyncio.run(_fill_empty_catalogue(settings, out))
    settings = resolved(settings)
    base = settings.public_url.rstrip("/")
    app = create_app(settings, announce=announce_admin(out, base))
    origins = AppOrigins.of(settings)
    out.write(
        f"Port instance {settings.instance_name}: its containers carry the label "
        f"port.instance={settings.instance_name}.\n"
        f"Port serves its store at {base}/ and GraphiQL at {base}/graphql "
        "(health: /healthz, metrics: /metrics).\n"
        "Sign in to install apps; API clients send `Authorization: Bearer <token>` "
        "(GraphiQL: headers tab). `port token create --user admin` makes a token.\n"
        f"Installed apps open at {origins.origin('<app>-<setup>')}/ for their owners.\n"
    )
    door = listen_for_pods(settings, asyncio.run(pods_host(settings)), out)
    out.flush()
    collector.settle()
    uvicorn.Server(server_config(app, settings)).run(sockets=sockets + ([door] if door else []))


def work(settings: Settings) -> None:
    """`port worker`: every kind of job and the periodic tasks, until SIGINT/SIGTERM."""
    asyncio.run(_secrets_readable(settings))
    collector.settle()  # an index run builds a thousand manifests' objects, as a browse
    asyncio.run(run_worker(settings, full_worker))
