"""The catalogue's jobs: one index run of a Repo per ``index`` job, and the polls that
queue them.

``index`` (payload ``{"repo_id", "reason"}``): one index run of the Repo
(``scan_repo``), returning its ``ScanOutcome`` to the after-hooks (None when the Repo
was deleted meanwhile: nothing to do, the job succeeds).

A run that could not read the remote is recorded as a failed run *and* fails the job.
A transient failure (network, timeout) is retried after its backoff (a blip should not
wait for the next poll); index jobs have few attempts, since polling retries anyway and
each attempt may fetch. A lasting one (a refused URL, a remote over the size limit, a
missing branch) fails the job at once: the next poll or push tries again.
A run whose result the catalogue refused is recorded as failed, but the job succeeds:
the same refs give the same result, so retrying would only repeat it.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from datetime import timedelta

from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from indexer.scan import Progress
from port.catalogue.models import Repo
from port.catalogue.repos import LISTED
from port.catalogue.scanning import ScanOutcome, scan_repo
from port.errors import Permanent, RepoUnreachable
from port.jobs import queue
from port.jobs.models import Job, Payload, payload_of
from port.jobs.worker import Handler, run_held
from port.orm import on_postgres, utcnow
from port.settings import Settings

log = logging.getLogger(__name__)

INDEX = "index"  # the job kind
INDEX_MAX_ATTEMPTS = 3  # polling is the long-term retry of an index (docs/jobs.md)
POLL_BATCH = 500  # repositories one look enqueues at most


class IndexPayload(Payload):
    repo_id: int
    reason: str  # "poll", "webhook", "api", ...


def index_key(repo_id: int) -> str:
    """The coalescing key of a Repo's index jobs."""
    return f"repo:{repo_id}"


async def enqueue_index(session: AsyncSession, repo_id: int, reason: str) -> Job | None:
    """Queue an index run of a Repo (``reason``: "poll", "webhook", "api", ...).

    Coalesces with a queued index job of the same Repo: a burst of pushes gives the one
    run that may be in progress plus one queued run.
    """
    return await queue.enqueue(
        session,
        INDEX,
        IndexPayload(repo_id=repo_id, reason=reason).model_dump(),
        key=index_key(repo_id),
        max_attempts=INDEX_MAX_ATTEMPTS,
    )


async def scan_now(
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    repo_id: int,
    progress: Progress | None = None,
    reason: str = "api",
    started: Callable[[], None] = lambda: None,
) -> ScanOutcome:
    """An index run of the Repo now, in this process (``scanRepo``, `port repo scan`), as
    a job of the Repo's key: it waits for an index job of the Repo that is running (a
    poll, a push), and no worker starts one meanwhile. Two runs of one mirror at once
    would fight over it and record one as failed. ``started``: called when it starts."""
    return await run_held(
        sessions,
        settings,
        INDEX,
        index_key(repo_id),
        lambda: scan_repo(sessions, settings, repo_id, progress),
        payload=IndexPayload(repo_id=repo_id, reason=reason).model_dump(),
        wait_seconds=settings.index_seconds,
        started=started,
    )


def index_handler(sessions: async_sessionmaker[AsyncSession], settings: Settings) -> Handler:
    """What an ``index`` job does."""

    async def repo_exists(repo_id: int) -> bool:
        async with sessions() as session:
            found = await session.get(Repo, repo_id)
            return found is not None and found.deleted_at is None

    async def index(job: Job) -> ScanOutcome | None:
        repo_id = payload_of(job, IndexPayload).repo_id
        try:
            outcome = await scan_repo(sessions, settings, repo_id)  # LookupError: no repo
        except LookupError:
            if await repo_exists(repo_id):
                raise
            log.info("job %s: repository %s was deleted, nothing to index", job.id, repo_id)
            return None
        if outcome.remote_failed:
            why = f"index run {outcome.run.id}: {outcome.run.message or 'the remote failed'}"
            raise RepoUnreachable(why) if outcome.transient else Permanent(why)
        return outcome

    return index


def next_poll(settings: Settings) -> timedelta:
    """``poll_seconds`` give or take ``poll_jitter`` of it, so polls spread out."""
    jitter = settings.poll_jitter
    factor = 1 + random.uniform(-jitter, jitter)  # noqa: S311 - spreading load, not secrets
    return timedelta(seconds=settings.poll_seconds * factor)


async def poll_due_repos(sessions: async_sessionmaker[AsyncSession], settings: Settings) -> int:
    """Queue an index job (reason "poll") for each Repo whose poll is due; count them.

    Due: ``next_poll_at`` is unset or past. Each gets its next poll time at once, so
    one poll per interval whatever the number of workers; the index job joins one
    already queued for the Repo. An index run of an unchanged remote costs one
    `git ls-remote` (docs/indexing.md).
    """
    now = utcnow()
    async with sessions() as session, session.begin():
        due = (
            select(Repo.id)
            .where(LISTED, or_(Repo.next_poll_at.is_(None), Repo.next_poll_at <= now))
            .order_by(Repo.id)
            .limit(POLL_BATCH)
        )
        if on_postgres(session):
            # Another process polling at the same moment takes the other repositories.
            due = due.with_for_update(skip_locked=True)
        repos = list(await session.scalars(due))
        for repo_id in repos:
            await enqueue_index(session, repo_id, "poll")
            await session.execute(
                update(Repo)
                .where(Repo.id == repo_id)
                .values(next_poll_at=now + next_poll(settings))
                .execution_options(synchronize_session=False)
            )
    if repos:
        log.info("polling %d repositories", len(repos))
    return len(repos)


async def running_index_jobs(session: AsyncSession, repo_id: int) -> list[Job]:
    """The Repo's index jobs that some worker runs now."""
    return await queue.running(session, INDEX, index_key(repo_id))
