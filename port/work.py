"""Every kind of job Port runs, wired once for `port serve` and `port worker`.

- ``index``: one index run of a Repo (port/jobs/handlers.py). After it, every Setup of
  the Repo's apps is checked against its update policy and a rollout is queued for
  each that may move; a notice goes out for every added release.
- ``update``: one rollout (port/deploy/updater.py), health-gated, rolled back on failure.
- ``notify``: one signed notice to ``PORT_NOTIFY_URL`` (port/notify.py).
- ``reconcile``: one reconciler pass (port/deploy/reconciler.py). One key for all, so one
  pass runs at a time across every Port process on the database; the reconciler's
  trigger (its period, engine events, mutations) queues it, and a pass that leaves a
  restart backoff running queues the next for when it expires.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, suppress
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from port.catalogue.models import App
from port.catalogue.scanning import ScanOutcome
from port.deploy.models import Setup
from port.deploy.reconciler import Reconciler
from port.deploy.updater import Updater, plan_updates
from port.jobs.handlers import default_handlers
from port.jobs.models import Job
from port.jobs.queue import enqueue
from port.jobs.worker import Worker
from port.notify import Notifier
from port.settings import Settings

log = logging.getLogger(__name__)


async def after_index_run(
    sessions: async_sessionmaker[AsyncSession],
    notifier: Notifier,
    outcome: ScanOutcome | None,
    wake: Callable[[], None],
) -> int:
    """Queue the rollouts an index run made possible; how many were planned."""
    if outcome is None or outcome.run.status == "failed":
        return 0
    added = [release.rpartition(" ") for release in outcome.run.added]  # "<app> <version>"
    runners: dict[str, list[int]] = defaultdict(list)
    if added:  # one query for every release: a first index may add hundreds
        async with sessions() as session:
            rows = await session.execute(
                select(App.identifier, Setup.owner_id)
                .join(Setup, Setup.app_id == App.id)
                .where(App.identifier.in_({identifier for identifier, _, _ in added}))
                .distinct()
            )
            for identifier, owner_id in rows:
                runners[identifier].append(owner_id)
    for identifier, _, version in added:
        data = {
            "repo": outcome.run.repo_id,
            "release": f"{identifier} {version}",
            "app": identifier,
            "version": version,
        }
        await notifier.announce("release.added", data, runners[identifier])
    async with sessions() as session, session.begin():
        planned = await plan_updates(session, repo_id=outcome.run.repo_id)
    if planned:
        log.info(
            "index run %s: %s",
            outcome.run.id,
            ", ".join(f"setup {p.setup_id} {p.current} -> {p.target}" for p in planned),
        )
        wake()
    return len(planned)


RECONCILE_KEY = "reconcile"


async def queue_reconcile(
    sessions: async_sessionmaker[AsyncSession], *, at: datetime | None = None
) -> None:
    """Queue a reconcile pass (or bring a queued one forward to ``at``, default now)."""
    async with sessions() as session, session.begin():
        await enqueue(session, "reconcile", key=RECONCILE_KEY, run_after=at, max_attempts=1)


def reconcile_trigger(
    sessions: async_sessionmaker[AsyncSession], worker: Worker
) -> Callable[[], Awaitable[datetime | None]]:
    """What the reconciler's loop calls for a pass: queue the job, wake this worker."""

    async def request() -> datetime | None:
        await queue_reconcile(sessions)
        worker.wake()
        return None  # the job queues its own follow-up for a running backoff

    return request


def build_worker(
    sessions: async_sessionmaker[AsyncSession], settings: Settings, reconciler: Reconciler
) -> Worker:
    """A Worker that runs every kind of job, with ``reconciler``'s backend for rollouts."""
    notifier = Notifier(sessions, settings)
    updater = Updater(sessions, settings, reconciler, announce=notifier.announce)

    async def update(job: Job) -> str:
        payload = job.payload
        return await updater.run(
            int(payload["setup_id"]), str(payload["version"]), manual=bool(payload.get("manual"))
        )

    async def planned_after_index(_job: Job, outcome: Any) -> None:
        await after_index_run(sessions, notifier, outcome, worker.wake)

    async def reconcile(_job: Job) -> datetime | None:
        due = await reconciler.reconcile()
        if due is not None:
            await queue_reconcile(sessions, at=due)
        return due

    handlers = {
        **default_handlers(sessions, settings),
        "update": update,
        "notify": notifier.deliver,
        "reconcile": reconcile,
    }
    worker = Worker(sessions, settings, handlers, after={"index": [planned_after_index]})
    return worker


@asynccontextmanager
async def full_worker(
    sessions: async_sessionmaker[AsyncSession], settings: Settings
) -> AsyncIterator[Worker]:
    """`port worker`'s Worker: every job kind, with a backend of its own for rollouts and
    reconcile passes, and the reconciler's trigger (period, engine events) beside it."""
    async with Reconciler.opened(sessions, settings) as reconciler:
        worker = build_worker(sessions, settings, reconciler)
        trigger = None
        if settings.reconcile_seconds > 0:
            request = reconcile_trigger(sessions, worker)
            trigger = asyncio.create_task(reconciler.run(request), name="reconcile-trigger")
        try:
            yield worker
        finally:
            if trigger is not None:
                trigger.cancel()
                with suppress(asyncio.CancelledError):
                    await trigger
