"""The updater: moves a Setup to a new release without dropping what runs.

A rollout is a durable job (kind ``update``, one per Setup at a time: key
``setup:<id>``), and every step is safe to run again, so a job taken over after a crash
resumes where the dead worker stopped:

1. a candidate Pod of the new release is planned (flavour selection runs again) and
   stored (``Pod.candidate``; the reconciler leaves it to the updater);
2. its image is pulled and it is started, while the old Pod keeps serving;
3. health gate: the image's HEALTHCHECK says ``healthy``, or, without one, it runs for
   ``PORT_UPDATE_GRACE_SECONDS``;
4. passed: in one transaction the candidate becomes the Setup's Pod, the Setup's release
   moves, the old Pods are retired; then their containers are stopped (should Port die
   in between, the reconciler removes them as containers of retired Pods);
5. failed (exited, unhealthy, not healthy in time, or not even startable): the
   candidate is retired and removed, the old Pod never stopped, the Setup records
   ``UPDATE_ROLLED_BACK`` with the reason and the end of the logs, and that version is
   skipped for this Setup until a newer one appears.

After every index run, ``plan_updates`` looks at the Setups of the repository's apps and
enqueues a rollout for each that a newer allowed release exists for.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

from semver import Version
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import selectinload
from sqlalchemy.orm.exc import StaleDataError

from port.catalogue.models import App, Release
from port.deploy.backends.base import BackendUnavailable, PodState, PodStatus
from port.deploy.jobs import enqueue_update
from port.deploy.models import EventKind, Pod, Setup, UpdatePolicy
from port.deploy.policy import allows, follows, newest_allowed
from port.deploy.reconciler import Reconciler
from port.deploy.selection import ConsentNeeded, NoFittingFlavour
from port.deploy.setups import asks_consent, choose, grants_of, plan_pod, record
from port.errors import InvalidInput, NotFound
from port.orm import utcnow
from port.settings import Settings

log = logging.getLogger(__name__)

LOG_TAIL = 20  # lines of a failed Pod's output kept in the rollback event
HEALTH_POLL_SECONDS = 0.2
PLAN_ATTEMPTS = 3  # planning again after a Setup was deleted meanwhile


Announce = Callable[[str, dict[str, Any], Iterable[int]], Awaitable[None]]
"""Tells of an update's result: its kind, data and the users concerned (Notifier.announce)."""


async def silent(_kind: str, _notice: dict[str, Any], _users: Iterable[int]) -> None:
    """No notices (PORT_NOTIFY_URL unset, or tests)."""


@dataclass(frozen=True)
class PlannedUpdate:
    """What would update, and to what (the dry run answers with these)."""

    setup_id: int
    app: str
    current: str
    target: str


async def _releases(session: AsyncSession, app_ids: list[int]) -> dict[int, list[Release]]:
    rows = await session.scalars(select(Release).where(Release.app_id.in_(app_ids)))
    by_app: dict[int, list[Release]] = {}
    for release in rows:
        by_app.setdefault(release.app_id, []).append(release)
    return by_app


async def pending_updates(
    session: AsyncSession, setups: list[Setup]
) -> list[tuple[Setup, Release]]:
    """Each of ``setups`` (with ``app`` and ``release`` loaded) that a newer allowed
    release exists for, with that release."""
    by_app = await _releases(session, sorted({s.app_id for s in setups}))
    found = []
    for setup in setups:
        if setup.update_policy == UpdatePolicy.NONE and setup.channel is None:
            continue  # a Setup on a channel always follows it
        target = newest_allowed(
            by_app.get(setup.app_id, []),
            setup.release.version,
            UpdatePolicy(setup.update_policy),
            version_range=setup.version_range,
            include_prereleases=setup.include_prereleases,
            skipped=setup.skipped_versions,
            channel=setup.channel,
        )
        waiting = (setup.consent_needed or {}).get("version")
        if target is not None and target.version != waiting:  # asked once, until granted
            found.append((setup, target))
    return found


async def plan_updates(
    session: AsyncSession, *, repo_id: int | None = None, setup_ids: list[int] | None = None
) -> list[PlannedUpdate]:
    """Enqueue a rollout for every Setup (of ``repo_id``'s apps, or ``setup_ids``, or all)
    that may move; ``UPDATE_AVAILABLE`` when its job is queued. The caller commits."""
    query = select(Setup).options(selectinload(Setup.app), selectinload(Setup.release))
    if repo_id is not None:
        query = query.join(App, App.id == Setup.app_id).where(App.repo_id == repo_id)
    if setup_ids is not None:
        query = query.where(Setup.id.in_(setup_ids))
    setups = list(await session.scalars(query))
    planned = []
    for setup, target in await pending_updates(session, setups):
        job = await enqueue_update(session, setup.id, target.version)
        if job is not None:
            record(
                session,
                setup,
                EventKind.UPDATE_AVAILABLE,
                f"{setup.release.version} -> {target.version} ({setup.follows})",
            )
        planned.append(
            PlannedUpdate(setup.id, setup.app.identifier, setup.release.version, target.version)
        )
    return planned


async def plan_repo_updates(
    sessions: async_sessionmaker[AsyncSession], repo_id: int
) -> list[PlannedUpdate]:
    """``plan_updates`` for ``repo_id``'s apps after an index run, in its own transaction.

    A Setup may be deleted while its update is planned (by its owner, from any process):
    the commit then fails on its gone row, and planning again without it is all it
    takes; the other Setups' updates are not lost."""
    attempts = 1
    while True:
        try:
            async with sessions() as session, session.begin():
                return await plan_updates(session, repo_id=repo_id)
        except (IntegrityError, StaleDataError):
            if attempts == PLAN_ATTEMPTS:
                raise
            attempts += 1
            log.info("a setup of repo %s was deleted while updates were planned; again", repo_id)


async def manual_target(session: AsyncSession, setup: Setup, version: str) -> Release:
    """The release a manual update to ``version`` moves to: any that is not withdrawn
    (an older one too, when asked for by name) and not the one running."""
    release = await session.scalar(
        select(Release).where(Release.app_id == setup.app_id, Release.version == version)
    )
    if release is None:
        raise NotFound(f"no release {version} of this app")
    if release.withdrawn:
        raise InvalidInput(f"release {version} was withdrawn")
    if release.channel != setup.channel:
        what = f"a build of channel {release.channel!r}" if release.channel else "a release"
        on = f"channel {setup.channel!r}" if setup.channel else "no channel"
        raise InvalidInput(f"{version} is {what}, and this setup is on {on}")
    if release.id == setup.release_id:
        raise InvalidInput(f"the setup runs {version} already")
    return release


async def request_update(session: AsyncSession, setup: Setup, version: str) -> None:
    """Queue a manual update to ``version``; it replaces a queued automatic one (the
    user's word wins). The caller commits."""
    await manual_target(session, setup, version)
    await enqueue_update(session, setup.id, version, manual=True)
    record(session, setup, EventKind.UPDATE_REQUESTED, f"{version} requested")


def _still_allowed(setup: Setup, target: Release) -> bool:
    """Would the Setup's policy choose ``target`` now (not skipped, newer, allowed; on a
    channel: still the channel's build)?"""
    if target.version in setup.skipped_versions or not follows(setup.channel, target):
        return False
    if setup.channel is not None:
        return True
    return allows(
        UpdatePolicy(setup.update_policy),
        Version.parse(setup.release.version),
        Version.parse(target.version),
        version_range=setup.version_range,
        include_prereleases=setup.include_prereleases,
    )


class Updater:
    """Runs rollouts (the ``update`` job) with the reconciler's backend."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        settings: Settings,
        reconciler: Reconciler,
        announce: Announce | None = None,
    ) -> None:
        self.sessions = sessions
        self.settings = settings
        self.reconciler = reconciler
        self.announce = announce or silent

    async def _load(self, session: AsyncSession, setup_id: int) -> Setup | None:
        return await session.scalar(
            select(Setup)
            .where(Setup.id == setup_id)
            .options(selectinload(Setup.app), selectinload(Setup.release), selectinload(Setup.pods))
        )

    async def run(self, setup_id: int, version: str, *, manual: bool = False) -> str:
        """Roll ``setup_id`` out to ``version``; returns what happened, in words.

        The Setup may be deleted at any moment of a rollout (by its owner, from any
        process): a write that then fails on its gone rows ends the rollout quietly;
        the reconciler removes a candidate container nobody wants any more."""
        try:
            return await self._run(setup_id, version, manual=manual)
        except (IntegrityError, StaleDataError):
            async with self.sessions() as session:
                if await session.get(Setup, setup_id) is not None:
                    raise
            log.info("setup %s was deleted during its rollout to %s", setup_id, version)
            self.reconciler.wake()
            return "setup deleted meanwhile"

    async def _run(self, setup_id: int, version: str, *, manual: bool) -> str:
        async with self.sessions() as session:
            setup = await self._load(session, setup_id)
            if setup is None:
                return "setup deleted"
            target = await session.scalar(
                select(Release)
                .where(Release.app_id == setup.app_id, Release.version == version)
                .options(selectinload(Release.flavours))
            )
            if target is None or target.withdrawn:
                return f"release {version} is gone or withdrawn"
            if not manual and not _still_allowed(setup, target):
                # The policy changed, or a rollback skipped it, since this was planned.
                stale = next((p for p in setup.pods if p.candidate and not p.retired), None)
                if stale is not None:
                    await self._abandon(session, setup, stale, "the policy no longer allows it")
                return f"{version} is no longer allowed by the setup's policy"
            candidate = next((p for p in setup.pods if p.candidate and not p.retired), None)
            if candidate is not None and candidate.release_id != target.id:
                await self._abandon(session, setup, candidate, "a newer update replaces it")
                candidate = None
            if candidate is None:
                if setup.release_id == target.id:
                    return "already on this release"
                needed = await self._consent_gap(setup, target)
                if needed is not None:  # like a phone's permission prompt: before, not after
                    return await self._await_consent(session, setup, version, needed)
                if not setup.wants_running:  # nothing runs: only the intent moves
                    old = setup.release.version
                    setup.release_id = target.id
                    setup.consent_needed = None
                    record(
                        session, setup, EventKind.UPDATE_SUCCEEDED, f"{old} -> {version} (stopped)"
                    )
                    await session.commit()
                    self.reconciler.notify(setup.id)
                    return "moved a stopped setup"
                caps = await self.reconciler.capabilities()
                candidate = plan_pod(setup, target, caps, self.settings)
                candidate.candidate = True
                session.add(candidate)
                await session.flush()
                record(
                    session,
                    setup,
                    EventKind.UPDATE_STARTED,
                    f"{setup.release.version} -> {version}: pod {candidate.id} "
                    f"({candidate.flavour}, {candidate.image})",
                    candidate,
                )
                await session.commit()
                self.reconciler.notify(setup.id)
            candidate_id = candidate.id
            started = candidate.container_id is not None
        if not started:
            await self.reconciler.launch(candidate_id)
        verdict = await self._health(candidate_id)
        # The verdict is committed while no reconcile pass of this process runs, so a
        # pass never acts on a Pod row this changes under it.
        async with self.reconciler.lock, self.sessions() as session:
            setup = await self._load(session, setup_id)
            candidate = await session.get(Pod, candidate_id)
            if setup is None or candidate is None or candidate.retired:
                return "setup or candidate deleted meanwhile"
            if not candidate.candidate:
                return "another rollout decided already"
            if verdict is None:
                return await self._promote(session, setup, candidate, target)
            return await self._roll_back(session, setup, candidate, verdict)

    async def _health(self, pod_id: int) -> str | None:
        """None when the Pod proved healthy; else why not."""
        grace = self.settings.update_grace_seconds
        deadline = time.monotonic() + self.settings.update_health_timeout_seconds
        running_since: float | None = None
        while True:
            async with self.sessions() as session:
                pod = await session.get(Pod, pod_id)
            if pod is None or pod.retired:
                return "the new pod was removed"
            if pod.status == PodStatus.FAILED and pod.container_id is None:
                return pod.message or "the new pod could not start"
            state: PodState | None = None
            if pod.container_id is not None:
                state = await self.reconciler.backend.poll(pod.container_id)
                if state is None:
                    return "the new pod's container disappeared"
                if state.status in (PodStatus.FAILED, PodStatus.STOPPED):
                    return state.message or f"the new pod exited with code {state.exit_code}"
                if state.ready is False:
                    return "the new pod's healthcheck failed"
                if state.ready:
                    return None
                if not state.checked and state.status is PodStatus.RUNNING:
                    running_since = running_since or time.monotonic()
                    if time.monotonic() - running_since >= grace:
                        return None
            if time.monotonic() > deadline:
                waited = self.settings.update_health_timeout_seconds
                return f"the new pod was not healthy within {waited:g} s"
            await asyncio.sleep(HEALTH_POLL_SECONDS)

    async def _promote(
        self, session: AsyncSession, setup: Setup, candidate: Pod, target: Release
    ) -> str:
        old_version = setup.release.version
        old_pods = [p for p in setup.pods if not p.retired and p.id != candidate.id]
        for pod in old_pods:
            pod.retired, pod.status, pod.stopped_at = True, PodStatus.STOPPED, utcnow()
        candidate.candidate = False
        candidate.status = PodStatus.RUNNING
        candidate.started_at = candidate.started_at or utcnow()
        setup.release_id = target.id
        setup.consent_needed = None
        setup.updated_at = utcnow()
        await session.commit()
        # After the commit: should Port die here, the old containers belong to retired
        # Pods, and the reconciler removes them. The event says "succeeded" once they are.
        await self.reconciler.remove_containers(
            [p.container_id for p in old_pods if p.container_id is not None]
        )
        message = f"{old_version} -> {target.version}: pod {candidate.id} is healthy"
        if old_pods:
            message += f", pod {', '.join(str(p.id) for p in old_pods)} stopped"
        record(session, setup, EventKind.UPDATE_SUCCEEDED, message, candidate)
        await session.commit()
        self.reconciler.notify(setup.id)
        await self.announce(
            "update.succeeded",
            {
                "setup": setup.id,
                "app": setup.app.identifier,
                "from": old_version,
                "to": target.version,
            },
            [setup.owner_id],
        )
        log.info("setup %s: %s", setup.id, message)
        return message

    async def _roll_back(
        self, session: AsyncSession, setup: Setup, candidate: Pod, reason: str
    ) -> str:
        tail = ""
        if candidate.container_id is not None:
            try:
                tail = await self.reconciler.backend.logs(candidate.container_id, LOG_TAIL)
            except BackendUnavailable:
                tail = ""
        release = await session.get(Release, candidate.release_id)
        version = release.version if release is not None else "?"
        # The failed container goes first, then the verdict is committed at once: a reader
        # of UPDATE_ROLLED_BACK never sees it still there. Should Port die in between, the
        # resumed job finds the candidate's container gone and rolls back the same way.
        if candidate.container_id is not None:
            await self.reconciler.remove_containers([candidate.container_id])
        candidate.retired, candidate.status = True, PodStatus.FAILED
        candidate.message, candidate.stopped_at = reason, utcnow()
        setup.skipped_versions = [*setup.skipped_versions, version]
        message = f"{version} rolled back, {setup.release.version} keeps running: {reason}"
        if tail.strip():
            message += "\n--- last lines of the new pod ---\n" + tail.rstrip()
        record(session, setup, EventKind.UPDATE_ROLLED_BACK, message, candidate)
        await session.commit()
        self.reconciler.notify(setup.id)
        await self.announce(
            "update.rolled_back",
            {"setup": setup.id, "app": setup.app.identifier, "version": version, "reason": reason},
            [setup.owner_id],
        )
        log.warning("setup %s: %s", setup.id, message.splitlines()[0])
        return message

    async def _consent_gap(self, setup: Setup, target: Release) -> ConsentNeeded | None:
        """What ``target`` asks that the Setup's grants do not give, or None."""
        if not asks_consent(target):
            return None
        try:
            caps = await self.reconciler.capabilities()
            choose(target, caps, setup.flavour, grants_of(setup, self.settings))
        except ConsentNeeded as needed:
            return needed
        except (NoFittingFlavour, BackendUnavailable):
            if setup.wants_running:
                raise
            # A stopped Setup only moves its intent: its next start plans under the
            # engine and the grants of then, and says what it needs.
        return None

    async def _await_consent(
        self, session: AsyncSession, setup: Setup, version: str, needed: ConsentNeeded
    ) -> str:
        """The rollout to ``version`` waits for the owner to grant what it asks (told once:
        ``plan_updates`` leaves a Setup waiting for that version alone)."""
        flavour, asks = next(iter(needed.asks.items()))
        names = ", ".join(f"{c.get('kind')} {c.get('name')!r}" for c in asks)
        message = (
            f"{setup.release.version} -> {version} waits for consent: "
            f"flavour {flavour} asks for {names}; grant it to update"
        )
        waiting = {"version": version, "asks": needed.asks}
        if setup.consent_needed == waiting:
            return message
        setup.consent_needed = waiting
        record(session, setup, EventKind.UPDATE_NEEDS_CONSENT, message)
        await session.commit()
        await self.announce(
            "update.needs_consent",
            {"setup": setup.id, "app": setup.app.identifier, "version": version, "asks": asks},
            [setup.owner_id],
        )
        log.info("setup %s: %s", setup.id, message)
        return message

    async def _abandon(self, session: AsyncSession, setup: Setup, pod: Pod, why: str) -> None:
        pod.retired, pod.status, pod.message = True, PodStatus.STOPPED, why
        record(session, setup, EventKind.UPDATE_ABANDONED, f"pod {pod.id}: {why}", pod)
        await session.commit()
        if pod.container_id is not None:
            await self.reconciler.remove_containers([pod.container_id])


__all__ = [
    "PlannedUpdate",
    "Updater",
    "manual_target",
    "pending_updates",
    "plan_repo_updates",
    "plan_updates",
    "request_update",
]
