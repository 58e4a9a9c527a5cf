"""What tests share besides fixtures: handles on the catalogue and on a running API,
a subscription helper, free ports, one way to wait for something, and one way to say
that a test needs a service.

Fixtures live in the conftest files; everything a test imports lives here (or in
tests/integration/gitfixtures.py and dockerfixtures.py for git and Docker).
"""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, NoReturn

import pytest
from click.testing import CliRunner, Result
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from port import db
from port.cli import main
from port.settings import Settings
from port.tables import metadata


def require(what: str) -> NoReturn:
    """Stop a test that lacks `what`: a failure under CI (which must run it), else a skip."""
    if os.environ.get("CI"):
        pytest.fail(f"{what} is required when CI is set")
    pytest.skip(f"{what} is not available")


@dataclass
class Catalogue:
    """A test's handle on the database: engine, sessions, settings, statement log."""

    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    settings: Settings
    statements: list[str]

    def writes(self, *tables: str) -> list[str]:
        """INSERT/UPDATE/DELETE statements logged so far that touch any of ``tables``."""
        verbs = ("INSERT", "UPDATE", "DELETE")
        return [
            s
            for s in self.statements
            if s.lstrip().upper().startswith(verbs) and any(f" {t}" in s for t in tables)
        ]


@dataclass
class Api:
    """A running Port server (in-process) and the admin secrets it announced at start."""

    client: AsyncTestClient[Litestar]
    admin_token: str
    catalogue: Catalogue
    admin_password: str

    async def gql(
        self, query: str, variables: dict[str, Any] | None = None, *, token: str | None = None
    ) -> dict[str, Any]:
        """POST a GraphQL request; return the JSON body (whatever the HTTP status)."""
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        response = await self.client.post(
            "/graphql", json={"query": query, "variables": variables or {}}, headers=headers
        )
        body: dict[str, Any] = response.json()
        body["_status"] = response.status_code
        return body

    async def create_repo(self, url: str) -> str:
        """Register ``url`` as the admin; the repository's id."""
        created = await self.gql(
            "mutation($url: String!) { createRepo(input: {url: $url}) { repo { id } } }",
            {"url": url},
            token=self.admin_token,
        )
        repo_id: str = created["data"]["createRepo"]["repo"]["id"]
        return repo_id


def subscribe(
    socket: Any, query: str, variables: dict[str, Any], init: dict[str, Any] | None = None
) -> None:
    """graphql-transport-ws on a test websocket: ``connection_init`` (``init`` its payload,
    where browsers put their token), then one subscription, id "1"."""
    socket.send_json({"type": "connection_init", "payload": init or {}})
    assert socket.receive_json() == {"type": "connection_ack"}
    socket.send_json(
        {"id": "1", "type": "subscribe", "payload": {"query": query, "variables": variables}}
    )


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def free_ports(count: int) -> range:
    """``count`` consecutive ports free on 127.0.0.1 now (PORT_PUBLISH_PORTS in tests)."""
    for base in range(41000 + secrets.randbelow(2000) * 8, 60000, count):
        wanted = range(base, base + count)
        try:
            for number in wanted:
                with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
                    sock.bind(("127.0.0.1", number))
        except OSError:
            continue
        return wanted
    raise RuntimeError(f"no {count} consecutive free ports")


async def eventually(
    probe: Callable[[], Any],
    what: str,
    *,
    until: Callable[[Any], object] = bool,
    within: float = 60,
    every: float = 0.1,
) -> Any:
    """Call ``probe()`` (sync or async) until ``until`` holds for its value, and return
    that value; after ``within`` seconds, AssertionError naming ``what`` and the last
    value. The one bounded wait of the suite."""
    deadline = time.monotonic() + within
    while True:
        value = probe()
        if isinstance(value, Awaitable):
            value = await value
        if until(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within:g} s waiting for {what}: {value!r}")
        await asyncio.sleep(every)


def run_cli(runner: CliRunner, *args: str, code: int = 0) -> Result:
    """``port <args>`` in this process; its exit code must be ``code``."""
    result = runner.invoke(main, list(args), catch_exceptions=False)
    assert result.exit_code == code, result.output
    return result


async def run_sql(url: str, statement: str) -> None:
    """One statement outside a transaction (CREATE DATABASE cannot run in one)."""
    engine = db.create_engine(url)
    try:
        async with engine.connect() as conn:
            await (await conn.execution_options(isolation_level="AUTOCOMMIT")).execute(
                text(statement)
            )
    finally:
        await engine.dispose()


def empty_tables(url: str) -> None:
    """Empty every table of the PostgreSQL database at ``url`` (ids start afresh)."""
    tables = ", ".join(t.name for t in metadata.sorted_tables)
    asyncio.run(run_sql(url, f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
