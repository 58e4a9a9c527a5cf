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

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from port.catalogue import repos
from port.catalogue.scanning import mirror_path
from port.deploy import setups
from port.deploy.models import UpdatePolicy
from port.deploy.reconciler import Reconciler
from port.deploy.updater import plan_updates, request_update
from port.errors import Conflict
from port.principal import Principal
from port.settings import Settings


@dataclass(frozen=True)
class Operations:
    sessions: async_sessionmaker[AsyncSession]
    settings: Settings
    reconciler: Reconciler
    wake_jobs: Callable[[], None]

    async def create(
        self, principal: Principal, request: setups.SetupRequest, *, start: bool = False
    ) -> int:
        """A new Setup's id (started when ``start``); NoFittingFlavour creates nothing."""
        caps = await self.reconciler.capabilities()
        async with self.sessions() as session, session.begin():
            setup = await setups.create_setup(session, principal, request, caps)
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

    async def delete(self, principal: Principal, setup_id: int) -> None:
        """The Setup is gone; its containers are removed now, or on the next pass.

        Waits for a reconcile pass of this process to end (a launch under way finishes
        or drops its work); a pass of another process drops its changes to the deleted
        rows and the next one removes what it started."""
        async with self.reconciler.lock, self.sessions() as session, session.begin():
            setup = await setups.get_setup(session, principal, setup_id)
            containers = [p.container_id for p in setups.active_pods(setup) if p.container_id]
            await session.delete(setup)
        await self.reconciler.remove_containers(containers)
        self.reconciler.wake()

    async def delete_repo(
        self, repo_id: int, describe: Callable[[int], str] = lambda pk: f"setup {pk}"
    ) -> None:
        """Delete a repository with its apps, releases, runs and mirror; CONFLICT naming
        the Setups (``describe`` says how) while users have Setups of its apps. Who may
        is the caller's to check first (``repos.check_changer``)."""
        async with self.sessions() as session, session.begin():
            kept = await setups.setups_of_repo(session, repo_id)
            if kept:
                named = ", ".join(
                    f"{owner}'s {app} ({describe(pk)})" for pk, owner, app in kept[:10]
                )
                more = f" and {len(kept) - 10} more" if len(kept) > 10 else ""
                raise Conflict(
                    f"{len(kept)} Setup{'s' if len(kept) > 1 else ''} of this repository's "
                    f"apps exist: {named}{more}; they must be deleted first"
                )
            repo = await repos.delete_repo(session, repo_id)
            mirror = mirror_path(self.settings, repo)
        shutil.rmtree(mirror, ignore_errors=True)
