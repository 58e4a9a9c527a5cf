"""Read side of the catalogue: apps with their releases, newest first by semver."""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache
from typing import Any, TypeVar

import semver
from sqlalchemy import ColumnElement, String, cast, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from indexer.urls import redact
from port.catalogue.models import App, AppLogo, Release, ReleaseRow, Repo
from port.errors import InvalidInput

R = TypeVar("R", bound=ReleaseRow)  # an entity or a plain row: what was read

MAX_SEARCH = 200  # characters of a search text


@lru_cache(maxsize=8192)
def parsed(version: str) -> semver.Version:
    """A release's version, parsed once (pages sort the same versions again and again)."""
    return semver.Version.parse(version)


def newest_first(releases: Iterable[R]) -> list[R]:
    return sorted(releases, key=lambda r: parsed(r.version), reverse=True)


def latest_release(releases: Iterable[R], *, prereleases: bool = False) -> R | None:
    """The release an install runs by default: the newest current, not withdrawn one
    (pre-releases only with ``prereleases``), never a channel's build."""
    return next(
        (
            r
            for r in newest_first(releases)
            if r.current
            and not r.withdrawn
            and r.channel is None
            and (prereleases or not parsed(r.version).prerelease)
        ),
        None,
    )


async def logo_digests(session: AsyncSession, app_ids: list[int]) -> dict[int, str]:
    """The digest of each of these apps' logo, for those that have one (``AppLogo``)."""
    if not app_ids:
        return {}
    rows = await session.execute(
        select(AppLogo.app_id, AppLogo.digest).where(AppLogo.app_id.in_(app_ids))
    )
    return {row.app_id: row.digest for row in rows}


async def list_apps(session: AsyncSession) -> list[App]:
    """Every app with its repo, releases and flavours loaded (three IN queries)."""
    rows = await session.scalars(
        select(App)
        .where(listed())
        .order_by(App.identifier)
        .options(
            selectinload(App.repo),
            selectinload(App.releases).selectinload(Release.flavours),
        )
    )
    return list(rows)


def app_document(app: App) -> dict[str, Any]:
    """The JSON shape of `port apps --json` (a contract for scripts)."""
    return {
        "identifier": app.identifier,
        "name": app.name,
        "description": app.description,
        "repo": redact(app.repo.url),
        "releases": [
            {
                "version": release.version,
                "current": release.current,
                "withdrawn": release.withdrawn,
                "source": release.source,
                "channel": release.channel,
                "ref": release.git_ref,
                "commit": release.commit,
                "flavours": [
                    {
                        "name": f.name,
                        "image": f.image,
                        "selectors": f.selectors,
                        "capabilities": f.capabilities,
                    }
                    for f in release.flavours
                ],
            }
            for release in newest_first(app.releases)
        ],
    }


def _like(text: str) -> str:
    """A LIKE pattern matching ``text`` literally anywhere."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def listed() -> ColumnElement[bool]:
    """Apps of repositories not deleted (``repos.retire_repo`` keeps their rows for the
    Setups that run them, out of every listing)."""
    return App.repo_id.in_(select(Repo.id).where(Repo.deleted_at.is_(None)))


def app_filter(search: str | None = None, category: str | None = None) -> list[ColumnElement[bool]]:
    """WHERE clauses: ``search`` in identifier, name or description (any case), and an
    app listing ``category``. INVALID_INPUT for an overlong text."""
    where: list[ColumnElement[bool]] = [listed()]
    for text in (search, category):
        if text is not None and len(text) > MAX_SEARCH:
            raise InvalidInput(f"a search text is at most {MAX_SEARCH} characters")
    if search:
        pattern = _like(search)
        where.append(
            or_(
                App.identifier.ilike(pattern, escape="\\"),
                App.name.ilike(pattern, escape="\\"),
                App.description.ilike(pattern, escape="\\"),
            )
        )
    if category:
        # categories is a JSON list of strings: its text holds "<category>" quoted.
        quoted = _like(f'"{category}"')
        where.append(cast(App.categories, String).ilike(quoted, escape="\\"))
    return where


async def search_apps(
    session: AsyncSession,
    *,
    search: str | None = None,
    category: str | None = None,
    offset: int = 0,
    limit: int = 50,
    with_newest: bool = False,
) -> tuple[int, list[App]]:
    """How many apps match, and the page of them by identifier. ``with_newest``: each
    app's releases loaded too (what ``latest_release`` reads, no more), and the flavours
    of each app's latest release: two more queries for the page, and only the flavours
    a storefront card shows."""
    where = app_filter(search, category)
    total = await session.scalar(select(func.count()).select_from(App).where(*where)) or 0
    query = select(App).where(*where).order_by(App.identifier).offset(offset).limit(limit)
    if with_newest:
        query = query.options(
            selectinload(App.releases).load_only(
                Release.id,
                Release.app_id,
                Release.version,
                Release.current,
                Release.withdrawn,
                Release.channel,
            )
        )
    apps = list(await session.scalars(query))
    if with_newest:
        newest = [r.id for r in (latest_release(a.releases) for a in apps) if r is not None]
        # Fills the flavours of those (already identity-mapped) releases in one query.
        await session.scalars(
            select(Release).where(Release.id.in_(newest)).options(selectinload(Release.flavours))
        )
    return total, apps
