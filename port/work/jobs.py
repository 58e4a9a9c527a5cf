"""Every kind of job Port runs, and the periodic tasks, wired once for `port serve` and
`port worker`.

- ``index`` (port/catalogue/jobs.py): one index run of a Repo. After it, every Setup of
  the Repo's apps is checked against its update policy and a rollout is queued for
  each that may move; a notice goes out for every added release.
- ``update`` (port/deploy/updater.py): one rollout, health-gated, rolled back on failure.
- ``notify`` (port/notify.py): one signed notice to ``PORT_NOTIFY_URL`` or a user's URL.
- ``reconcile`` (port/deploy/reconciler.py): one reconciler pass (port/deploy/jobs.py).

Periodic: polling repositories that are due (every few seconds), and deleting finished
jobs and old webhook deliveries (hourly).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, suppress
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from port.accounts.websessions import Lifetime, sweep_sessions
from port.apps.entry import sweep_codes
from port.catalogue.jobs import INDEX, index_handler, poll_due_repos
from port.catalogue.scanning import ScanOutcome
from port.deploy.jobs import RECONCILE, UPDATE, UpdatePayload, queue_reconcile
from port.deploy.reconciler import Reconciler
from port.deploy.setups import runners_of
from port.deploy.updater import Updater, plan_repo_updates
from port.jobs import queue
from port.jobs.models import Job, payload_of
from port.jobs.worker import Periodic, Worker
from port.notify import NOTIFY, Notifier
from port.orm import utcnow
from port.settings import Settings
from port.webhooks.receive import prune_deliveries

log = logging.getLogger(__name__)

POLL_CHECK_SECONDS = 5.0  # how often the worker looks for repositories due for a poll
PRUNE_EVERY_SECONDS = 3600.0  # how often it deletes old finished jobs and deliveries
SWEEP_SESSIONS_SECONDS = 3600.0  # how often ended page sessions are deleted


async def after_index_run(
    sessions: async_sessionmaker[AsyncSession],
    notifier: Notifier,
    outcome: ScanOutcome | None,
    wake: Callable[[], None],
) -> int:
    """Announce the releases an index run added and queue the rollouts it made
    possible; how many were planned."""
    if outcome is None or outcome.changes is None:  # None: the run failed
        return 0
    added = outcome.changes.added
    async with sessions() as session:
        runners = await runners_of(session, {ref.app for ref in added})
    for ref in added:
        data = {
            "repo": outcome.run.repo_id,
            "release": str(ref),
            "app": ref.app,
            "version": ref.version,
        }
        await notifier.announce("release.added", data, runners.get(ref.app, []))
    planned = await plan_repo_updates(sessions, outcome.run.repo_id)
    if planned:
        log.info(
            "index run %s: %s",
            outcome.run.id,
            ", ".join(f"setup {p.setup_id} {p.current} -> {p.target}" for p in planned),
        )
        wake()
    return len(planned)


def reconcile_trigger(
    sessions: async_sessionmaker[AsyncSession], worker: Worker
) -> Callable[[], Awaitable[datetime | None]]:
    """What the reconciler's loop calls for a pass: queue the job, wake this worker."""

    async def request() -> datetime | None:
        await queue_reconcile(sessions)
        worker.wake()
        return None  # the job queues its own follow-up for a running backoff

    return request


def periodic_tasks(
    sessions: async_sessionmaker[AsyncSession], settings: Settings
) -> list[Periodic]:
    """Polling (unless ``poll_seconds`` is 0), pruning (unless ``job_keep_days`` is 0),
    and sweeping ended page sessions."""
    tasks = []
    if settings.job_keep_days > 0:

        async def prune() -> None:
            before = utcnow() - timedelta(days=settings.job_keep_days)
            async with sessions() as session, session.begin():
                jobs = await queue.prune(session, finished_before=before)
                await prune_deliveries(session, received_before=before)
            if jobs:
                log.info("deleted %d jobs finished before %s", jobs, before.isoformat())

        tasks.append(Periodic("prune", PRUNE_EVERY_SECONDS, prune))

    async def sweep() -> None:
        async with sessions() as session, session.begin():
            ended = await sweep_sessions(session, Lifetime.of(settings))
            await sweep_codes(session)
        if ended:
            log.info("deleted %d ended page sessions", ended)

    tasks.append(Periodic("sessions", SWEEP_SESSIONS_SECONDS, sweep))
    if settings.poll_seconds > 0:

        async def poll() -> int:
            return await poll_due_repos(sessions, settings)

        tasks.append(Periodic("poll", min(POLL_CHECK_SECONDS, settings.poll_seconds), poll))
    return tasks


def build_worker(
    sessions: async_sessionmaker[AsyncSession], settings: Settings, reconciler: Reconciler
) -> Worker:
    """A Worker that runs every kind of job, with ``reconciler``'s backend for rollouts."""
    notifier = Notifier(sessions, settings)
    updater = Updater(sessions, settings, reconciler, announce=notifier.announce)

    async def update(job: Job) -> str:
        payload = payload_of(job, UpdatePayload)
        return await updater.run(payload.setup_id, payload.version, manual=payload.manual)

    async def planned_after_index(_job: Job, outcome: Any) -> None:
        await after_index_run(sessions, notifier, outcome, worker.wake)

    async def reconcile(_job: Job) -> datetime | None:
        due = await reconciler.reconcile()
        if due is not None:
            await queue_reconcile(sessions, at=due)
        return due

    handlers = {
        INDEX: index_handler(sessions, settings),
        UPDATE: update,
        NOTIFY: notifier.deliver,
        RECONCILE: reconcile,
    }
    worker = Worker(
        sessions,
        settings,
        handlers,
        after={INDEX: [planned_after_index]},
        periodic=periodic_tasks(sessions, settings),
        routine=frozenset({RECONCILE}),
        limits={INDEX: settings.worker_index_jobs},
    )
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
