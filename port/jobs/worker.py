"""The worker: claims jobs, runs their handlers under a lease, and runs periodic tasks.

It knows no domain: the wiring (port/work) gives it a handler per job kind, hooks to
call after a kind's jobs, and periodic tasks (polling repositories, pruning).

One worker runs up to ``slots`` jobs at once (``PORT_WORKER_JOBS``), each kind at most
its ``limits`` (index runs: ``PORT_WORKER_INDEX_JOBS``, so that CPU-bound indexing
never takes every slot from rollouts and reconcile passes), and each job within its
kind's time budget (``budgets``, default ``PORT_JOB_TIMEOUT_SECONDS``): a job still
running then is cancelled and its attempt fails. Jobs of one key never run at once
(``queue.claim``). Several workers (in one process or in many) share a PostgreSQL
database safely; on SQLite, run one worker per database (`port serve`'s or `port
worker`'s), since SQLite serialises every write anyway.

While a handler runs, a heartbeat extends the job's lease every third of it. A worker
that dies stops extending it; when the lease expires any worker takes the job over
(``queue.claim``). A handler that keeps running after its lease was taken over cannot
record its end: ``succeed``/``fail`` refuse a worker that no longer holds the job.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import secrets
import signal
import socket
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, suppress
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from port import db
from port.errors import Busy, Permanent, PortError, TimedOut
from port.jobs import queue
from port.jobs.models import Job, JobStatus
from port.orm import utcnow
from port.settings import Settings

log = logging.getLogger(__name__)

Handler = Callable[[Job], Awaitable[Any]]
"""Does a job's work; its return value goes to the kind's after-hooks. Raising fails
the attempt (``PortError``: an expected failure, logged without traceback); raising
``Permanent`` fails the job for good, without the attempts left."""

AfterHook = Callable[[Job, Any], Awaitable[None]]
"""Called with the job and its handler's result after the job succeeded."""

T = TypeVar("T")

HELD_POLL_SECONDS = 0.5  # `run_held`: how often it looks whether its key is free
STOP_GRACE_SECONDS = 10.0  # `port worker`: how long running jobs may finish on SIGTERM


@dataclass(frozen=True, slots=True)
class Periodic:
    """A task the worker runs between jobs, at most every ``seconds``; a truthy result
    (work was queued, say) makes it look for a job at once. One that raises is logged
    and tried again after its period."""

    name: str
    seconds: float
    run: Callable[[], Awaitable[object]]


def worker_name() -> str:
    """``host-pid-random``: unique per Worker, and says where a job ran."""
    return f"{socket.gethostname()[:80]}-{os.getpid()}-{secrets.token_hex(3)}"


class Worker:
    """Claims and runs jobs of the kinds in ``handlers``; nothing else is touched.

    ``after`` maps a kind to hooks called after its handler succeeded (with its
    result); a hook that raises is logged and changes nothing about the job.
    """

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        settings: Settings,
        handlers: Mapping[str, Handler],
        *,
        name: str | None = None,
        after: Mapping[str, Sequence[AfterHook]] | None = None,
        periodic: Sequence[Periodic] = (),
        clock: Callable[[], datetime] = utcnow,
        routine: frozenset[str] = frozenset(),
        slots: int | None = None,
        limits: Mapping[str, int] | None = None,
        budgets: Mapping[str, float] | None = None,
    ) -> None:
        self.sessions = sessions
        self.settings = settings
        self.handlers = dict(handlers)
        self.after = {kind: list(hooks) for kind, hooks in (after or {}).items()}
        self.periodic = list(periodic)
        self.clock = clock  # the queue's idea of now: tests move it instead of sleeping
        # Kinds that run every few seconds by design: their starts are logged at DEBUG,
        # or the log would be nothing else. Their failures are logged as any job's.
        self.routine = routine
        self.name = name or worker_name()
        self.lease = timedelta(seconds=settings.job_lease_seconds)
        self.slots = max(slots or settings.worker_jobs, 1)
        self.limits = dict(limits or {})  # kind -> most of its jobs at once
        self.budgets = dict(budgets or {})  # kind -> seconds a job may run
        self.running: dict[int, tuple[Job, asyncio.Task[bool]]] = {}  # by job id
        self._wake = asyncio.Event()
        self._stopping = False
        self._failing = False  # the last look for a job raised

    # --- running -----------------------------------------------------------------------

    def wake(self) -> None:
        """Look for a job now rather than after the idle wait (a job was just queued)."""
        self._wake.set()

    def stop(self) -> None:
        """Let ``run`` return once the running jobs (if any) have ended."""
        self._stopping = True
        self._wake.set()

    async def run(self) -> None:
        """Run jobs until cancelled or stopped, and the periodic tasks when they are due.

        Idle, it waits ``job_poll_seconds`` (or until ``wake``, or a job's end).
        Database errors are logged and retried after that wait. Cancelled while jobs
        run, they are abandoned: their leases expire and another worker (or this one,
        restarted) takes them over.
        """
        log.info(
            "worker %s started (kinds: %s; %d at once)",
            self.name,
            ", ".join(sorted(self.handlers)),
            self.slots,
        )
        try:
            await self._loop()
            await asyncio.gather(*(task for _job, task in self.running.values()))
        finally:
            tasks = [task for _job, task in self.running.values()]
            for task in tasks:
                task.cancel()
            if tasks:  # bounded: a job stuck in its cleanup is left to its lease
                await asyncio.wait(tasks, timeout=STOP_GRACE_SECONDS)
            log.info("worker %s stopped", self.name)

    async def _loop(self) -> None:
        due = dict.fromkeys(range(len(self.periodic)), 0.0)
        while not self._stopping:
            self._wake.clear()
            for index, task in enumerate(self.periodic):
                if time.monotonic() < due[index]:
                    continue
                due[index] = time.monotonic() + task.seconds
                try:
                    if await task.run():
                        self.wake()
                except Exception:
                    log.exception("periodic task %s failed", task.name)
            try:
                ran = await self._fill()
            except Exception:
                # Most likely the database is away: say so once, not every second.
                log.log(
                    logging.DEBUG if self._failing else logging.ERROR,
                    "claiming or finishing a job failed",
                    exc_info=True,
                )
                self._failing, ran = True, False
            else:
                if self._failing:
                    log.info("worker %s works again", self.name)
                self._failing = False
            if ran or self._stopping:
                continue
            with suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self.settings.job_poll_seconds)

    async def _fill(self) -> bool:
        """Claim due jobs into the free slots and start them; False when none started."""
        started = False
        while len(self.running) < self.slots and not self._stopping:
            busy: dict[str, int] = {}
            for running, _task in self.running.values():
                busy[running.kind] = busy.get(running.kind, 0) + 1
            kinds = [k for k in self.handlers if busy.get(k, 0) < self.limits.get(k, self.slots)]
            job = await self._claim(kinds)
            if job is None:
                break
            task = asyncio.create_task(self._run(job), name=f"job-{job.id}")
            self.running[job.id] = (job, task)
            task.add_done_callback(functools.partial(self._ended, job.id))
            started = True
        return started

    def _ended(self, job_id: int, _task: object) -> None:
        self.running.pop(job_id, None)
        self._wake.set()  # a slot is free

    async def _claim(self, kinds: Sequence[str]) -> Job | None:
        if not kinds:
            return None
        async with self.sessions() as session:
            return await queue.claim(
                session, self.name, lease=self.lease, kinds=kinds, now=self.clock()
            )

    async def run_once(self) -> bool:
        """Claim one due job and run it to its end; False when there was none."""
        job = await self._claim(list(self.handlers))
        if job is None:
            return False
        return await self._run(job)

    async def _run(self, job: Job) -> bool:
        """Run ``job``'s handler within its budget and record its end."""
        budget = self.budgets.get(job.kind, self.settings.job_timeout_seconds)
        log.log(
            logging.DEBUG if job.kind in self.routine else logging.INFO,
            "job %s (%s %s) attempt %d/%d",
            job.id,
            job.kind,
            job.key or "-",
            job.attempts,
            job.max_attempts,
        )
        beat = asyncio.create_task(self._heartbeat(job.id), name=f"heartbeat-{job.id}")
        try:
            within = asyncio.timeout(budget)
            try:
                async with within:
                    result = await self.handlers[job.kind](job)
            except TimeoutError as exc:
                if not within.expired():
                    raise  # the handler's own timeout
                why = f"{job.kind} job ran longer than its budget of {budget:g} s"
                raise TimedOut(why) from exc
        except asyncio.CancelledError:
            log.warning(
                "job %s abandoned: another worker takes it over once its lease expires", job.id
            )
            raise
        except Exception as exc:  # noqa: BLE001 - any failure of a handler fails the attempt
            await self._failed(job, exc)
            return True
        finally:
            beat.cancel()
            with suppress(asyncio.CancelledError):
                await beat
        await self._succeeded(job, result)
        return True

    async def _heartbeat(self, job_id: int) -> None:
        await keep_lease(self.sessions, job_id, self.name, self.lease, self.clock)

    async def _failed(self, job: Job, exc: Exception) -> None:
        error = str(exc) if isinstance(exc, PortError) else f"{type(exc).__name__}: {exc}"
        if isinstance(exc, PortError):
            log.warning("job %s failed: %s", job.id, error)
        else:
            log.error("job %s failed", job.id, exc_info=exc)
        async with self.sessions() as session, session.begin():
            now = await queue.fail(
                session, job.id, self.name, error, final=isinstance(exc, Permanent)
            )
        if now is None:
            log.warning("job %s was taken over meanwhile: its failure is not recorded", job.id)
            return
        if now.status == JobStatus.QUEUED:
            log.info("job %s will be retried after %s", job.id, now.run_after.isoformat())
        job.status, job.last_error = now.status, now.last_error

    async def _succeeded(self, job: Job, result: Any) -> None:
        async with self.sessions() as session, session.begin():
            held = await queue.succeed(session, job.id, self.name, now=self.clock())
        if not held:
            log.warning("job %s was taken over meanwhile: its success is not recorded", job.id)
            return
        job.status, job.finished_at = JobStatus.SUCCEEDED, utcnow()
        for hook in self.after.get(job.kind, ()):
            try:
                await hook(job, result)
            except Exception:
                log.exception("after-hook %r of job %s failed", hook, job.id)


async def keep_lease(
    sessions: async_sessionmaker[AsyncSession],
    job_id: int,
    worker: str,
    lease: timedelta,
    clock: Callable[[], datetime] = utcnow,
) -> None:
    """Extend ``worker``'s lease on a running job every third of it, until cancelled or
    until the job is no longer its."""
    interval = lease.total_seconds() / 3
    while True:
        await asyncio.sleep(interval)
        try:
            async with sessions() as session, session.begin():
                held = await queue.heartbeat(session, job_id, worker, lease, now=clock())
        except Exception:
            log.exception("extending the lease of job %s failed", job_id)
            continue
        if not held:
            log.warning("job %s was taken over by another worker; its end will not count", job_id)
            return


async def run_held(
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    kind: str,
    key: str,
    work: Callable[[], Awaitable[T]],
    *,
    payload: dict[str, Any] | None = None,
    wait_seconds: float,
    started: Callable[[], None] = lambda: None,
) -> T:
    """``work()`` now, in this process, as a job of ``kind`` and ``key``: a job of the key
    running elsewhere (a worker's index run of the same repository) is waited for, up to
    ``wait_seconds`` (then Busy), and no worker runs one while this does. The job row
    records the run like any job's; ``work``'s exception fails it and is raised.
    ``started`` is called once the key is held (the job row is visible)."""
    name = f"{worker_name()}-now"
    lease = timedelta(seconds=settings.job_lease_seconds)
    deadline = time.monotonic() + wait_seconds
    while True:
        async with sessions() as session:
            job = await queue.hold(session, kind, key, name, lease=lease, payload=payload)
        if job is not None:
            break
        if time.monotonic() > deadline:
            raise Busy(f"another {kind} run of this {key.partition(':')[0]} is still under way")
        await asyncio.sleep(HELD_POLL_SECONDS)
    beat = asyncio.create_task(keep_lease(sessions, job.id, name, lease))
    started()
    try:
        result = await work()
    except Exception as exc:  # recorded, then raised; cancelled: its lease expires
        error = str(exc) if isinstance(exc, PortError) else f"{type(exc).__name__}: {exc}"
        async with sessions() as session, session.begin():
            await queue.fail(session, job.id, name, error, final=True)
        raise
    finally:
        beat.cancel()
        with suppress(asyncio.CancelledError):
            await beat
    async with sessions() as session, session.begin():
        await queue.succeed(session, job.id, name)
    return result


WorkerFactory = Callable[
    [async_sessionmaker[AsyncSession], Settings], AbstractAsyncContextManager[Worker]
]
"""Builds the Worker `port worker` runs, and cleans up after it (a backend to close)."""


async def run_worker(settings: Settings, make_worker: WorkerFactory) -> None:
    """`port worker`: the Worker ``make_worker`` builds, until SIGINT or SIGTERM.

    The first signal stops claiming and lets the current job finish for up to
    ``STOP_GRACE_SECONDS``; then (or at a second signal) the job is abandoned: its lease
    expires and another worker takes it over. Refuses a database that is not migrated.
    """
    engine = db.create_engine(settings.sqlalchemy_url)
    try:
        await db.check_migrated(engine)
        async with make_worker(db.sessionmaker(engine), settings) as worker:
            await _run_until_signalled(worker)
    finally:
        await engine.dispose()


async def _run_until_signalled(worker: Worker) -> None:
    task = asyncio.create_task(worker.run(), name="worker")
    loop = asyncio.get_running_loop()
    signals = 0

    def on_signal() -> None:
        nonlocal signals
        signals += 1
        if signals > 1:
            task.cancel()
            return
        if worker.running:
            log.info(
                "stopping: jobs %s may finish within %s s, else their leases expire",
                ", ".join(map(str, sorted(worker.running))),
                STOP_GRACE_SECONDS,
            )
        worker.stop()
        loop.call_later(STOP_GRACE_SECONDS, task.cancel)

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal)
    try:
        with suppress(asyncio.CancelledError):
            await task
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
