"""The job queue: enqueue (coalescing), claim (leases), heartbeat, succeed, fail.

Every function takes the caller's ``AsyncSession`` and leaves committing to the caller,
except ``claim``, which commits itself so that its claim is visible at once.

Correctness rests on single conditional statements, not on reads followed by writes:

- ``enqueue`` is ``INSERT ... ON CONFLICT (key) WHERE status = 'queued' DO NOTHING``
  against the partial unique index, so concurrent enqueues of one key leave one queued
  job, never raise, and never spoil the caller's transaction.
- ``claim`` is one ``UPDATE ... WHERE id = (SELECT ... LIMIT 1) RETURNING``; on
  PostgreSQL the inner SELECT is ``FOR UPDATE SKIP LOCKED``, so several processes claim
  different jobs without waiting on each other; on SQLite the statement runs under the
  database's single write lock.
- ``heartbeat``, ``succeed`` and ``fail`` change a job only while ``locked_by`` is still
  the caller and the job is still running: a worker whose lease expired and whose job
  was claimed again can no longer touch it.

Times are taken from this process's clock (UTC), not the database's: SQLite has no
zone-aware clock, and Port processes sharing a database are expected to share time.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    and_,
    case,
    delete,
    exists,
    func,
    literal,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from port.jobs.models import FINISHED, Job, JobStatus
from port.orm import insert, on_postgres, utcnow

BACKOFF_BASE_SECONDS = 5.0
BACKOFF_MAX_SECONDS = 300.0
MAX_ERROR_CHARS = 4000
_CLAIM_TRIES = 10  # candidates one claim looks at before giving up for now
# pg_advisory_xact_lock(class, hashtext(key)): one class of locks for job keys ("Port").
_KEY_LOCK_CLASS = 0x506F7274
_QUEUED = text("status = 'queued'")  # the predicate of uq_jobs_queued_key, verbatim


def backoff(
    attempts: int, base: float = BACKOFF_BASE_SECONDS, most: float = BACKOFF_MAX_SECONDS
) -> timedelta:
    """Wait before retry number ``attempts`` + 1: base, twice that, four times ... at most
    ``most`` (jobs: 5 s, 10 s, 20 s ... 5 minutes; the reconciler's restarts too)."""
    return timedelta(seconds=min(base * 2 ** max(attempts - 1, 0), most))


def _utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise ValueError("naive datetime given to the job queue")
    return moment.astimezone(UTC)


def _clip(error: str) -> str:
    return error if len(error) <= MAX_ERROR_CHARS else error[: MAX_ERROR_CHARS - 1] + "…"


async def enqueue(
    session: AsyncSession,
    kind: str,
    payload: dict[str, Any] | None = None,
    *,
    key: str | None = None,
    run_after: datetime | None = None,
    max_attempts: int = 5,
    replace: bool = False,
    now: datetime | None = None,
) -> Job | None:
    """Queue a job; None when a queued job with the same ``key`` already exists.

    The existing job then does the work for both: it keeps its payload, or takes this
    one with ``replace`` (newer intent wins). If it was waiting later than ``run_after``
    (a retry backing off), it is brought forward: new work should not wait for an old
    failure's backoff. The job is visible to workers once the caller commits. ``now``
    (here and in every function that takes it) replaces the clock, for tests.
    """
    now = _utc(now) if now is not None else utcnow()
    when = _utc(run_after) if run_after is not None else now
    statement = insert(session, Job).values(
        kind=kind,
        key=key,
        payload=payload or {},
        status=JobStatus.QUEUED,
        attempts=0,
        max_attempts=max_attempts,
        run_after=when,
        created_at=now,
    )
    if key is not None:
        statement = statement.on_conflict_do_nothing(index_elements=[Job.key], index_where=_QUEUED)
    job = (await session.scalars(statement.returning(Job))).one_or_none()
    if job is None and key is not None and replace:
        await session.execute(
            update(Job)
            .where(Job.key == key, Job.status == JobStatus.QUEUED)
            .values(payload=payload or {})
            .execution_options(synchronize_session=False)
        )
    if job is None and key is not None:
        await session.execute(
            update(Job)
            .where(Job.key == key, Job.status == JobStatus.QUEUED, Job.run_after > when)
            .values(run_after=when)
            .execution_options(synchronize_session=False)
        )
    return job


def _live(job: Any, now: datetime) -> ColumnElement[bool]:
    """``job`` is running under a lease that has not expired."""
    return and_(job.status == JobStatus.RUNNING, job.locked_until > now)


async def claim(
    session: AsyncSession,
    worker: str,
    *,
    lease: timedelta,
    kinds: Collection[str] | None = None,
    now: datetime | None = None,
) -> Job | None:
    """Take the oldest due job for ``worker`` and hold it for ``lease``; commits.

    Due: queued with ``run_after`` in the past, or running under an expired lease (its
    worker died or hung: the job is taken over). Never a job whose key has another job
    running under a live lease. The claim counts an attempt. A job taken over more
    often than ``max_attempts`` allows is failed here instead of being run again.

    Use a session of its own: the commit takes whatever else it holds along.
    """
    if kinds is not None and not kinds:
        return None
    postgres = on_postgres(session)
    passed_over: set[int] = set()
    given = now
    for _ in range(_CLAIM_TRIES):
        now = _utc(given) if given is not None else utcnow()
        candidate = aliased(Job, name="candidate")
        other = aliased(Job, name="other")
        due = or_(
            and_(candidate.status == JobStatus.QUEUED, candidate.run_after <= now),
            and_(candidate.status == JobStatus.RUNNING, candidate.locked_until <= now),
        )
        busy_key = exists().where(
            other.key == candidate.key, other.id != candidate.id, _live(other, now)
        )
        pick = (
            select(candidate.id)
            .where(due, ~busy_key)
            .order_by(candidate.run_after, candidate.id)
            .limit(1)
        )
        if kinds is not None:
            pick = pick.where(candidate.kind.in_(list(kinds)))
        if passed_over:
            pick = pick.where(candidate.id.not_in(passed_over))
        if postgres:
            pick = pick.with_for_update(skip_locked=True, of=candidate)
        taken_over = case(
            (Job.status == JobStatus.RUNNING, literal("lease of ") + Job.locked_by + " expired"),
            else_=Job.last_error,
        )
        statement = (
            update(Job)
            .where(Job.id == pick.scalar_subquery())
            .values(
                status=JobStatus.RUNNING,
                attempts=Job.attempts + 1,
                locked_by=worker,
                locked_until=now + lease,
                started_at=now,
                finished_at=None,
                last_error=taken_over,
            )
            .returning(Job)
            .execution_options(synchronize_session=False, populate_existing=True)
        )
        job = (await session.scalars(statement)).one_or_none()
        if job is None:
            await session.commit()
            return None
        if postgres and job.key is not None and await _key_taken(session, job, now):
            # Another process claimed a job of this key at the same moment (possible only
            # when an expired job and a queued one share the key): let it have the key.
            passed_over.add(job.id)
            await session.rollback()
            continue
        if job.attempts > job.max_attempts:
            job.status, job.finished_at, job.locked_until = JobStatus.FAILED, now, None
            job.last_error = _clip(
                f"given up after {job.max_attempts} attempts: its worker stopped without "
                f"finishing ({job.last_error})"
            )
            await session.commit()
            continue
        await session.commit()
        return job
    return None


async def hold(
    session: AsyncSession,
    kind: str,
    key: str,
    worker: str,
    *,
    lease: timedelta,
    payload: dict[str, Any] | None = None,
    now: datetime | None = None,
) -> Job | None:
    """A job of ``kind`` and ``key`` running for ``worker`` from now (work done outside
    the queue, such as a scan a person asked for), unless a job of ``key`` runs under a
    live lease: then None. Workers do not claim the key while it is held. Commits.

    One conditional INSERT (SQLite runs it under its write lock); on PostgreSQL under
    the key's advisory lock, which a claim of the key takes too (``_key_taken``).
    """
    now = _utc(now) if now is not None else utcnow()
    if on_postgres(session):
        await session.execute(
            select(func.pg_advisory_xact_lock(_KEY_LOCK_CLASS, func.hashtext(key)))
        )
    other = aliased(Job, name="other")
    values = {
        "kind": literal(kind),
        "key": literal(key),
        "payload": literal(payload or {}, Job.payload.type),
        "status": literal(JobStatus.RUNNING, Job.status.type),
        "attempts": literal(1),
        "max_attempts": literal(1),
        "run_after": literal(now, Job.run_after.type),
        "locked_by": literal(worker),
        "locked_until": literal(now + lease, Job.locked_until.type),
        "created_at": literal(now, Job.created_at.type),
        "started_at": literal(now, Job.started_at.type),
    }
    row = select(*values.values()).where(~exists().where(other.key == key, _live(other, now)))
    statement = insert(session, Job).from_select(list(values), row).returning(Job.id)
    job_id = await session.scalar(statement)
    await session.commit()
    return None if job_id is None else await session.get(Job, job_id)


async def _key_taken(session: AsyncSession, job: Job, now: datetime) -> bool:
    """After claiming ``job``: does another live job hold its key? (PostgreSQL)

    Both claimers of one key take the same transaction-level advisory lock, so the
    second one waits until the first has committed and then sees its claim.
    """
    await session.execute(
        select(func.pg_advisory_xact_lock(_KEY_LOCK_CLASS, func.hashtext(job.key)))
    )
    rival = await session.scalar(
        select(Job.id).where(Job.key == job.key, Job.id != job.id, _live(Job, now)).limit(1)
    )
    return rival is not None


def _held(job_id: int, worker: str) -> ColumnElement[bool]:
    return and_(Job.id == job_id, Job.locked_by == worker, Job.status == JobStatus.RUNNING)


async def _update_held(session: AsyncSession, job_id: int, worker: str, **values: Any) -> bool:
    result = await session.execute(
        update(Job)
        .where(_held(job_id, worker))
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    return bool(getattr(result, "rowcount", 0))


async def heartbeat(
    session: AsyncSession,
    job_id: int,
    worker: str,
    lease: timedelta,
    *,
    now: datetime | None = None,
) -> bool:
    """Extend ``worker``'s lease on a running job; False when the job is no longer its.

    A lease that expired is still extended as long as nobody has claimed the job since.
    """
    at = _utc(now) if now is not None else utcnow()
    return await _update_held(session, job_id, worker, locked_until=at + lease)


async def succeed(
    session: AsyncSession, job_id: int, worker: str, *, now: datetime | None = None
) -> bool:
    """Mark ``worker``'s running job succeeded; False (and nothing changed) otherwise."""
    at = _utc(now) if now is not None else utcnow()
    return await _update_held(
        session, job_id, worker, status=JobStatus.SUCCEEDED, finished_at=at, locked_until=None
    )


async def fail(
    session: AsyncSession,
    job_id: int,
    worker: str,
    error: str,
    *,
    final: bool = False,
    now: datetime | None = None,
) -> Job | None:
    """Record a failed attempt of ``worker``'s running job; None when it is not its own.

    Before ``max_attempts`` the job is queued again after ``backoff(attempts)``, keeping
    ``error`` in ``last_error``. After the last attempt, or a ``final`` failure (one
    that retrying cannot fix), it is ``failed`` for good.

    If another job of the same key was queued meanwhile, this one cannot be queued
    again (one queued job per key): it ends ``failed`` with a note naming the queued
    job, which does the same work (its own attempts start from zero).
    """
    job = await session.scalar(
        select(Job).where(_held(job_id, worker)).execution_options(populate_existing=True)
    )
    if job is None:
        return None
    now = _utc(now) if now is not None else utcnow()
    error = _clip(error)
    done = {"status": JobStatus.FAILED, "finished_at": now, "locked_until": None}
    if final or job.attempts >= job.max_attempts:
        held = await _update_held(session, job_id, worker, last_error=error, **done)
    elif await _requeue(session, job, worker, now, error):
        held = True
    else:
        sibling = await session.scalar(
            select(Job.id).where(Job.key == job.key, Job.status == JobStatus.QUEUED).limit(1)
        )
        note = f"{error} (not retried: job {sibling} of the same key is queued and does the work)"
        held = await _update_held(session, job_id, worker, last_error=_clip(note), **done)
    if not held:  # claimed by another worker between our read and our write
        return None
    await session.refresh(job)
    return job


async def _requeue(session: AsyncSession, job: Job, worker: str, now: datetime, error: str) -> bool:
    """Queue ``job`` again after its backoff, unless a job of its key is queued already."""
    other = aliased(Job, name="other")
    statement = (
        update(Job)
        .where(
            _held(job.id, worker),
            ~exists().where(other.key == Job.key, other.status == JobStatus.QUEUED),
        )
        .values(
            status=JobStatus.QUEUED,
            run_after=now + backoff(job.attempts),
            locked_by=None,
            locked_until=None,
            last_error=error,
        )
        .execution_options(synchronize_session=False)
    )
    if not on_postgres(session):
        # SQLite runs the statement under its one write lock: the check cannot be raced.
        return bool(getattr(await session.execute(statement), "rowcount", 0))
    # PostgreSQL: a queued job of the key committed after the statement's snapshot makes
    # the unique index refuse the row; the savepoint keeps the caller's transaction.
    try:
        async with session.begin_nested():
            result = await session.execute(statement)
    except IntegrityError:
        return False
    return bool(getattr(result, "rowcount", 0))


async def pending(session: AsyncSession, key: str) -> bool:
    """Is a job with ``key`` queued or running?"""
    found = await session.scalar(
        select(Job.id)
        .where(Job.key == key, Job.status.in_((JobStatus.QUEUED, JobStatus.RUNNING)))
        .limit(1)
    )
    return found is not None


async def running(session: AsyncSession, kind: str, key: str) -> list[Job]:
    """The jobs of ``kind`` with ``key`` that are running now (one, but for a lease
    being taken over)."""
    statement = select(Job).where(Job.kind == kind, Job.key == key, Job.status == JobStatus.RUNNING)
    return list(await session.scalars(statement.order_by(Job.id)))


async def jobs(
    session: AsyncSession, *, kind: str | None = None, key: str | None = None
) -> list[Job]:
    """Jobs, oldest first, optionally of one ``kind`` and/or one ``key``."""
    statement = select(Job).order_by(Job.id)
    if kind is not None:
        statement = statement.where(Job.kind == kind)
    if key is not None:
        statement = statement.where(Job.key == key)
    return list(await session.scalars(statement))


async def prune(session: AsyncSession, *, finished_before: datetime) -> int:
    """Delete succeeded and failed jobs that finished before ``finished_before``.

    Returns how many. Queued and running jobs are never touched.
    """
    result = await session.execute(
        delete(Job)
        .where(Job.status.in_(FINISHED), Job.finished_at < _utc(finished_before))
        .execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0))
