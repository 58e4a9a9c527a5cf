"""Catalogue queries and repository mutations. Thin: the work is in port.catalogue."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from contextlib import suppress
from datetime import timedelta
from typing import Annotated, Any

import strawberry
from sqlalchemy import ColumnElement, and_, func, or_, select
from strawberry import relay
from strawberry.field_extensions import InputMutationExtension

from port.api import permissions
from port.api.context import Info
from port.api.pagination import Window, row_id
from port.api.types import (
    AppConnection,
    AppType,
    IndexRunEvent,
    IndexRunStatus,
    IndexRunType,
    RepoConnection,
    RepoType,
    connection_of,
)
from port.catalogue import repos as repo_service
from port.catalogue.jobs import running_index_jobs, scan_now
from port.catalogue.models import App, IndexRun, Repo
from port.catalogue.queries import listed, search_apps
from port.catalogue.repos import LISTED
from port.errors import NotFound, RepoUnreachable
from port.orm import utcnow

# How often an indexRuns subscription looks at the database: runs of other processes
# (workers, other servers) show within this time; this process's wake it at once.
RUN_POLL_SECONDS = 1.0
# Finished runs are read from this far back, not by "id above the last one": ids are
# taken when a run is stored but become visible at commit, which concurrent runs (a
# scanRepo beside a worker) may do out of order.
RUN_WINDOW = timedelta(seconds=60)


def repo_pk(gid: relay.GlobalID) -> int:
    return row_id(gid, "Repo")


def runs_topic(repo_id: int) -> str:
    return f"index-runs:{repo_id}"


@strawberry.type
class CatalogueQuery:
    @strawberry.field(description="Registered repositories, oldest first.")
    async def repos(
        self, info: Info, first: int | None = None, after: str | None = None
    ) -> RepoConnection:
        permissions.catalogue_reader(info)
        window = Window.of(first, after, max_size=info.context.state.settings.max_page_size)
        async with info.context.state.sessions() as session:
            total = await session.scalar(select(func.count()).select_from(Repo).where(LISTED)) or 0
            rows = await session.scalars(
                select(Repo)
                .where(LISTED)
                .order_by(Repo.id)
                .offset(window.offset)
                .limit(window.limit)
            )
            page = [RepoType.from_row(r) for r in rows]
        return connection_of(RepoConnection, page, window, total)  # type: ignore[no-any-return]

    @strawberry.field(description="Apps by identifier; `search` matches identifier, name, text.")
    async def apps(
        self,
        info: Info,
        search: str | None = None,
        first: int | None = None,
        after: str | None = None,
    ) -> AppConnection:
        permissions.catalogue_reader(info)
        window = Window.of(first, after, max_size=info.context.state.settings.max_page_size)
        async with info.context.state.sessions() as session:
            total, rows = await search_apps(
                session, search=search, offset=window.offset, limit=window.limit
            )
            page = [AppType.from_row(a) for a in rows]
        return connection_of(AppConnection, page, window, total)  # type: ignore[no-any-return]

    @strawberry.field(description="One app by its identifier, or null.")
    async def app(self, info: Info, identifier: str) -> AppType | None:
        permissions.catalogue_reader(info)
        async with info.context.state.sessions() as session:
            row = await session.scalar(select(App).where(App.identifier == identifier, listed()))
        return AppType.from_row(row) if row is not None else None


@strawberry.type
class CreateRepoPayload:
    repo: RepoType


@strawberry.type
class ScanRepoPayload:
    run: IndexRunType = strawberry.field(description="The finished run.")


@strawberry.type
class UpdateRepoPayload:
    repo: RepoType


@strawberry.type
class DeleteRepoPayload:
    deleted_id: relay.GlobalID


SecretText = Annotated[
    str | None,
    strawberry.argument(description="Shared secret of the forge's webhook; never shown again."),
]


async def _may_change(info: Info, id: relay.GlobalID) -> None:
    """NOT_FOUND for no such repository; FORBIDDEN unless the caller may change it."""
    principal = permissions.repo_manager(info)
    async with info.context.state.sessions() as session:
        row = (
            await session.execute(
                select(Repo.id, Repo.added_by_id).where(Repo.id == repo_pk(id), LISTED)
            )
        ).first()
    if row is None:
        raise NotFound(f"no repository {id}")
    repo_service.check_changer(principal, row.added_by_id)


@strawberry.type
class CatalogueMutation:
    @strawberry.mutation(
        description="Register a repository (scan it with scanRepo). Only `url` is required.",
        extensions=[InputMutationExtension()],
    )
    async def create_repo(
        self,
        info: Info,
        url: str,
        branch: str | None = None,
        manifest_path: str = "port.yaml",
        tag_prefix: str = "",
        webhook_secret: SecretText = None,
        channels: list[str] | None = None,
    ) -> CreateRepoPayload:
        principal = permissions.repo_manager(info)
        settings = info.context.state.settings
        async with info.context.state.sessions() as session, session.begin():
            repo = await repo_service.add_repo(
                session,
                url,
                allow_local=settings.allow_local_repos,
                allowed_networks=settings.repo_allowed_networks,
                branch=branch,
                manifest_path=manifest_path,
                tag_prefix=tag_prefix,
                webhook_secret=webhook_secret,
                added_by=principal.user_id,
                channels=channels or (),
            )
        info.context.state.cache.bump()
        return CreateRepoPayload(repo=RepoType.from_row(repo))

    @strawberry.mutation(
        description="Index a repository now and return the finished run; REPO_UNREACHABLE "
        "when the remote cannot be read (the failed run is the repo's lastRun).",
        extensions=[InputMutationExtension()],
    )
    async def scan_repo(self, info: Info, id: relay.GlobalID) -> ScanRepoPayload:
        await _may_change(info, id)
        state = info.context.state
        topic = runs_topic(repo_pk(id))
        running = IndexRunEvent(repo_id=id, status=IndexRunStatus.RUNNING, run=None)
        outcome = await scan_now(
            state.sessions,
            state.settings,
            repo_pk(id),
            started=lambda: state.broker.publish(topic, running),
        )
        state.cache.bump()  # every run, even a failed one, is a repo's new lastRun
        await state.after_index(outcome)
        run = IndexRunType.from_row(outcome.run)
        state.broker.publish(topic, IndexRunEvent(repo_id=id, status=run.status, run=run))
        if outcome.remote_failed:  # the failed run is recorded: see the repo's lastRun
            raise RepoUnreachable(run.message or "the remote could not be read")
        return ScanRepoPayload(run=run)

    @strawberry.mutation(
        description="Change a repository; omitted fields stay as they are, null clears "
        "the branch and the secret. A changed branch, manifest path or tag prefix makes "
        "the next scan read everything again; `channels` replaces the followed channels.",
        extensions=[InputMutationExtension()],
    )
    async def update_repo(
        self,
        info: Info,
        id: relay.GlobalID,
        branch: str | None = strawberry.UNSET,
        manifest_path: str | None = strawberry.UNSET,
        tag_prefix: str | None = strawberry.UNSET,
        webhook_secret: SecretText = strawberry.UNSET,
        channels: list[str] | None = strawberry.UNSET,
    ) -> UpdateRepoPayload:
        await _may_change(info, id)
        given = {
            "branch": branch,
            "manifest_path": manifest_path,
            "tag_prefix": tag_prefix,
            "webhook_secret": webhook_secret,
            "channels": channels,
        }
        changes: dict[str, Any] = {
            name: value
            for name, value in given.items()
            if value is not strawberry.UNSET
            and (value is not None or name in ("branch", "webhook_secret"))
        }
        async with info.context.state.sessions() as session, session.begin():
            repo = await repo_service.update_repo(session, repo_pk(id), **changes)
        info.context.state.cache.bump()
        return UpdateRepoPayload(repo=RepoType.from_row(repo))

    @strawberry.mutation(
        description="Delete a repository, its apps, releases and runs. CONFLICT while "
        "users have Setups of its apps: it names them (their data is never deleted "
        "silently). An admin's `force` deletes it all the same: its releases are "
        "withdrawn, those Setups keep running their release without updates, and each "
        "owner gets a REPO_DELETED event and a notice.",
        extensions=[InputMutationExtension()],
    )
    async def delete_repo(
        self, info: Info, id: relay.GlobalID, force: bool = False
    ) -> DeleteRepoPayload:
        await _may_change(info, id)
        if force:
            permissions.admin(info)
        state = info.context.state
        await state.operations.delete_repo(
            repo_pk(id), describe=lambda pk: relay.to_base64("Setup", pk), force=force
        )
        state.cache.bump()
        return DeleteRepoPayload(deleted_id=id)


def _recent_runs(repo_id: int, newest: int) -> ColumnElement[bool]:
    """Runs of the repository finished within the window, or newer than ``newest``
    (whatever the clocks of the processes that finished them say)."""
    since = utcnow() - RUN_WINDOW
    return and_(
        IndexRun.repo_id == repo_id, or_(IndexRun.finished_at >= since, IndexRun.id > newest)
    )


def _starts_told(wakeups: asyncio.Queue[Any]) -> list[IndexRunEvent]:
    """The starts this process's scanRepo announced since the last look."""
    told = []
    while not wakeups.empty():
        event = wakeups.get_nowait()
        if event.status is IndexRunStatus.RUNNING:
            told.append(event)
    return told


async def _wakeup(wakeups: asyncio.Queue[Any]) -> None:
    """Until this process's scanRepo tells of a run (left in the queue to be read)."""
    event = await wakeups.get()
    wakeups.put_nowait(event)


@strawberry.type
class CatalogueSubscription:
    @strawberry.subscription(
        description="Index runs of a repository as they finish, whichever Port process "
        "ran them, and as they start (run: null): this server's scanRepo at once, the "
        "index jobs of any worker when seen running."
    )
    async def index_runs(
        self, info: Info, repo_id: relay.GlobalID
    ) -> AsyncGenerator[IndexRunEvent, None]:
        await info.context.authenticate_connection()
        permissions.catalogue_reader(info)
        pk = repo_pk(repo_id)
        state = info.context.state
        with state.stream(info.context.principal), state.broker.listen(runs_topic(pk)) as wakeups:
            # Listening before anything is read: no start of this process is missed.
            async with state.sessions() as session:
                if await session.get(Repo, pk) is None:
                    raise NotFound(f"no repository {repo_id}")
                newest = (
                    await session.scalar(
                        select(func.max(IndexRun.id)).where(IndexRun.repo_id == pk)
                    )
                    or 0
                )
                seen = set(
                    await session.scalars(select(IndexRun.id).where(_recent_runs(pk, newest)))
                )
            announced: set[int] = set()
            while True:
                told = _starts_told(wakeups)
                for _ in told:  # before the finishes read below
                    yield IndexRunEvent(repo_id=repo_id, status=IndexRunStatus.RUNNING, run=None)
                await info.context.recheck()
                async with state.sessions() as session:
                    jobs = [(j.id, j.started_at) for j in await running_index_jobs(session, pk)]
                    recent = list(
                        await session.execute(
                            select(IndexRun.id, IndexRun.started_at).where(_recent_runs(pk, newest))
                        )
                    )
                    if not recent and await session.get(Repo, pk) is None:
                        return  # deleted: the stream ends
                    fresh = [run_id for run_id, _ in recent if run_id not in seen]
                    finished = (  # whole rows only for what is sent
                        list(
                            await session.scalars(
                                select(IndexRun).where(IndexRun.id.in_(fresh)).order_by(IndexRun.id)
                            )
                        )
                        if fresh
                        else []
                    )
                if told:  # a start told here is of a job already running (``scan_now``)
                    announced |= {job_id for job_id, _ in jobs}
                seen = {run_id for run_id, _ in recent}  # what may still show in the window
                newest = max([newest, *seen])
                for row in finished:
                    run = IndexRunType.from_row(row)
                    yield IndexRunEvent(repo_id=repo_id, status=run.status, run=run)
                for job_id, job_started in jobs:
                    # A job whose run has finished (it is about to end) has nothing to start.
                    done = any(started >= job_started for _, started in recent if job_started)
                    if job_id not in announced and not done:
                        yield IndexRunEvent(
                            repo_id=repo_id, status=IndexRunStatus.RUNNING, run=None
                        )
                announced = {job_id for job_id, _ in jobs}
                with suppress(TimeoutError):
                    await asyncio.wait_for(_wakeup(wakeups), RUN_POLL_SECONDS)
