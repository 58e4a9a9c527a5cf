"""Read side of the catalogue: apps with their releases, newest first by semver."""

from __future__ import annotations

from typing import Any

import semver
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from indexer.urls import redact
from port.catalogue.models import App, Release


def newest_first(releases: list[Release]) -> list[Release]:
    return sorted(releases, key=lambda r: semver.Version.parse(r.version), reverse=True)


async def list_apps(session: AsyncSession) -> list[App]:
    """Every app with its repo, releases and flavours loaded (three IN queries)."""
    rows = await session.scalars(
        select(App)
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
                "ref": release.git_ref,
                "commit": release.commit,
                "flavours": [
                    {"name": f.name, "image": f.image, "selectors": f.selectors}
                    for f in release.flavours
                ],
            }
            for release in newest_first(app.releases)
        ],
    }
