"""Jobs across real processes: two Port processes sharing one PostgreSQL database, a
worker killed with SIGKILL, and the `port worker` command."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from port.catalogue.jobs import index_key
from port.catalogue.models import IndexRun
from port.catalogue.repos import add_repo
from port.jobs import queue
from port.jobs.models import Job
from port.jobs.worker import Worker
from tests.harness import Catalogue, eventually
from tests.integration.gitfixtures import Remote, port_yaml

PORT = Path(sys.executable).with_name("port")

# A Port process running `workers` Workers that know one kind of job, "test": `record`
# appends "<job id> <worker>" to a file of its own and takes a few milliseconds;
# `hang` appends the same line and never returns; `slow` appends it and returns after
# a second, in one worker run as `port worker` runs it (signals stop it). The file
# exists once the workers are made.
WORKER_SCRIPT = """
import asyncio, contextlib, random, sys
from pathlib import Path
from port import db
from port.jobs.worker import Worker, run_worker
from port.settings import Settings

url, out, mode, workers, lease = sys.argv[1:6]

async def main():
    settings = Settings(
        database_url=url, data_dir=Path(out).parent / "data", poll_seconds=0,
        job_poll_seconds=0.05, job_lease_seconds=float(lease),
    )
    engine = db.create_engine(settings.sqlalchemy_url)
    sessions = db.sessionmaker(engine)
    log = open(out + ".tmp", "a", buffering=1)

    async def record(job):
        log.write(f"{job.id} {job.locked_by}\\n")
        await asyncio.sleep(random.uniform(0, 0.01))

    async def hang(job):
        log.write(f"{job.id} {job.locked_by}\\n")
        await asyncio.Event().wait()

    async def slow(job):
        log.write(f"{job.id} {job.locked_by}\\n")
        await asyncio.sleep(1)

    if mode == "slow":
        Path(out + ".tmp").rename(out)
        @contextlib.asynccontextmanager
        async def make(sessions, settings):
            yield Worker(sessions, settings, {"test": slow})

        await run_worker(settings, make)
        return
    handler = {"record": record, "hang": hang}[mode]
    running = [Worker(sessions, settings, {"test": handler}) for _ in range(int(workers))]
    Path(out + ".tmp").rename(out)
    await asyncio.gather(*(worker.run() for worker in running))

asyncio.run(main())
"""

Spawn = Callable[..., tuple[subprocess.Popen[bytes], Path]]


def environment() -> dict[str, str]:
    """The caller's environment without PORT_* settings (each test sets its own)."""
    return {k: v for k, v in os.environ.items() if not k.startswith("PORT_")}


@pytest.fixture
def spawn(tmp_path: Path) -> Iterator[Spawn]:
    """Start worker processes (WORKER_SCRIPT); all are killed at the end of the test."""
    started: list[subprocess.Popen[bytes]] = []

    def start(
        url: str, mode: str = "record", workers: int = 1, lease: float = 5.0
    ) -> tuple[subprocess.Popen[bytes], Path]:
        out = tmp_path / f"process-{len(started)}.log"
        process = subprocess.Popen(
            [sys.executable, "-c", WORKER_SCRIPT, url, str(out), mode, str(workers), str(lease)],
            cwd=tmp_path,
            env=environment(),
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        started.append(process)
        return process, out

    yield start
    for process in started:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def recorded(*logs: Path) -> list[tuple[int, str]]:
    lines = [line.split() for log in logs for line in log.read_text().splitlines()]
    return [(int(job_id), worker) for job_id, worker in lines]


async def count(cat: Catalogue, status: str) -> int:
    async with cat.sessions() as session:
        return int(
            await session.scalar(select(func.count()).select_from(Job).where(Job.status == status))
            or 0
        )


@pytest.mark.postgres
@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
async def test_two_port_processes_on_one_postgres_database_never_run_a_job_twice(
    catalogue: Catalogue, spawn: Spawn
) -> None:
    url = catalogue.settings.sqlalchemy_url
    processes = [spawn(url, workers=3) for _ in range(2)]
    logs = [log for _, log in processes]
    await eventually(lambda: all(log.exists() for log in logs), "both processes to start")

    async with catalogue.sessions() as session, session.begin():
        for n in range(200):
            await queue.enqueue(session, "test", {"n": n})
    await eventually(lambda: _all_done(catalogue, 200), "200 jobs to succeed")

    runs = recorded(*logs)
    assert len(runs) == 200, Counter(job_id for job_id, _ in runs).most_common(3)
    async with catalogue.sessions() as session:
        holders = {job.id: job.locked_by for job in await queue.jobs(session, kind="test")}
    assert dict(runs) == holders  # each job ran once, by the worker that holds it
    assert all(recorded(log) for log in logs), "both processes took part"
    assert len({worker for _, worker in runs}) > 2


async def _all_done(cat: Catalogue, total: int) -> bool:
    return await count(cat, "succeeded") == total


async def test_a_worker_killed_mid_job_leaves_it_to_another_once_the_lease_expires(
    catalogue: Catalogue, spawn: Spawn
) -> None:
    process, log = spawn(catalogue.settings.sqlalchemy_url, mode="hang", lease=1.0)
    await eventually(log.exists, "the worker process to start")
    async with catalogue.sessions() as session, session.begin():
        job = await queue.enqueue(session, "test", {}, key="k")
    assert job is not None
    await eventually(lambda: recorded(log), "the worker process to take the job")
    [(_, dead)] = recorded(log)

    ran: list[int] = []

    async def handler(taken: Job) -> None:
        ran.append(taken.id)

    settings = catalogue.settings.model_copy(update={"job_lease_seconds": 30})
    rescuer = Worker(catalogue.sessions, settings, {"test": handler})
    await asyncio.sleep(1.5)  # longer than the lease: the live worker's heartbeat keeps it
    assert not await rescuer.run_once()

    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    await eventually(rescuer.run_once, "the lease of the killed worker to expire", within=10)
    assert ran == [job.id]
    async with catalogue.sessions() as session:
        done = await session.get(Job, job.id)
    assert done is not None
    assert (done.status, done.attempts, done.locked_by) == ("succeeded", 2, rescuer.name)
    assert done.last_error == f"lease of {dead} expired"


async def test_a_stopping_worker_lets_its_current_job_finish(
    catalogue: Catalogue, spawn: Spawn
) -> None:
    process, log = spawn(catalogue.settings.sqlalchemy_url, mode="slow")
    await eventually(log.exists, "the worker process to start")
    async with catalogue.sessions() as session, session.begin():
        job = await queue.enqueue(session, "test", {})
    assert job is not None
    await eventually(lambda: recorded(log), "the worker process to take the job")

    process.send_signal(signal.SIGTERM)
    await eventually(lambda: process.poll() is not None, "the worker process to exit", within=30)
    assert process.returncode == 0
    async with catalogue.sessions() as session:
        done = await session.get(Job, job.id)
    assert done is not None
    assert (done.status, done.attempts) == ("succeeded", 1)


def port_env(cat: Catalogue, **settings: str) -> dict[str, str]:
    env = environment() | {
        "PORT_DATA_DIR": str(cat.settings.data_dir),
        "PORT_DATABASE_URL": cat.settings.sqlalchemy_url,
        "PORT_ALLOW_LOCAL_REPOS": "true",
        # No containers here: the worker's reconcile trigger stays off.
        "PORT_RECONCILE_SECONDS": "0",
    }
    return env | {f"PORT_{name.upper()}": value for name, value in settings.items()}


async def test_port_worker_polls_and_indexes_a_new_repo_then_stops_on_sigterm(
    catalogue: Catalogue, local_remote: Remote, tmp_path: Path
) -> None:
    local_remote.work.commit("0.1.0", {"port.yaml": port_yaml("stardist", "0.1.0")})
    local_remote.work.tag("v0.1.0")
    local_remote.work.push()
    async with catalogue.sessions() as session, session.begin():
        repo = await add_repo(session, local_remote.url, allow_local=True)

    process = await asyncio.create_subprocess_exec(
        PORT,
        "worker",
        cwd=tmp_path,
        env=port_env(catalogue, poll_seconds="60", job_poll_seconds="0.1"),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:

        async def indexed() -> bool:
            async with catalogue.sessions() as session:
                return bool(await session.scalar(select(func.count()).select_from(IndexRun)))

        await eventually(indexed, "the new repository to be polled and indexed")
        process.send_signal(signal.SIGTERM)
        _, output = await asyncio.wait_for(process.communicate(), 30)
    finally:
        if process.returncode is None:
            os.killpg(process.pid, signal.SIGKILL)
            await process.wait()
    stderr = output.decode()
    assert process.returncode == 0, stderr
    async with catalogue.sessions() as session:
        [job] = await queue.jobs(session, key=index_key(repo.id))
        run = await session.scalar(select(IndexRun))
    assert (job.status, job.payload["reason"]) == ("succeeded", "poll")
    assert run is not None
    assert (run.status, run.added) == ("succeeded", ["stardist 0.1.0"])
    assert "started" in stderr
    assert "stopped" in stderr


def test_port_worker_refuses_a_database_that_is_not_migrated(tmp_path: Path) -> None:
    result = subprocess.run(
        [str(PORT), "worker"],
        cwd=tmp_path,
        env=environment() | {"PORT_DATA_DIR": str(tmp_path / "empty")},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert "run `port db upgrade`" in result.stderr
