"""The installation's instance name: ``PORT_INSTANCE``, or one made once and stored.

Every engine object Port makes carries the instance (the ``port.instance`` label, name
prefixes), and Port manages only its own. A fixed default would make two installations
on one engine remove each other's containers as strangers'; a name stored in the
database is shared by every Port process of one installation and by no other.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from concurrent.futures import ThreadPoolExecutor

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from port import db
from port.deploy.models import Installation
from port.errors import PortError
from port.orm import insert
from port.settings import Settings

log = logging.getLogger(__name__)


def new_name() -> str:
    """``port-`` and 8 random hex digits: unique enough among a lab's installations."""
    return f"port-{secrets.token_hex(4)}"


async def stored_instance(sessions: async_sessionmaker[AsyncSession]) -> str:
    """The stored name, made on first use. Race-free: the row has one fixed id, so of two
    processes making it at once one insert wins and both read the winner's name."""
    async with sessions() as session, session.begin():
        name = await session.scalar(select(Installation.instance).where(Installation.id == 1))
        if name is None:
            await session.execute(
                insert(session, Installation)
                .values(id=1, instance=new_name())
                .on_conflict_do_nothing()
            )
            name = await session.scalar(select(Installation.instance).where(Installation.id == 1))
    if name is None:  # cannot be: inserted, or another process's insert won
        raise PortError("the installation's instance name could not be stored")
    return name


async def _read(settings: Settings) -> str:
    engine = db.create_engine(settings.sqlalchemy_url)
    try:
        return await stored_instance(db.sessionmaker(engine))
    finally:
        await engine.dispose()


def resolved(settings: Settings) -> Settings:
    """``settings`` with its instance name filled in (from the database when unset).

    Synchronous, for the places that wire Port together; it runs on a thread of its own
    so that it works inside a running event loop too.
    """
    if settings.instance is not None:
        return settings
    with ThreadPoolExecutor(max_workers=1) as pool:
        name = pool.submit(asyncio.run, _read(settings)).result()
    log.info("instance %s (stored in the database; PORT_INSTANCE overrides it)", name)
    return settings.model_copy(update={"instance": name})
