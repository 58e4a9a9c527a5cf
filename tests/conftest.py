"""Shared fixtures: a migrated catalogue on SQLite and on PostgreSQL.

PostgreSQL comes from ``PORT_TEST_DATABASE_URL`` (``make test`` starts the server and
sets it). Without it the PostgreSQL half is skipped on a laptop, and fails under CI.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from litestar.testing import AsyncTestClient
from sqlalchemy import event
from sqlalchemy.engine import make_url

from port import db
from port.accounts.service import FirstAdmin
from port.settings import Settings
from port.work.server import create_app
from tests.harness import Api, Catalogue, empty_tables, run_sql

IN_CI = bool(os.environ.get("CI"))


def postgres_base_url() -> str:
    url = os.environ.get("PORT_TEST_DATABASE_URL")
    if not url:
        if IN_CI:
            pytest.fail("PORT_TEST_DATABASE_URL is not set: CI must run PostgreSQL tests")
        pytest.skip("PostgreSQL tests need PORT_TEST_DATABASE_URL (see `make services`)")
    return url


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file, copied for each test (migrating each time is slow)."""
    path = tmp_path_factory.mktemp("sqlite") / "template.db"
    db.upgrade(f"sqlite+aiosqlite:///{path}")
    return path


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[str]:
    """A migrated PostgreSQL database of its own for this test session."""
    base = postgres_base_url()
    name = f"port_test_{uuid.uuid4().hex[:10]}"
    url = make_url(base).set(database=name).render_as_string(hide_password=False)
    asyncio.run(run_sql(base, f'CREATE DATABASE "{name}"'))
    try:
        db.upgrade(url)
        yield url
    finally:
        asyncio.run(run_sql(base, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty, migrated catalogue database: each test gets both back ends."""
    if request.param == "sqlite":
        path = tmp_path / "port.db"
        shutil.copy(request.getfixturevalue("sqlite_template"), path)
        return f"sqlite+aiosqlite:///{path}"
    url: str = request.getfixturevalue("postgres_database")
    empty_tables(url)
    return url


@pytest.fixture
async def catalogue(database_url: str, tmp_path: Path) -> AsyncIterator[Catalogue]:
    settings = Settings(
        data_dir=tmp_path / "data",
        database_url=database_url,
        allow_local_repos=True,
        instance="port",  # what FakeBackend() manages; the stored default has its own tests
        reconcile_seconds=0,  # tests that deploy run passes themselves, or turn it on
        serve_worker=False,  # likewise jobs: a test sees what was queued, then runs it
    )
    engine = db.create_engine(settings.sqlalchemy_url)
    statements: list[str] = []

    @event.listens_for(engine.sync_engine, "before_cursor_execute")
    def _log(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        statements.append(statement)

    try:
        yield Catalogue(engine, db.sessionmaker(engine), settings, statements)
    finally:
        await engine.dispose()


@pytest.fixture
async def api(catalogue: Catalogue) -> AsyncIterator[Api]:
    announced: list[FirstAdmin] = []
    app = create_app(catalogue.settings, announce=announced.append)
    async with AsyncTestClient(app=app) as client:
        assert len(announced) == 1, "a new server announces exactly one first admin"
        yield Api(client, announced[0].token, catalogue, announced[0].password)
