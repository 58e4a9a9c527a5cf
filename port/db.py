"""Database engine, sessions and migrations (SQLite by default, PostgreSQL by URL).

Alembic (with Mako) is imported only to migrate or make a revision: every other
command checks the database's revision by reading ``alembic_version`` itself and
comparing it with the head of the migration files (``migration_head``).
"""

from __future__ import annotations

import re
import tempfile
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from port.errors import PortError

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).parent / "migrations"
_REVISION = re.compile(r'^(down_)?revision: str(?: \| None)? = (?:"([^"]+)"|None)$', re.M)


def create_engine(url: str) -> AsyncEngine:
    """An async engine; SQLite gets foreign keys, WAL and a busy timeout."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(url, connect_args={"timeout": 30})

        @event.listens_for(engine.sync_engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()

        return engine
    return create_async_engine(url, pool_pre_ping=True)


def sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


def alembic_config(url: str) -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    # "%" would be read as interpolation by configparser (passwords may contain it).
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade(url: str, revision: str = "head") -> None:
    """Apply migrations up to ``revision``. Call outside a running event loop."""
    from alembic import command

    command.upgrade(alembic_config(url), revision)


@cache
def migration_head() -> str:
    """The newest revision of the migration files: the one no other revises (each file
    declares ``revision`` and ``down_revision`` as its first such lines)."""
    revisions: set[str] = set()
    revised: set[str] = set()
    for path in (MIGRATIONS / "versions").glob("*.py"):
        for down, name in _REVISION.findall(path.read_text(encoding="utf-8")):
            if name:
                (revised if down else revisions).add(name)
    heads = revisions - revised
    if len(heads) != 1:
        raise PortError(f"the migrations have {len(heads)} heads: {sorted(heads)}")
    return heads.pop()


async def check_migrated(engine: AsyncEngine) -> None:
    """Refuse to work on a database that is not at the newest migration."""
    head = migration_head()
    async with engine.connect() as connection:
        try:
            current = (
                await connection.execute(text("SELECT version_num FROM alembic_version"))
            ).scalar()
        except DBAPIError:  # no such table: never migrated
            current = None
    if current != head:
        raise PortError(
            f"the database is at migration {current or 'none'}, Port needs {head}: "
            "run `port db upgrade`"
        )


def new_revision(message: str) -> str:
    """Autogenerate a migration from the models, against a scratch SQLite at head."""
    from alembic import command

    with tempfile.TemporaryDirectory() as tmp:
        config = alembic_config(f"sqlite+aiosqlite:///{Path(tmp) / 'scratch.db'}")
        command.upgrade(config, "head")
        script = command.revision(config, message=message, autogenerate=True)
    scripts = script if isinstance(script, list) else [script]
    return ", ".join(s.path for s in scripts if s is not None)
