"""A soak: twenty users at once for three minutes against `port serve` on PostgreSQL.

Every part is real: `port serve` as a process, PostgreSQL, a repository on `git daemon`
whose tags arrive by signed webhook, the Docker engine, a registry, and a second
registry that answers slowly (each blob held back a few seconds). Each user browses
(signed in or not), installs one of two apps, watches it, and deletes it, over and
over; meanwhile a new release of one app is pushed every 20 s, so Setups that follow
it roll out health-gated updates among the installs and deletions.

Afterwards (issue 16): no unexpected error in any answer or in the server's log, no
Setup lost while its owner still had it, never two containers for one Pod, every
container gone once every Setup is, and the server's memory back within 10% of what it
used after a first warm-up minute. ``PORT_TEST_SOAK_SECONDS`` sets the length (180).
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import re
import secrets
import signal
import subprocess
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from port import db
from port.accounts.service import create_token, create_user
from port.catalogue.repos import add_repo
from port.deploy.backends.base import LABEL_INSTANCE, LABEL_POD
from tests.harness import empty_tables, eventually
from tests.integration.dockerfixtures import DelayingRegistry, TestImages, remove_instance
from tests.integration.gitfixtures import GitDaemon, WorkRepo, image_yaml
from tests.serverproc import Server, start
from tests.unit.test_webhooks_forges import SECRET, encode, github_headers, github_push

pytestmark = [pytest.mark.docker, pytest.mark.git, pytest.mark.postgres]

USERS = 20
SECONDS = float(os.environ.get("PORT_TEST_SOAK_SECONDS", "180"))
WARM_UP = min(60.0, SECONDS / 3)  # memory is measured from the end of this
RELEASE_EVERY = 20.0
BROWSE = """query { apps(first: 20) { totalCount edges { node { identifier
  releases(first: 5) { edges { node { version flavours { name image } } } } } } } }"""
CREATE = """mutation($app: String!) { createSetup(input: {app: $app, start: true,
  updatePolicy: MINOR}) { setup { id } } }"""
SETUP = "query($id: ID!) { setup(id: $id) { id release { version } pods { status } } }"
DELETE = "mutation($id: ID!) { deleteSetup(input: {id: $id}) { deletedId } }"
# Log lines that say something went wrong in Port itself (not in a user's app).
TROUBLE = re.compile(r"^(ERROR|CRITICAL)\b|Traceback \(most recent call last\)")


def troubles(output: list[str], at: list[int], kinds: int = 3) -> str:
    """Each kind of trouble once (its logger and message), with the lines that follow
    it: the tracebacks, rather than the log's last lines."""
    seen: set[str] = set()
    shown = []
    for i in at:
        kind = output[i].split(" - ", 2)[-1][:80]  # past the level and the time
        if kind not in seen and len(seen) < kinds:
            seen.add(kind)
            shown.append("".join(output[i : i + 60]))
    return "\n".join(shown)


@pytest.fixture(params=[pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest) -> str:
    """PostgreSQL only: the soak is about the database many processes would share."""
    url: str = request.getfixturevalue("postgres_database")
    empty_tables(url)
    return url


@dataclass
class Soak:
    server: Server
    work: WorkRepo
    names: dict[str, str]  # app -> its repository's path on the daemon
    images: dict[str, str]  # app -> image
    tokens: list[str]
    instance: str
    docker: Any
    problems: list[str] = field(default_factory=list)
    twins: list[str] = field(default_factory=list)
    installs: Counter[str] = field(default_factory=Counter)

    def release(self, version: str) -> None:
        self.work.commit(version, {"port.yaml": image_yaml("busy", version, self.images["busy"])})
        self.work.tag(f"v{version}")
        self.work.push()

    async def webhook(self, client: httpx.AsyncClient, version: str, app: str = "busy") -> None:
        payload = github_push(f"refs/tags/v{version}")
        name = self.names[app]
        payload["repository"].update(
            clone_url=f"https://127.0.0.1/{name}.git", html_url=f"https://127.0.0.1/{name}"
        )
        body = encode(payload)
        headers = github_headers(body, delivery=uuid.uuid4().hex)
        answer = await client.post("/webhooks/github", content=body, headers=headers)
        if answer.status_code != 202:
            self.problems.append(f"webhook {version}: HTTP {answer.status_code} {answer.text}")

    async def gql(
        self, client: httpx.AsyncClient, query: str, token: str | None, **variables: Any
    ) -> dict[str, Any] | None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        try:
            answer = await client.post(
                "/graphql", json={"query": query, "variables": variables}, headers=headers
            )
        except httpx.HTTPError as exc:
            self.problems.append(f"{query.split()[0]}: {exc!r}")
            return None
        body = answer.json() if answer.status_code == 200 else None
        if body is None or body.get("errors"):
            self.problems.append(f"HTTP {answer.status_code}: {answer.text[:300]}")
            return None
        data: dict[str, Any] = body["data"]
        return data

    def containers_by_pod(self) -> Counter[str]:
        label = {"label": f"{LABEL_INSTANCE}={self.instance}"}
        rows = self.docker.api.containers(all=True, filters=label)
        return Counter(row["Labels"].get(LABEL_POD, "?") for row in rows)


def _rss(pid: int) -> int:
    """Resident memory of ``pid`` in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for {pid}")


@pytest.fixture
async def soak(
    database_url: str,
    docker_engine: Any,
    docker_images: TestImages,
    docker_network: str,
    docker_registry: str,
    git_daemon: GitDaemon,
    tmp_path: Path,
) -> AsyncIterator[Soak]:
    busy, _ = docker_images.push_unique(docker_registry, "soak")
    slow_upstream, _ = docker_images.push_unique(docker_registry, "soak-slow")
    with DelayingRegistry(docker_registry, hold_seconds=3) as registry:
        slow = slow_upstream.replace(docker_registry, registry.address, 1)
        docker_images.pushed.append(slow.rpartition(":")[0])  # removed after the session
        instance = f"soak{secrets.token_hex(4)}"
        repos = {}
        for app, image in (("busy", busy), ("slowpoke", slow)):
            name = f"{app}-{uuid.uuid4().hex[:8]}"
            work = WorkRepo(tmp_path / f"work-{app}", git_daemon.base / f"{name}.git")
            work.commit("1.0.0", {"port.yaml": image_yaml(app, "1.0.0", image)})
            work.tag("v1.0.0")
            work.push()
            repos[app] = (name, work)
        engine = db.create_engine(database_url)
        tokens = []
        try:
            async with db.sessionmaker(engine)() as session, session.begin():
                for name, _work in repos.values():
                    await add_repo(
                        session,
                        git_daemon.url(git_daemon.base / f"{name}.git"),
                        allow_local=False,
                        allowed_networks=["127.0.0.0/8"],
                        webhook_secret=SECRET,
                    )
                for n in range(USERS):
                    user = await create_user(session, f"user{n:02d}")
                    tokens.append((await create_token(session, user, "soak"))[1])
        finally:
            await engine.dispose()
        env = {
            "PORT_DATABASE_URL": database_url,
            "PORT_INSTANCE": instance,
            "PORT_DOCKER_NETWORK": docker_network,
            "PORT_ALLOWED_REGISTRIES": json.dumps([docker_registry, registry.address]),
            "PORT_REPO_ALLOWED_NETWORKS": json.dumps(["127.0.0.0/8"]),
            "PORT_PULL_POLICY": "always",  # every start pulls: the slow registry stays slow
            "PORT_RECONCILE_SECONDS": "1",
            "PORT_JOB_POLL_SECONDS": "0.5",
            "PORT_POLL_SECONDS": "0",  # only webhooks start index runs
            "PORT_UPDATE_GRACE_SECONDS": "1",
            "PORT_RESTART_BACKOFF_SECONDS": "0.5",
            "PORT_STOP_TIMEOUT_SECONDS": "1",
            "PORT_ACCESS_LOG": "false",
            "PORT_CACHE_SECONDS": "1",
        }
        server = start(tmp_path / "data", env=env)
        images = {"busy": busy, "slowpoke": slow}
        names = {app: name for app, (name, _work) in repos.items()}
        soak = Soak(server, repos["busy"][1], names, images, tokens, instance, docker_engine)
        try:
            yield soak
        finally:
            # As `stop` does, but it never fails the test: the soak's asserts say what.
            os.killpg(server.process.pid, signal.SIGTERM)
            try:
                server.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(server.process.pid, signal.SIGKILL)
                server.process.wait(timeout=10)
            if server.reader is not None:
                server.reader.join(10)
            remove_instance(docker_engine, instance)


async def _user(soak: Soak, client: httpx.AsyncClient, token: str, until: float) -> None:
    """Browse, install, watch, delete, until ``until``; what goes wrong is a problem."""
    rng = random.Random(token)  # noqa: S311 - a test's choices, not secrets
    while time.monotonic() < until:
        await soak.gql(client, BROWSE, token if rng.random() < 0.7 else None)
        app = "slowpoke" if rng.random() < 0.25 else "busy"
        created = await soak.gql(client, CREATE, token, app=app)
        if created is None:
            await asyncio.sleep(1)
            continue
        soak.installs[app] += 1
        setup_id = created["createSetup"]["setup"]["id"]
        watch_until = time.monotonic() + rng.uniform(3, 12)
        while time.monotonic() < watch_until:
            seen = await soak.gql(client, SETUP, token, id=setup_id)
            if seen is not None and seen["setup"] is None:
                soak.problems.append(f"setup {setup_id} vanished while its owner had it")
                break
            await asyncio.sleep(rng.uniform(0.5, 1.5))
        if await soak.gql(client, DELETE, token, id=setup_id) is None:
            soak.problems.append(f"setup {setup_id} could not be deleted")


async def _releases(soak: Soak, client: httpx.AsyncClient, until: float) -> None:
    patch = 0
    while time.monotonic() + RELEASE_EVERY < until:
        await asyncio.sleep(RELEASE_EVERY)
        patch += 1
        version = f"1.0.{patch}"
        await asyncio.to_thread(soak.release, version)
        await soak.webhook(client, version)


async def _watch_twins(soak: Soak, until: float) -> None:
    while time.monotonic() < until:
        counts = await asyncio.to_thread(soak.containers_by_pod)
        soak.twins += [f"pod {pod}: {n} containers" for pod, n in counts.items() if n > 1]
        await asyncio.sleep(2)


async def test_twenty_users_for_three_minutes_lose_nothing_and_leave_nothing(
    soak: Soak,
) -> None:
    limits = httpx.Limits(max_connections=USERS + 4)
    async with httpx.AsyncClient(base_url=soak.server.base, timeout=60, limits=limits) as client:
        for app in soak.names:  # the first index of both repositories
            await soak.webhook(client, "1.0.0", app)
        await eventually(
            lambda: soak.gql(client, BROWSE, None),
            "both apps indexed",
            until=lambda d: d is not None and d["apps"]["totalCount"] == 2,
        )
        soak.problems.clear()  # answers before the first index are not the soak's
        start = time.monotonic()
        until = start + SECONDS
        pid = soak.server.process.pid
        rss: list[int] = []

        async def measure_after_warm_up() -> None:
            await asyncio.sleep(WARM_UP)
            rss.append(_rss(pid))

        await asyncio.gather(
            *(_user(soak, client, token, until) for token in soak.tokens),
            _releases(soak, client, until),
            _watch_twins(soak, until),
            measure_after_warm_up(),
        )
        await eventually(
            lambda: asyncio.to_thread(soak.containers_by_pod),
            "every container to go with its Setup",
            until=lambda counts: not counts,
            within=90,
        )
        await asyncio.sleep(3)  # the last passes and jobs settle
        rss.append(_rss(pid))

    print(f"soak: {dict(soak.installs)} installs in {SECONDS:g} s; rss {rss} bytes")
    assert soak.installs["busy"] > USERS
    assert soak.installs["slowpoke"] > 0
    assert soak.problems == []
    assert soak.twins == []
    trouble = [i for i, line in enumerate(soak.server.output) if TROUBLE.search(line)]
    assert trouble == [], troubles(soak.server.output, trouble)
    assert rss[1] <= rss[0] * 1.10, f"memory grew from {rss[0]} to {rss[1]} bytes"
