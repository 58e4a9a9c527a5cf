"""Alembic environment: runs migrations on the async engine of the configured URL."""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy.engine import Connection

from port.db import create_engine
from port.tables import metadata

target_metadata = metadata


def _run(connection: Connection) -> None:
    sqlite = connection.dialect.name == "sqlite"
    if sqlite:
        # A batch migration rebuilds a table (copy, drop, rename): with foreign keys on,
        # the drop would cascade into every child table. The pragma is a no-op inside a
        # transaction, so it comes first; the check afterwards proves nothing dangles.
        connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=sqlite,  # SQLite cannot ALTER much
    )
    with context.begin_transaction():
        context.run_migrations()
    if sqlite:
        dangling = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
        if dangling:
            raise RuntimeError(f"migrations left rows without their parents: {dangling[:5]}")


async def _run_async() -> None:
    url = context.config.get_main_option("sqlalchemy.url")
    if not url:
        raise SystemExit("sqlalchemy.url is not set: run migrations through port.db.upgrade")
    engine = create_engine(url)
    try:
        async with engine.connect() as connection:
            await connection.run_sync(_run)
            await connection.commit()
    finally:
        await engine.dispose()


if context.is_offline_mode():
    raise SystemExit("Port runs migrations online only: use `port db upgrade`.")
asyncio.run(_run_async())
