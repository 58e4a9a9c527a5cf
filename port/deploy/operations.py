"""What a person does to Setups, whole: one transaction of ``port.deploy.setups`` and
the wake-up of whoever acts on it (the reconciler, the job worker); and deleting a
repository, which must never take users' Setups with it.

The GraphQL API and the pages both call these, so a Setup created, stopped or deleted
from either is the same thing, checked by the same rules (``setups.get_setup`` answers
NOT_FOUND for a Setup the principal may not see).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import joinedload

from indexer.urls import redact
from port.catalogue import repos
from port.catalogue.models import App, Repo
from port.catalogue.scanning import mirror_path
from port.deploy import secrets, setups
from port.deploy.grants import Consent
from port.deploy.models import EventKind, Setup, UpdatePolicy
from port.deploy.reconciler import Reconciler
from port.deploy.updater import Announce, plan_updates, request_update, silent
from port.errors import Conflict, Forbidden
from port.principal import Principal
from port.settings import Settings


@dataclass(frozen=True)
class Operations:
    sessions: async_sessionmaker[AsyncSession]
    settings: Settings
    reconciler: Reconciler
    wake_jobs: Callable[[], None]
    announce: Announce = silent  # notices to users (Notifier.announce)

    async def create(
        self, principal: Principal, request: setups.SetupRequest, *, start: bool = False
    ) -> int:
        """A new Setup's id (started when ``start``); NoFittingFlavour creates nothing."""
        caps = await self.reconciler.capabilities()
        async with self.sessions() as session, session.begin():
            setup = await setups.create_setup(session, principal, request, caps, self.settings)
            if start:
                await setups.start_setup(session, setup, caps, self.settings)
            setup_id = setup.id
        self.reconciler.wake()
        return setup_id

    async def start(self, principal: Principal, setup_id: int) -> None:
        caps = await self.reconciler.capabilities()
        async with self.sessions() as session, session.begin():
            setup = await setups.get_setup(session, principal, setup_id)
            await setups.start_setup(session, setup, caps, self.settings)
        self.reconciler.wake()

    async def stop(self, principal: Principal, setup_id: int) -> None:
        async with self.sessions() as session, session.begin():
            setups.stop_setup(session, await setups.get_setup(session, principal, setup_id))
        self.reconciler.wake()

    async def restart(self, principal: Principal, pod_id: int) -> None:
        async with self.sessions() as session, session.begin():
            setups.restart_pod(session, await setups.get_pod(session, principal, pod_id))
        self.reconciler.wake()

    async def roll_out(self, principal: Principal, setup_id: int, version: str) -> None:
        """Queue a health-gated rollout to ``version`` (a job; events tell how it went)."""
        async with self.sessions() as session, session.begin():
            setup = await setups.get_setup(session, principal, setup_id)
            await request_update(session, setup, version)
        self.wake_jobs()

    async def follow(
        self,
        principal: Principal,
        setup_id: int,
        policy: UpdatePolicy,
        version_range: str | None = None,
        include_prereleases: bool = False,
    ) -> None:
        """Which releases the Setup follows from now on; an update it allows is queued."""
        async with self.sessions() as session, session.begin():
            setup = await setups.get_setup(session, principal, setup_id)
            setups.set_policy(session, setup, policy, version_range, include_prereleases)
            await plan_updates(session, setup_ids=[setup.id])
        self.wake_jobs()

    async def grant(self, principal: Principal, setup_id: int, consents: list[Consent]) -> None:
        """The Setup's grants from now on; an update that waited for them is queued."""
        async with self.sessions() as session, session.begin():
            setup = await setups.get_setup(session, principal, setup_id)
            await setups.set_grants(session, setup, consents, self.settings)
        self.wake_jobs()

    async def set_secrets(
        self, principal: Principal, setup_id: int, values: dict[str, str | None]
    ) -> None:
        """Set (a value) or remove (None) the Setup's secrets; Pods started from now on
        get them (restart a running one for it to)."""
        async with self.sessions() as session, session.begin():
            setup = await setups.get_setup(session, principal, setup_id)
            await secrets.set_secrets(session, setup, values, self.settings)

    async def set_redeem_token(self, principal: Principal, token: str | None) -> None:
        """The caller's Arkitekt redeem token (None forgets it)."""
        if principal.user_id is None:
            raise Forbidden("a redeem token belongs to a local user; this credential has none")
        async with self.sessions() as session, session.begin():
            await secrets.set_redeem_token(session, principal.user_id, token, self.settings)

    async def delete(self, principal: Principal, setup_id: int) -> None:
        """The Setup is gone; its containers are removed now, or on the next pass.

        A reconcile pass or rollout under way (in any process) drops its changes to the
        deleted rows, and the next pass removes whatever it started."""
        async with self.sessions() as session, session.begin():
            setup = await setups.get_setup(session, principal, setup_id)
            containers = [p.container_id for p in setups.active_pods(setup) if p.container_id]
            app_id = setup.app_id
            await session.delete(setup)
            await session.flush()
            await self._drop_retired_repo(session, app_id)
        await self.reconciler.remove_containers(containers)
        self.reconciler.wake()

    async def delete_repo(
        self,
        repo_id: int,
        describe: Callable[[int], str] = lambda pk: f"setup {pk}",
        *,
        force: bool = False,
    ) -> None:
        """Delete a repository with its apps, releases, runs and mirror. While users have
        Setups of its apps: CONFLICT naming them (``describe`` says how), or with
        ``force`` (an admin's) the repository is retired instead: its releases are
        withdrawn, the Setups keep running their release without updates, and each
        owner gets an event and a notice. Who may is the caller's to check first
        (``repos.check_changer``; ``force``: admins only)."""
        async with self.sessions() as session, session.begin():
            kept = await setups.setups_of_repo(session, repo_id)
            if kept and not force:
                named = ", ".join(
                    f"{owner}'s {app} ({describe(pk)})" for pk, owner, app in kept[:10]
                )
                more = f" and {len(kept) - 10} more" if len(kept) > 10 else ""
                raise Conflict(
                    f"{len(kept)} Setup{'s' if len(kept) > 1 else ''} of this repository's "
                    f"apps exist: {named}{more}; they must be deleted first (or an admin "
                    "deletes the repository with force: they keep running, without updates)"
                )
            if kept:
                repo = await repos.retire_repo(session, repo_id)
                owners = await self._tell_setups_of_retired(session, repo, [pk for pk, *_ in kept])
            else:
                repo = await repos.delete_repo(session, repo_id)
                owners = {}
            mirror = mirror_path(self.settings, repo)
        shutil.rmtree(mirror, ignore_errors=True)
        for setup_id, (owner_id, app) in owners.items():
            data = {"setup": setup_id, "app": app, "repo": repo_id}
            await self.announce("repo.deleted", data, [owner_id])
        if owners:
            self.wake_jobs()

    @staticmethod
    async def _tell_setups_of_retired(
        session: AsyncSession, repo: Repo, setup_ids: list[int]
    ) -> dict[int, tuple[int, str]]:
        """An event on each Setup of a retired repository; (owner, app) by Setup id."""
        told = {}
        rows = await session.scalars(
            select(Setup).where(Setup.id.in_(setup_ids)).options(joinedload(Setup.app))
        )
        for setup in rows:
            message = (
                f"repository {redact(repo.url)} was deleted by an admin: this Setup keeps "
                "running its release, and gets no more updates"
            )
            setups.record(session, setup, EventKind.REPO_DELETED, message)
            told[setup.id] = (setup.owner_id, setup.app.identifier)
        return told

    async def _drop_retired_repo(self, session: AsyncSession, app_id: int) -> None:
        """Delete a retired repository once no Setup of its apps is left."""
        repo = await session.scalar(
            select(Repo).join(App, App.repo_id == Repo.id).where(App.id == app_id)
        )
        if repo is None or repo.deleted_at is None:
            return
        if not await setups.setups_of_repo(session, repo.id):
            await session.delete(repo)
