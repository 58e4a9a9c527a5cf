"""The deployment's jobs: ``update`` (one rollout of a Setup, port/deploy/updater.py) and
``reconcile`` (one reconciler pass, port/deploy/reconciler.py).

``reconcile`` has one key for all, so one pass runs at a time across every Port process
on the database; the reconciler's trigger (its period, engine events, mutations) queues
it, and a pass that leaves a restart backoff running queues the next for when it
expires. ``update`` has one key per Setup: one rollout at a time.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from port.jobs import queue
from port.jobs.models import Job, Payload

UPDATE = "update"
RECONCILE = "reconcile"
RECONCILE_KEY = "reconcile"


class UpdatePayload(Payload):
    setup_id: int
    version: str
    manual: bool = False  # asked for by a user: may go back, skips the policy


def update_key(setup_id: int) -> str:
    """The coalescing key of a Setup's update jobs (one rollout at a time)."""
    return f"setup:{setup_id}"


async def enqueue_update(
    session: AsyncSession, setup_id: int, version: str, *, manual: bool = False
) -> Job | None:
    """Queue a rollout of the Setup to ``version``; None when one was queued already.
    A manual one replaces the queued job's target (the user's word wins)."""
    payload = UpdatePayload(setup_id=setup_id, version=version, manual=manual)
    return await queue.enqueue(
        session, UPDATE, payload.model_dump(), key=update_key(setup_id), replace=manual
    )


async def rollout_pending(session: AsyncSession, setup_id: int) -> bool:
    """Is an update job of this Setup queued or running?"""
    return await queue.pending(session, update_key(setup_id))


async def queue_reconcile(
    sessions: async_sessionmaker[AsyncSession], *, at: datetime | None = None
) -> None:
    """Queue a reconcile pass (or bring a queued one forward to ``at``, default now)."""
    async with sessions() as session, session.begin():
        await queue.enqueue(session, RECONCILE, key=RECONCILE_KEY, run_after=at, max_attempts=1)
