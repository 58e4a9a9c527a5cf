"""What every `port` command shares: a database session for one command, JSON output."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import click
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

# Every model registered before a command's first flush: a row of one domain may name
# another's table (repos.added_by_id -> users), unknown to the command's own imports.
import port.tables  # noqa: F401
from manifests.fields import UNSHOWABLE
from port import db
from port.errors import PortError
from port.settings import Settings, get_settings

T = TypeVar("T")
Sessions = async_sessionmaker[AsyncSession]


def with_db(work: Callable[[Sessions, Settings], Awaitable[T]]) -> T:
    """Run ``work`` against the configured database; PortError becomes a clean exit 1."""
    settings = get_settings()

    async def main() -> T:
        engine = db.create_engine(settings.sqlalchemy_url)
        try:
            await db.check_migrated(engine)
            return await work(db.sessionmaker(engine), settings)
        finally:
            await engine.dispose()

    try:
        return asyncio.run(main())
    except PortError as exc:
        raise click.ClickException(str(exc)) from exc
    except (SQLAlchemyError, OSError) as exc:
        raise unusable_database(settings, exc) from exc


def shown_database(settings: Settings) -> str:
    """The catalogue database's URL as it may be printed: without its password."""
    return make_url(settings.sqlalchemy_url).render_as_string(hide_password=True)


def unusable_database(settings: Settings, exc: Exception) -> click.ClickException:
    """Connection refused, bad URL, locked file: which database, and why, not a traceback."""
    why = str(exc).splitlines()[0] if str(exc) else ""
    return click.ClickException(
        f"the catalogue database {shown_database(settings)} is not usable: "
        f"{type(exc).__name__}: {why}"
    )


# What manifests may not hold in shown text, and tabs and line breaks: a command's lines
# are its own. Data from before that check, or quoted in errors, is escaped here.
_UNSHOWN = re.compile(f"[{UNSHOWABLE}\t\n]")


def printable(text: str) -> str:
    """``text`` with what would drive or trick a terminal escaped (``\\x1b``, ``\\u202e``)."""
    return _UNSHOWN.sub(
        lambda m: f"\\x{ord(m[0]):02x}" if ord(m[0]) <= 0xFF else f"\\u{ord(m[0]):04x}", text
    )


def say(text: str, err: bool = False) -> None:
    """One line of a command's output: its manifest-made parts cannot drive the terminal."""
    click.echo(printable(text), err=err)


def echo_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, default=str))
