"""Durable jobs on both databases: coalescing, claiming, backoff, leases, the worker,
the index handler on a real git remote, and polling."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select, update

from port.catalogue.jobs import (
    enqueue_index,
    index_handler,
    index_key,
    next_poll,
    poll_due_repos,
    scan_now,
)
from port.catalogue.models import IndexRun, Repo
from port.catalogue.repos import add_repo
from port.catalogue.scanning import ScanOutcome
from port.errors import RepoUnreachable
from port.jobs import queue
from port.jobs.models import Job
from port.jobs.worker import Handler, Worker
from port.orm import utcnow
from port.webhooks.models import WebhookDelivery
from port.work.jobs import periodic_tasks
from tests.harness import Catalogue, eventually
from tests.integration.gitfixtures import Remote, port_yaml

LEASE = timedelta(seconds=30)
SLACK = timedelta(seconds=1)  # between a moment taken in a test and one taken in the queue


async def in_session(cat: Catalogue, work: Callable[[Any], Awaitable[Any]]) -> Any:
    """Run ``work(session)`` in a transaction of its own and commit."""
    async with cat.sessions() as session, session.begin():
        return await work(session)


async def enqueue(cat: Catalogue, kind: str = "test", **options: Any) -> Job:
    payload = options.pop("payload", {})
    job = await in_session(cat, lambda s: queue.enqueue(s, kind, payload, **options))
    assert isinstance(job, Job)
    return job


async def claim(
    cat: Catalogue, worker: str, lease: timedelta = LEASE, **options: Any
) -> Job | None:
    async with cat.sessions() as session:
        return await queue.claim(session, worker, lease=lease, **options)


async def fail(cat: Catalogue, job_id: int, worker: str, error: str) -> Job | None:
    async with cat.sessions() as session, session.begin():
        return await queue.fail(session, job_id, worker, error)


async def get(cat: Catalogue, job_id: int) -> Job:
    async with cat.sessions() as session:
        job = await session.get(Job, job_id)
        assert job is not None
        return job


async def make_due(cat: Catalogue, job_id: int) -> None:
    """Skip a job's backoff, as if its time had come."""
    await in_session(
        cat,
        lambda s: s.execute(update(Job).where(Job.id == job_id).values(run_after=utcnow())),
    )


def near(moment: datetime | None, expected: datetime) -> bool:
    return moment is not None and abs(moment - expected) <= SLACK


# --- enqueue and coalescing ---------------------------------------------------------------


async def test_a_burst_of_fifty_pushes_leaves_one_queued_job_then_one_more_while_it_runs(
    catalogue: Catalogue,
) -> None:
    async def push() -> Job | None:
        async with catalogue.sessions() as session, session.begin():
            return await enqueue_index(session, 7, "webhook")

    first_burst = await asyncio.gather(*(push() for _ in range(50)))
    assert sum(job is not None for job in first_burst) == 1
    async with catalogue.sessions() as session:
        queued = await queue.jobs(session, key=index_key(7))
    assert [(j.kind, j.status, j.payload) for j in queued] == [
        ("index", "queued", {"repo_id": 7, "reason": "webhook"})
    ]

    running = await claim(catalogue, "w1")
    assert running is not None
    assert running.id == queued[0].id
    second_burst = await asyncio.gather(*(push() for _ in range(50)))
    assert sum(job is not None for job in second_burst) == 1
    async with catalogue.sessions() as session:
        statuses = [j.status for j in await queue.jobs(session, kind="index")]
    assert statuses == ["running", "queued"]  # a burst gives at most two runs

    # The queued job waits while a job of its key runs, then runs.
    assert await claim(catalogue, "w2") is None
    assert await in_session(catalogue, lambda s: queue.succeed(s, running.id, "w1"))
    following = await claim(catalogue, "w2")
    assert following is not None
    assert following.id != running.id
    assert following.key == "repo:7"


async def test_enqueue_keeps_the_callers_transaction_when_it_coalesces(
    catalogue: Catalogue, tmp_path: Any
) -> None:
    async def register_and_enqueue_twice(session: Any) -> tuple[Job | None, Job | None]:
        repo = await add_repo(session, str(tmp_path / "remote.git"), allow_local=True)
        first = await enqueue_index(session, repo.id, "api")
        second = await enqueue_index(session, repo.id, "api")
        return first, second

    first, second = await in_session(catalogue, register_and_enqueue_twice)
    assert first is not None
    assert second is None
    async with catalogue.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(Repo)) == 1
        assert len(await queue.jobs(session)) == 1


async def test_jobs_without_a_key_never_coalesce(catalogue: Catalogue) -> None:
    for _ in range(3):
        await enqueue(catalogue, payload={"n": 1})
    async with catalogue.sessions() as session:
        assert len(await queue.jobs(session, kind="test")) == 3


# --- claiming -----------------------------------------------------------------------------


async def test_claim_takes_the_oldest_due_job_of_the_kinds_asked(catalogue: Catalogue) -> None:
    now = utcnow()
    later = await enqueue(catalogue, payload={"n": "later"}, run_after=now + timedelta(hours=1))
    second = await enqueue(catalogue, payload={"n": "second"})
    first = await enqueue(catalogue, payload={"n": "first"}, run_after=now - timedelta(minutes=1))
    other = await enqueue(catalogue, "other")

    taken = await claim(catalogue, "w1", kinds={"test"})
    assert taken is not None
    assert (taken.id, taken.status, taken.attempts, taken.locked_by) == (
        first.id,
        "running",
        1,
        "w1",
    )
    assert near(taken.locked_until, utcnow() + LEASE)
    assert near(taken.started_at, utcnow())
    # The claim is committed: another session sees it at once.
    assert (await get(catalogue, first.id)).status == "running"

    taken = await claim(catalogue, "w1", kinds={"test"})
    assert taken is not None
    assert taken.id == second.id
    assert await claim(catalogue, "w1", kinds={"test"}) is None  # `later` is not due
    assert await claim(catalogue, "w1", kinds=[]) is None
    taken = await claim(catalogue, "w1")
    assert taken is not None
    assert taken.id == other.id
    assert (await get(catalogue, later.id)).status == "queued"


# --- failures -----------------------------------------------------------------------------


async def test_failures_back_off_then_fail_for_good_with_the_last_error(
    catalogue: Catalogue,
) -> None:
    job = await enqueue(catalogue, key="k", max_attempts=3)
    for attempt, wait in ((1, 5), (2, 10)):
        taken = await claim(catalogue, "w")
        assert taken is not None
        assert taken.attempts == attempt
        failed = await fail(catalogue, job.id, "w", f"boom {attempt}")
        assert failed is not None
        assert (failed.status, failed.last_error, failed.locked_by) == (
            "queued",
            f"boom {attempt}",
            None,
        )
        assert near(failed.run_after, utcnow() + timedelta(seconds=wait))
        assert await claim(catalogue, "w") is None  # backing off
        await make_due(catalogue, job.id)

    taken = await claim(catalogue, "w")
    assert taken is not None
    assert taken.attempts == 3
    final = await fail(catalogue, job.id, "w", "boom 3")
    assert final is not None
    assert (final.status, final.attempts, final.last_error) == ("failed", 3, "boom 3")
    assert near(final.finished_at, utcnow())
    assert await claim(catalogue, "w") is None
    assert [queue.backoff(n).total_seconds() for n in (1, 2, 3, 7, 8, 50)] == [
        5,
        10,
        20,
        300,
        300,
        300,
    ]


async def test_a_failed_attempt_is_not_retried_when_its_key_is_queued_again(
    catalogue: Catalogue,
) -> None:
    running = await in_session(catalogue, lambda s: enqueue_index(s, 3, "poll"))
    assert await claim(catalogue, "w") is not None
    queued = await in_session(catalogue, lambda s: enqueue_index(s, 3, "webhook"))
    assert queued is not None

    ended = await in_session(catalogue, lambda s: queue.fail(s, running.id, "w", "remote down"))
    assert ended is not None
    assert ended.status == "failed"
    assert ended.last_error == (
        f"remote down (not retried: job {queued.id} of the same key is queued and does the work)"
    )
    assert (await get(catalogue, queued.id)).status == "queued"


async def test_new_work_brings_a_backing_off_retry_forward(catalogue: Catalogue) -> None:
    job = await in_session(catalogue, lambda s: enqueue_index(s, 4, "poll"))
    assert await claim(catalogue, "w") is not None
    await in_session(catalogue, lambda s: queue.fail(s, job.id, "w", "remote down"))
    assert await claim(catalogue, "w") is None

    assert await in_session(catalogue, lambda s: enqueue_index(s, 4, "webhook")) is None
    again = await claim(catalogue, "w")
    assert again is not None
    assert (again.id, again.attempts) == (job.id, 2)


# --- leases and crash recovery ------------------------------------------------------------


async def test_a_job_whose_worker_died_is_taken_over_and_the_dead_worker_cannot_end_it(
    catalogue: Catalogue,
) -> None:
    job = await in_session(catalogue, lambda s: enqueue_index(s, 1, "poll"))
    now = utcnow()
    assert await claim(catalogue, "dead", lease=LEASE, now=now) is not None
    assert await claim(catalogue, "alive", now=now + LEASE / 2) is None  # the lease is live

    later = now + LEASE + timedelta(seconds=1)  # no sleep: the clock is given
    taken = await claim(catalogue, "alive", now=later)
    assert taken is not None
    assert (taken.id, taken.attempts, taken.locked_by) == (job.id, 2, "alive")
    assert taken.last_error == "lease of dead expired"

    # The dead worker wakes up: nothing it says counts any more.
    assert not await in_session(catalogue, lambda s: queue.heartbeat(s, job.id, "dead", LEASE))
    assert not await in_session(catalogue, lambda s: queue.succeed(s, job.id, "dead"))
    assert await in_session(catalogue, lambda s: queue.fail(s, job.id, "dead", "late")) is None
    current = await get(catalogue, job.id)
    assert (current.status, current.locked_by, current.attempts) == ("running", "alive", 2)

    assert await in_session(catalogue, lambda s: queue.succeed(s, job.id, "alive"))
    done = await get(catalogue, job.id)
    assert (done.status, done.locked_until) == ("succeeded", None)
    assert near(done.finished_at, utcnow())


async def test_a_heartbeat_keeps_the_job_and_a_job_that_kills_its_workers_is_given_up(
    catalogue: Catalogue,
) -> None:
    job = await enqueue(catalogue, max_attempts=2)
    start, lease = utcnow(), timedelta(seconds=20)

    def at(seconds: float) -> datetime:
        return start + timedelta(seconds=seconds)

    assert await claim(catalogue, "w1", lease=lease, now=at(0)) is not None
    beat = await in_session(
        catalogue, lambda s: queue.heartbeat(s, job.id, "w1", lease, now=at(10))
    )
    assert beat
    # past the first lease, within the extended one
    assert await claim(catalogue, "w2", lease=lease, now=at(25)) is None

    assert await claim(catalogue, "w2", lease=lease, now=at(31)) is not None  # attempt 2 of 2
    assert await claim(catalogue, "w3", lease=lease, now=at(52)) is None
    given_up = await get(catalogue, job.id)
    assert given_up.status == "failed"
    assert given_up.last_error == (
        "given up after 2 attempts: its worker stopped without finishing (lease of w2 expired)"
    )


async def test_an_expired_job_and_a_queued_job_of_one_key_never_run_together(
    catalogue: Catalogue,
) -> None:
    stale = await in_session(catalogue, lambda s: enqueue_index(s, 9, "poll"))
    now = utcnow()
    assert await claim(catalogue, "dead", lease=timedelta(seconds=5), now=now) is not None
    fresh = await in_session(catalogue, lambda s: enqueue_index(s, 9, "webhook"))
    assert fresh is not None

    later = now + timedelta(seconds=6)  # the dead worker's lease is over
    taken = await asyncio.gather(*(claim(catalogue, f"w{n}", now=later) for n in range(4)))
    claimed = [job.id for job in taken if job is not None]
    assert len(claimed) == 1  # either one, but only one
    assert claimed[0] in (stale.id, fresh.id)
    assert await claim(catalogue, "w5") is None


# --- the worker ---------------------------------------------------------------------------


async def test_worker_runs_handlers_then_after_hooks_and_records_failures(
    catalogue: Catalogue,
) -> None:
    seen: list[tuple[int, str, Any]] = []

    async def double(job: Job) -> int:
        if job.payload.get("n") is None:
            raise RepoUnreachable("the remote is down")
        if job.payload["n"] < 0:
            raise ValueError("negative")
        return int(job.payload["n"]) * 2

    async def broken_hook(_job: Job, _result: Any) -> None:
        raise RuntimeError("hook bug")

    async def hook(job: Job, result: Any) -> None:
        seen.append((job.id, job.status, result))

    worker = Worker(
        catalogue.sessions,
        catalogue.settings,
        {"test": double},
        after={"test": [broken_hook, hook]},
    )
    assert not await worker.run_once()
    ok = await enqueue(catalogue, payload={"n": 21})
    unknown = await enqueue(catalogue, "not-mine")
    assert await worker.run_once()
    assert seen == [(ok.id, "succeeded", 42)]
    assert (await get(catalogue, ok.id)).status == "succeeded"  # the hook's error is not the job's
    assert not await worker.run_once()
    assert (await get(catalogue, unknown.id)).status == "queued"  # no handler: not claimed

    bug = await enqueue(catalogue, payload={"n": -1})
    expected = await enqueue(catalogue, payload={"n": None})
    assert await worker.run_once()
    assert await worker.run_once()
    assert [(j.status, j.attempts, j.last_error) for j in [await get(catalogue, bug.id)]] == [
        ("queued", 1, "ValueError: negative")
    ]
    assert (await get(catalogue, expected.id)).last_error == "the remote is down"
    assert len(seen) == 1
    assert worker.name != Worker(catalogue.sessions, catalogue.settings, {}).name


async def test_worker_heartbeat_keeps_a_job_longer_than_its_lease(catalogue: Catalogue) -> None:
    settings = catalogue.settings.model_copy(update={"job_lease_seconds": 0.3})
    started, release = asyncio.Event(), asyncio.Event()

    async def slow(_job: Job) -> None:
        started.set()
        await release.wait()

    worker = Worker(catalogue.sessions, settings, {"test": slow})
    job = await enqueue(catalogue)
    running = asyncio.create_task(worker.run_once())
    await asyncio.wait_for(started.wait(), 10)
    await asyncio.sleep(0.7)  # more than two leases
    assert await claim(catalogue, "thief") is None
    release.set()
    assert await running
    done = await get(catalogue, job.id)
    assert (done.status, done.attempts, done.locked_by) == ("succeeded", 1, worker.name)


async def test_worker_run_wakes_for_new_jobs_and_stops_when_asked(catalogue: Catalogue) -> None:
    # A minute between looks: only wake() can make this test finish in time.
    settings = catalogue.settings.model_copy(update={"job_poll_seconds": 60, "poll_seconds": 0})
    ran = asyncio.Event()

    async def handler(_job: Job) -> None:
        ran.set()

    worker = Worker(catalogue.sessions, settings, {"test": handler})
    running = asyncio.create_task(worker.run())
    await asyncio.sleep(0.1)  # idle now
    job = await enqueue(catalogue)
    worker.wake()
    await asyncio.wait_for(ran.wait(), 10)
    worker.stop()
    await asyncio.wait_for(running, 10)
    assert (await get(catalogue, job.id)).status == "succeeded"


async def test_a_long_job_delays_no_other_kind_and_each_kind_keeps_its_limit(
    catalogue: Catalogue,
) -> None:
    """Repro: one worker ran one job at a time, so a long index run held up every rollout
    and reconcile pass behind it. Now jobs run side by side, index runs at most
    ``limits`` of them, and the other kinds take the free slots."""
    settings = catalogue.settings.model_copy(update={"job_poll_seconds": 60, "poll_seconds": 0})
    let_go = asyncio.Event()
    indexing: list[int] = []
    quick_done = asyncio.Event()

    async def slow_index(job: Job) -> None:
        indexing.append(job.id)
        await let_go.wait()

    async def quick(_job: Job) -> None:
        quick_done.set()

    worker = Worker(
        catalogue.sessions,
        settings,
        {"index": slow_index, "reconcile": quick},
        slots=3,
        limits={"index": 2},
    )
    slow_jobs = [await enqueue(catalogue, "index", key=f"repo:{n}") for n in range(3)]
    running = asyncio.create_task(worker.run())
    await eventually(lambda: len(indexing) == 2, "two index runs to start")
    await enqueue(catalogue, "reconcile")
    worker.wake()
    await asyncio.wait_for(quick_done.wait(), 10)  # while both index runs still run
    assert len(indexing) == 2  # the third waits for one of the two: the limit
    assert (await get(catalogue, slow_jobs[2].id)).status == "queued"
    let_go.set()
    await eventually(lambda: len(indexing) == 3, "the third index run to start")
    worker.stop()
    await asyncio.wait_for(running, 10)
    assert {(await get(catalogue, job.id)).status for job in slow_jobs} == {"succeeded"}


async def test_a_job_past_its_budget_is_cut_short_and_its_attempt_fails(
    catalogue: Catalogue,
) -> None:
    async def hangs(_job: Job) -> None:
        await asyncio.Event().wait()

    worker = Worker(catalogue.sessions, catalogue.settings, {"test": hangs}, budgets={"test": 0.2})
    job = await enqueue(catalogue)
    assert await asyncio.wait_for(worker.run_once(), 10)
    failed = await get(catalogue, job.id)
    assert failed.status == "queued"  # retried after its backoff, like any failure
    assert failed.last_error == "test job ran longer than its budget of 0.2 s"


# --- the index handler --------------------------------------------------------------------


def index_worker(cat: Catalogue, outcomes: list[ScanOutcome | None]) -> Worker:
    async def keep(_job: Job, outcome: ScanOutcome | None) -> None:
        outcomes.append(outcome)

    handlers: dict[str, Handler] = {"index": index_handler(cat.sessions, cat.settings)}
    return Worker(cat.sessions, cat.settings, handlers, after={"index": [keep]})


async def register(cat: Catalogue, url: str) -> int:
    repo: Repo = await in_session(cat, lambda s: add_repo(s, url, allow_local=True))
    return repo.id


async def test_index_job_indexes_a_real_remote(catalogue: Catalogue, local_remote: Remote) -> None:
    local_remote.work.commit("0.1.0", {"port.yaml": port_yaml("stardist", "0.1.0")})
    local_remote.work.tag("v0.1.0")
    local_remote.work.push()
    repo_id = await register(catalogue, local_remote.url)
    outcomes: list[ScanOutcome | None] = []
    worker = index_worker(catalogue, outcomes)

    job = await in_session(catalogue, lambda s: enqueue_index(s, repo_id, "webhook"))
    assert await worker.run_once()
    assert outcomes[0] is not None
    assert (outcomes[0].run.status, outcomes[0].run.added) == ("succeeded", ["stardist 0.1.0"])
    assert (await get(catalogue, job.id)).status == "succeeded"

    await in_session(catalogue, lambda s: enqueue_index(s, repo_id, "poll"))
    assert await worker.run_once()
    assert outcomes[1] is not None
    assert outcomes[1].run.status == "unchanged"
    async with catalogue.sessions() as session:
        runs = await session.scalars(select(IndexRun.status).order_by(IndexRun.id))
        assert list(runs) == ["succeeded", "unchanged"]


async def test_a_scan_asked_for_waits_for_the_index_job_of_its_repo(
    catalogue: Catalogue, local_remote: Remote
) -> None:
    """Repro: `scanRepo` during a poll job of the same repository ran both at once over
    one mirror and recorded one as failed. Now the scan waits for the job, then runs;
    and no worker starts an index job of the repository while a scan runs."""
    local_remote.work.commit("release", {"port.yaml": port_yaml("raced")})
    local_remote.work.tag("1.0.0")
    local_remote.work.push()
    repo_id = await register(catalogue, local_remote.url)
    real = index_handler(catalogue.sessions, catalogue.settings)
    started, let_go = asyncio.Event(), asyncio.Event()

    async def slow(job: Job) -> ScanOutcome | None:
        started.set()
        await let_go.wait()
        outcome: ScanOutcome | None = await real(job)
        return outcome

    worker = Worker(catalogue.sessions, catalogue.settings, {"index": slow})
    await in_session(catalogue, lambda s: enqueue_index(s, repo_id, "poll"))
    polled = asyncio.create_task(worker.run_once())
    await asyncio.wait_for(started.wait(), 10)
    asked = asyncio.create_task(scan_now(catalogue.sessions, catalogue.settings, repo_id))
    await asyncio.sleep(1.5)
    assert not asked.done()  # waiting for the poll's run
    let_go.set()
    await asyncio.wait_for(polled, 30)
    outcome = await asyncio.wait_for(asked, 30)
    assert outcome.changes is not None
    async with catalogue.sessions() as session:
        runs = list(await session.scalars(select(IndexRun).where(IndexRun.repo_id == repo_id)))
    assert [run.status for run in runs] == ["succeeded", "unchanged"]  # one after the other
    jobs = await in_session(catalogue, lambda s: queue.jobs(s, key=index_key(repo_id)))
    assert [job.status for job in jobs] == ["succeeded", "succeeded"]


async def test_no_worker_starts_an_index_job_while_a_scan_of_its_repo_runs(
    catalogue: Catalogue,
) -> None:
    async with catalogue.sessions() as session:
        held = await queue.hold(session, "index", "repo:7", "someone-now", lease=LEASE)
    assert held is not None
    async with catalogue.sessions() as session:  # the key is held: not twice
        assert await queue.hold(session, "index", "repo:7", "other-now", lease=LEASE) is None
    queued = await enqueue(catalogue, "index", key="repo:7")
    assert await claim(catalogue, "w1", kinds=["index"]) is None
    await in_session(catalogue, lambda s: queue.succeed(s, held.id, "someone-now"))
    taken = await claim(catalogue, "w1", kinds=["index"])
    assert taken is not None
    assert taken.id == queued.id


async def test_index_job_fails_at_once_when_retrying_cannot_help(
    catalogue: Catalogue, local_remote: Remote
) -> None:
    local_remote.work.commit("0.1.0", {"port.yaml": port_yaml("stardist", "0.1.0")})
    local_remote.work.push()
    repo: Repo = await in_session(
        catalogue, lambda s: add_repo(s, local_remote.url, allow_local=True, branch="nope")
    )
    job = await in_session(catalogue, lambda s: enqueue_index(s, repo.id, "webhook"))
    assert await index_worker(catalogue, []).run_once()
    failed = await get(catalogue, job.id)
    assert (failed.status, failed.attempts) == ("failed", 1)  # not 3 fetches of the same
    assert failed.last_error is not None
    assert "branch 'nope'" in failed.last_error


async def test_index_job_retries_an_unreachable_remote_and_skips_a_deleted_repo(
    catalogue: Catalogue, tmp_path: Any
) -> None:
    repo_id = await register(catalogue, f"file://{tmp_path / 'nowhere.git'}")
    outcomes: list[ScanOutcome | None] = []
    worker = index_worker(catalogue, outcomes)

    job = await in_session(catalogue, lambda s: enqueue_index(s, repo_id, "webhook"))
    assert await worker.run_once()
    retry = await get(catalogue, job.id)
    assert (retry.status, retry.attempts, retry.max_attempts) == ("queued", 1, 3)
    async with catalogue.sessions() as session:
        run = await session.scalar(select(IndexRun))
    assert run is not None
    assert run.status == "failed"
    assert retry.last_error is not None
    assert retry.last_error.startswith(f"index run {run.id}: ")
    assert outcomes == []  # after-hooks only see successes

    async def delete(session: Any) -> None:
        await session.delete(await session.get(Repo, repo_id))

    await in_session(catalogue, delete)
    await make_due(catalogue, job.id)
    assert await worker.run_once()
    assert (await get(catalogue, job.id)).status == "succeeded"
    assert outcomes == [None]


# --- polling ------------------------------------------------------------------------------


async def test_polling_queues_due_repos_and_schedules_the_next_poll_with_jitter(
    catalogue: Catalogue, tmp_path: Any
) -> None:
    settings = catalogue.settings.model_copy(update={"poll_seconds": 100, "poll_jitter": 0.2})
    never, past, future = [await register(catalogue, str(tmp_path / f"{n}.git")) for n in "abc"]
    in_an_hour = utcnow() + timedelta(hours=1)

    async def schedule(session: Any) -> None:
        await session.execute(
            update(Repo).where(Repo.id == past).values(next_poll_at=utcnow() - timedelta(1))
        )
        await session.execute(update(Repo).where(Repo.id == future).values(next_poll_at=in_an_hour))

    await in_session(catalogue, schedule)
    before = utcnow()
    assert await poll_due_repos(catalogue.sessions, settings) == 2
    after = utcnow()

    async with catalogue.sessions() as session:
        queued = await queue.jobs(session, kind="index")
        polls = dict((await session.execute(select(Repo.id, Repo.next_poll_at))).all())
    assert sorted((j.key, j.payload["reason"]) for j in queued) == [
        (index_key(never), "poll"),
        (index_key(past), "poll"),
    ]
    for repo_id in (never, past):
        scheduled = polls[repo_id]
        assert scheduled is not None
        assert before + timedelta(seconds=80) <= scheduled <= after + timedelta(seconds=120)
    assert polls[future] == in_an_hour
    assert await poll_due_repos(catalogue.sessions, settings) == 0

    spread = {next_poll(settings).total_seconds() for _ in range(200)}
    assert all(80 <= seconds <= 120 for seconds in spread)
    assert max(spread) - min(spread) > 20  # jittered, not one fixed interval


async def test_finished_jobs_are_deleted_after_the_days_kept(catalogue: Catalogue) -> None:
    settings = catalogue.settings.model_copy(update={"job_keep_days": 7})
    old_success, old_failure, recent, waiting = [await enqueue(catalogue) for _ in range(4)]
    long_ago = utcnow() - timedelta(days=8)

    async def age(session: Any) -> None:
        for job, status in ((old_success, "succeeded"), (old_failure, "failed")):
            await session.execute(
                update(Job).where(Job.id == job.id).values(status=status, finished_at=long_ago)
            )
        await session.execute(
            update(Job).where(Job.id == recent.id).values(status="succeeded", finished_at=utcnow())
        )

    await in_session(catalogue, age)
    async with catalogue.sessions() as session, session.begin():
        session.add_all(
            [
                WebhookDelivery(forge="github", delivery="old", event="push", received_at=long_ago),
                WebhookDelivery(forge="github", delivery="new", event="push"),
            ]
        )
    [prune] = [
        task for task in periodic_tasks(catalogue.sessions, settings) if task.name == "prune"
    ]
    await prune.run()
    async with catalogue.sessions() as session:
        kept = [(j.id, j.status) for j in await queue.jobs(session)]
        deliveries = list(await session.scalars(select(WebhookDelivery.delivery)))
    assert kept == [(recent.id, "succeeded"), (waiting.id, "queued")]
    assert deliveries == ["new"]
