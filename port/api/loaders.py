"""DataLoaders: one ``IN (...)`` query per batch, created fresh for every request.

A page of 50 apps with their releases and flavours costs the same few statements as a
page of 5: apps, then releases of all those apps, then flavours of all those releases.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import selectinload
from strawberry.dataloader import DataLoader

from port.accounts.models import Token
from port.apps.models import PublishedPort
from port.catalogue.models import (
    App,
    Flavour,
    FlavourRow,
    IndexRun,
    IndexRunError,
    Release,
    ReleaseRow,
    Repo,
)
from port.catalogue.queries import newest_first
from port.deploy.models import Setup, SetupEvent
from port.deploy.setups import visible
from port.principal import Principal

EVENTS_SHOWN = 50  # the newest events a Setup shows

Sessions = async_sessionmaker[AsyncSession]


def _by_id(sessions: Sessions, model: Any) -> DataLoader[int, Any]:
    async def load(ids: Sequence[int]) -> list[Any]:
        async with sessions() as session:
            rows = {r.id: r for r in await session.scalars(select(model).where(model.id.in_(ids)))}
        return [rows.get(i) for i in ids]

    return DataLoader(load_fn=load)


def _grouped(
    sessions: Sessions,
    query: Callable[[Sequence[int]], Any],
    key: Callable[[Any], int],
    order: Callable[[list[Any]], list[Any]] = lambda rows: rows,
    *,
    plain: bool = False,
) -> DataLoader[int, list[Any]]:
    """Rows grouped by ``key``: entities, or with ``plain`` the rows of a query of
    columns (no identity map, no instance states: nothing left in reference cycles)."""

    async def load(ids: Sequence[int]) -> list[list[Any]]:
        groups: dict[int, list[Any]] = defaultdict(list)
        async with sessions() as session:
            rows = await (session.execute if plain else session.scalars)(query(ids))
            for row in rows:
                groups[key(row)].append(row)
        return [order(groups.get(i, [])) for i in ids]

    return DataLoader(load_fn=load)


def _last_runs(sessions: Sessions) -> DataLoader[int, IndexRun | None]:
    async def load(repo_ids: Sequence[int]) -> list[IndexRun | None]:
        newest = (
            select(func.max(IndexRun.id))
            .where(IndexRun.repo_id.in_(repo_ids))
            .group_by(IndexRun.repo_id)
        )
        async with sessions() as session:
            rows = await session.scalars(select(IndexRun).where(IndexRun.id.in_(newest)))
            by_repo = {r.repo_id: r for r in rows}
        return [by_repo.get(i) for i in repo_ids]

    return DataLoader(load_fn=load)


def _newest_events(sessions: Sessions) -> DataLoader[int, list[SetupEvent]]:
    """The newest EVENTS_SHOWN events of each Setup, oldest first: one query for all."""

    async def load(setup_ids: Sequence[int]) -> list[list[SetupEvent]]:
        rank = (
            func.row_number()
            .over(partition_by=SetupEvent.setup_id, order_by=SetupEvent.id.desc())
            .label("rank")
        )
        ranked = select(SetupEvent.id, rank).where(SetupEvent.setup_id.in_(setup_ids)).subquery()
        newest = select(ranked.c.id).where(ranked.c.rank <= EVENTS_SHOWN)
        groups: dict[int, list[SetupEvent]] = defaultdict(list)
        async with sessions() as session:
            rows = await session.scalars(
                select(SetupEvent).where(SetupEvent.id.in_(newest)).order_by(SetupEvent.id)
            )
            for row in rows:
                groups[row.setup_id].append(row)
        return [groups.get(i, []) for i in setup_ids]

    return DataLoader(load_fn=load)


def _visible_setups(sessions: Sessions, principal: Principal) -> DataLoader[int, Setup | None]:
    """Setups by id as ``principal`` may see them (others: None), with their owner and
    Pods loaded (what ``SetupType.from_row`` reads)."""

    async def load(ids: Sequence[int]) -> list[Setup | None]:
        query = visible(principal).where(Setup.id.in_(ids))
        query = query.options(selectinload(Setup.owner), selectinload(Setup.pods))
        async with sessions() as session:
            rows = {r.id: r for r in await session.scalars(query)}
        return [rows.get(i) for i in ids]

    return DataLoader(load_fn=load)


@dataclass
class Loaders:
    """Every loader of one request; their caches die with it."""

    repo: DataLoader[int, Repo | None]
    app: DataLoader[int, App | None]
    release: DataLoader[int, Release | None]
    flavour: DataLoader[int, Flavour | None]
    run: DataLoader[int, IndexRun | None]
    releases_of_app: DataLoader[int, list[ReleaseRow]]  # newest first by semver
    flavours_of_release: DataLoader[int, list[FlavourRow]]  # manifest order
    apps_of_repo: DataLoader[int, list[App]]
    errors_of_run: DataLoader[int, list[IndexRunError]]
    last_run_of_repo: DataLoader[int, IndexRun | None]
    tokens_of_user: DataLoader[int, list[Token]]  # oldest first
    events_of_setup: DataLoader[int, list[SetupEvent]]  # the newest, oldest first
    published_of_setup: DataLoader[int, list[PublishedPort]]  # by name
    sessions: Sessions
    _setups: dict[Principal, DataLoader[int, Setup | None]] = field(default_factory=dict)

    def setups_seen_by(self, principal: Principal) -> DataLoader[int, Setup | None]:
        """Setups as ``principal`` may see them (a stream's caller may sign in late)."""
        if principal not in self._setups:
            self._setups[principal] = _visible_setups(self.sessions, principal)
        return self._setups[principal]

    @classmethod
    def create(cls, sessions: Sessions) -> Loaders:
        return cls(
            repo=_by_id(sessions, Repo),
            app=_by_id(sessions, App),
            release=_by_id(sessions, Release),
            flavour=_by_id(sessions, Flavour),
            run=_by_id(sessions, IndexRun),
            # The lists a catalogue page holds by the thousand: plain rows.
            releases_of_app=_grouped(
                sessions,
                lambda ids: select(Release.__table__).where(Release.app_id.in_(ids)),
                lambda r: r.app_id,
                newest_first,
                plain=True,
            ),
            flavours_of_release=_grouped(
                sessions,
                lambda ids: (
                    select(Flavour.__table__)
                    .where(Flavour.release_id.in_(ids))
                    .order_by(Flavour.position, Flavour.id)
                ),
                lambda f: f.release_id,
                plain=True,
            ),
            published_of_setup=_grouped(
                sessions,
                lambda ids: (
                    select(PublishedPort)
                    .where(PublishedPort.setup_id.in_(ids))
                    .order_by(PublishedPort.name)
                ),
                lambda p: p.setup_id,
            ),
            apps_of_repo=_grouped(
                sessions,
                lambda ids: select(App).where(App.repo_id.in_(ids)).order_by(App.identifier),
                lambda a: a.repo_id,
            ),
            errors_of_run=_grouped(
                sessions,
                lambda ids: (
                    select(IndexRunError)
                    .where(IndexRunError.run_id.in_(ids))
                    .order_by(IndexRunError.id)
                ),
                lambda e: e.run_id,
            ),
            last_run_of_repo=_last_runs(sessions),
            tokens_of_user=_grouped(
                sessions,
                lambda ids: select(Token).where(Token.user_id.in_(ids)).order_by(Token.id),
                lambda t: t.user_id,
            ),
            events_of_setup=_newest_events(sessions),
            sessions=sessions,
        )
