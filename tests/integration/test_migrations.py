"""Alembic migrations: they build the schema the models describe, on both databases."""

from __future__ import annotations

import asyncio
import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from port import db
from port.catalogue.models import Release
from port.deploy.models import Pod, Setup
from port.tables import metadata
from tests.deployfakes import add_app, add_user
from tests.harness import Catalogue


def _diff(connection: Any) -> list[Any]:
    return list(compare_metadata(MigrationContext.configure(connection), metadata))


async def test_migrations_match_the_models(catalogue: Catalogue) -> None:
    async with catalogue.engine.connect() as connection:
        diff = await connection.run_sync(_diff)
    assert diff == []


def _sqlite_rows(path: Path, sql: str) -> list[tuple[Any, ...]]:
    with closing(sqlite3.connect(path)) as connection:
        return connection.execute(sql).fetchall()


# What a running installation held at 0007: a user's Setup with a Pod and its event.
# Plain SQL of that schema, not the models: they describe the newest schema.
_AT_0007 = """
INSERT INTO users (id, name, is_admin, created_at) VALUES (1, 'alice', 0, '2026-01-01');
INSERT INTO repos (id, url, manifest_path, tag_prefix, created_at, refs)
    VALUES (1, 'https://example.org/stardist.git', 'port.yaml', '', '2026-01-01', '{}');
INSERT INTO apps (id, identifier, repo_id, name, description, categories, scopes,
    requirements, created_at, updated_at)
    VALUES (1, 'stardist', 1, 'Stardist', '', '[]', '[]', '[]', '2026-01-01', '2026-01-01');
INSERT INTO releases (id, app_id, version, source, current, withdrawn, git_ref, "commit",
    file, app_meta, created_at, updated_at)
    VALUES (1, 1, '1.0.0', 'port', 1, 0, 'v1.0.0', 'abc', 'port.yaml', '{}', '2026-01-01',
    '2026-01-01');
INSERT INTO flavours (id, release_id, name, position, image, selectors)
    VALUES (1, 1, 'cpu', 0, 'img/cpu:1', '[]');
INSERT INTO setups (id, owner_id, app_id, release_id, update_policy, include_prereleases,
    env, wants_running, created_at, updated_at)
    VALUES (1, 1, 1, 1, 'manual', 0, '{}', 1, '2026-01-01', '2026-01-01');
INSERT INTO pods (id, setup_id, release_id, flavour, image, backend, selection, gpus,
    status, restarts, failures, restart_requested, retired, created_at)
    VALUES (1, 1, 1, 'cpu', 'img/cpu:1', 'docker', '{}', 0, 'RUNNING', 0, 0, 0, 0,
    '2026-01-01');
INSERT INTO setup_events (id, setup_id, pod_id, kind, message, at)
    VALUES (1, 1, 1, 'CREATED', '', '2026-01-01');
"""


def _a_deployed_catalogue(path: Path) -> None:
    with closing(sqlite3.connect(path)) as connection:
        connection.executescript(_AT_0007)
        connection.commit()


async def test_sqlite_tables_are_rebuilt_with_autoincrement_and_keep_every_row(
    tmp_path: Path,
) -> None:
    """0008 rebuilds each table (SQLite cannot add AUTOINCREMENT in place): nothing is
    lost on the way, no child row is cascaded away, and the old instance name stays."""
    path = tmp_path / "old.db"
    url = f"sqlite+aiosqlite:///{path}"
    await asyncio.to_thread(db.upgrade, url, "0007")
    _a_deployed_catalogue(path)
    before = _sqlite_rows(path, "SELECT id, setup_id FROM setup_events")
    await asyncio.to_thread(db.upgrade, url)

    # app_logos is keyed by its app's id (a foreign key), never by an id of its own.
    plain = _sqlite_rows(
        path,
        "SELECT name FROM sqlite_master WHERE type = 'table' AND sql LIKE '%INTEGER NOT NULL,%'"
        " AND sql NOT LIKE '%AUTOINCREMENT%' AND name NOT IN ('alembic_version', 'app_logos')",
    )
    assert plain == []
    assert _sqlite_rows(path, "SELECT id, setup_id FROM setup_events") == before
    assert _sqlite_rows(path, "SELECT pod_id FROM setup_events") == [(1,)]
    assert _sqlite_rows(path, "SELECT count(*) FROM pods") == [(1,)]
    # its Pods' containers are labelled `port`: the installation keeps that name
    assert _sqlite_rows(path, "SELECT instance FROM installation") == [("port",)]
    # the foreign keys still act: deleting the user takes the Setup, its Pod and events
    with closing(sqlite3.connect(path)) as connection:
        connection.execute("PRAGMA foreign_keys=ON")
        connection.execute("DELETE FROM users")
        connection.commit()
    assert _sqlite_rows(path, "SELECT count(*) FROM pods") == [(0,)]
    assert _sqlite_rows(path, "SELECT count(*) FROM setup_events") == [(0,)]


async def test_ids_are_never_handed_out_twice(catalogue: Catalogue) -> None:
    """The newest Setup and Pod deleted, the next ones get new ids (on both databases):
    an id names a tenant's containers, streams and logs."""
    async with catalogue.sessions() as session, session.begin():
        await _a_setup(session, "alice")
    async with catalogue.sessions() as session, session.begin():
        first = (await session.scalars(select(Setup).options(selectinload(Setup.pods)))).one()
        first_ids = (first.id, first.pods[0].id)
        await session.delete(first)
    async with catalogue.sessions() as session, session.begin():
        second = await _a_setup(session, "bob")
        second_ids = (second.id, second.pods[0].id)
    assert second_ids[0] > first_ids[0]
    assert second_ids[1] > first_ids[1]


async def _a_setup(session: AsyncSession, owner: str) -> Setup:
    user = await add_user(session, owner)
    app = await add_app(session, identifier=f"app-{owner}")
    release = (await session.scalars(select(Release).where(Release.app_id == app.id))).one()
    setup = Setup(owner_id=user.id, app_id=app.id, release_id=release.id, env={})
    session.add(setup)
    await session.flush()
    session.add(
        Pod(setup_id=setup.id, release_id=release.id, flavour="cpu", image="i", backend="docker")
    )
    await session.flush()
    await session.refresh(setup, ["pods"])
    return setup
