"""Published ports: Port listens on each host port of PORT_PUBLISH_PORTS that a Setup
holds and relays every connection, byte for byte, to the Setup's serving Pod.

A relay in Port rather than the engine's port publishing: a host port can be bound by
one container only, so during an update the old and the new Pod could not both have
it, and the address would move with the Pod. Here it follows the Setup, as an http
address does. No sign-in guards a tcp port (there is no request to ask): anyone who
reaches the host on it reaches the app, which is why an admin opens a range first.

Bounded: ``CONNECTIONS_MAX`` connections at once in all (more are closed at once),
``CONNECT_SECONDS`` to reach the Pod; an open connection lives as long as both sides
keep it.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from contextlib import suppress
from dataclasses import dataclass

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from port.apps.published import allocate, serving_addresses
from port.settings import Settings

log = logging.getLogger(__name__)

SYNC_SECONDS = 1.0  # how soon a new Setup's port listens, a moved Pod is followed
CONNECT_SECONDS = 5.0
CONNECTIONS_MAX = 1000
CHUNK = 64 << 10


@dataclass(frozen=True, slots=True)
class Route:
    setup_id: int
    container_port: int


class Publisher:
    """The listeners of one server process (start it in one only: ports bind once)."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], settings: Settings) -> None:
        ports = settings.publish_range
        if ports is None:
            raise ValueError("PORT_PUBLISH_PORTS is not set")
        self.sessions = sessions
        self.ports = ports
        self.protocols = frozenset({"tcp", "http"} if settings.publish_http else {"tcp"})
        self.host = settings.host
        self.listeners: dict[int, asyncio.Server] = {}
        self.routes: dict[int, Route] = {}  # host port -> where it leads
        self.addresses: dict[int, str] = {}  # setup id -> its serving Pod's address
        self.unbindable: set[int] = set()  # host ports another program holds (logged once)
        self._open = asyncio.Semaphore(CONNECTIONS_MAX)
        self._relays: set[asyncio.Task[None]] = set()

    async def sync(self) -> None:
        """Allocate ports for new tcp ports, listen on each held one, follow the Pods."""
        async with self.sessions() as session, session.begin():
            rows = await allocate(session, self.ports, self.protocols)
            routes = {r.host_port: Route(r.setup_id, r.container_port) for r in rows}
            self.addresses = await serving_addresses(session, {r.setup_id for r in routes.values()})
        self.routes = routes
        for port in [p for p in self.listeners if p not in routes]:
            self.listeners.pop(port).close()
        for port in routes:
            if port in self.listeners:
                continue
            try:
                accept = functools.partial(self._accept, port)
                self.listeners[port] = await asyncio.start_server(accept, self.host, port)
            except OSError as exc:
                if port not in self.unbindable:
                    log.warning("cannot listen on published port %s: %s", port, exc.strerror)
                self.unbindable.add(port)
            else:
                self.unbindable.discard(port)
                log.info(
                    "published port %s:%s leads to setup %s", self.host, port, routes[port].setup_id
                )

    async def run(self) -> None:
        while True:
            try:
                await self.sync()
            except (SQLAlchemyError, OSError) as exc:
                log.warning("published ports: %s", exc)
            await asyncio.sleep(SYNC_SECONDS)

    async def close(self) -> None:
        for server in self.listeners.values():
            server.close()
        for task in list(self._relays):
            task.cancel()
        for server in self.listeners.values():
            with suppress(Exception):
                await server.wait_closed()
        self.listeners.clear()

    def _accept(
        self, port: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        task = asyncio.create_task(self._relay(port, reader, writer))
        self._relays.add(task)
        task.add_done_callback(self._relays.discard)

    async def _relay(
        self, port: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        route = self.routes.get(port)
        address = self.addresses.get(route.setup_id) if route else None
        if route is None or address is None or self._open.locked():
            writer.close()  # no Pod serves it now, or too many connections
            return
        async with self._open:
            try:
                pod_reader, pod_writer = await asyncio.wait_for(
                    asyncio.open_connection(address, route.container_port), CONNECT_SECONDS
                )
            except (OSError, TimeoutError) as exc:
                log.info("published port %s: setup %s unreachable: %s", port, route.setup_id, exc)
                writer.close()
                return
            try:
                await asyncio.gather(_pipe(reader, pod_writer), _pipe(pod_reader, writer))
            finally:
                for end in (writer, pod_writer):
                    end.close()


async def _pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
    """Bytes from ``source`` to ``sink`` until ``source`` ends; then half-close ``sink``."""
    try:
        while chunk := await source.read(CHUNK):
            sink.write(chunk)
            await sink.drain()  # the slower side sets the pace: nothing piles up here
        if sink.can_write_eof():
            sink.write_eof()
    except (ConnectionError, OSError):
        sink.close()
