"""Automatic updates end to end, with every part real: a bare repository served by
`git daemon`, a forge-shaped signed webhook, the job worker and the reconciler of an
in-process Port, and containers on the Docker engine.

Push tag v1.1.0, send the webhook: the MINOR Setup runs 1.1.0 and its old container is
gone, the PATCH Setup stays on 1.0.x and the NONE Setup does not move. A release whose
container exits at once is rolled back, and the old container is never stopped.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from port.accounts.service import create_token, create_user
from port.catalogue.repos import add_repo
from port.deploy.backends.base import LABEL_INSTANCE
from port.settings import Settings
from port.work.server import create_app
from tests.harness import Catalogue, eventually
from tests.integration.dockerfixtures import TestImages
from tests.integration.gitfixtures import GitDaemon, WorkRepo, image_yaml
from tests.unit.test_webhooks_forges import (
    SECRET,
    encode,
    gitea_headers,
    gitea_push,
    github_headers,
    github_push,
    gitlab_headers,
    gitlab_push,
)

pytestmark = [pytest.mark.docker, pytest.mark.git]
SETUP = """query($id: ID!) { setup(id: $id) { release { version } skippedVersions
  pods { containerId image status } events { kind message } } }"""


@dataclass
class Store:
    client: AsyncTestClient[Any]
    settings: Settings
    work: WorkRepo
    name: str  # the repository's path on the daemon
    alice: str
    docker: Any

    async def gql(self, query: str, token: str | None = None, **variables: Any) -> Any:
        response = await self.client.post(
            "/graphql",
            json={"query": query, "variables": variables},
            headers={"Authorization": f"Bearer {token or self.alice}"},
        )
        body = response.json()
        assert "errors" not in body, body
        return body["data"]

    async def setup(self, policy: str) -> str:
        created = await self.gql(
            "mutation($p: UpdatePolicy!) { createSetup(input: "
            '{app: "busy", start: true, updatePolicy: $p}) { setup { id } } }',
            p=policy,
        )
        return str(created["createSetup"]["setup"]["id"])

    async def until(self, setup_id: str, done: Callable[[Any], bool]) -> Any:
        """The Setup once ``done`` says so; bounded (60 s), then the last answer fails."""

        async def setup() -> Any:
            return (await self.gql(SETUP, id=setup_id))["setup"]

        return await eventually(setup, f"setup {setup_id} to get there", until=done)

    def release(self, version: str, image: str) -> None:
        self.work.commit(version, {"port.yaml": image_yaml("busy", version, image)})
        self.work.tag(f"v{version}")
        self.work.push()

    async def webhook(self, forge: str, version: str) -> None:
        ref = f"refs/tags/v{version}"
        host, path = "127.0.0.1", self.name
        delivery = uuid.uuid4().hex
        if forge == "github":
            payload = github_push(ref)
            payload["repository"].update(
                clone_url=f"https://{host}/{path}.git", html_url=f"https://{host}/{path}"
            )
            body = encode(payload)
            headers = github_headers(body, delivery=delivery)
        elif forge == "gitlab":
            body = encode(gitlab_push(ref, host=host, path=path))
            headers = gitlab_headers(delivery=delivery)
        else:
            body = encode(gitea_push(ref, host=host, path=path))
            headers = gitea_headers(body, delivery=delivery)
        answer = await self.client.post(f"/webhooks/{forge}", content=body, headers=headers)
        assert answer.status_code == 202, answer.text
        assert answer.json()["jobs"] == 1

    def containers(self) -> list[Any]:
        label = f"{LABEL_INSTANCE}={self.settings.instance}"
        return list(self.docker.containers.list(all=True, filters={"label": label}))


def running(seen: Any) -> bool:
    return [p["status"] for p in seen["pods"]] == ["RUNNING"]


@pytest.fixture
async def store(
    catalogue: Catalogue,
    docker_settings: Callable[..., Settings],
    docker_engine: Any,
    docker_images: TestImages,
    git_daemon: GitDaemon,
    tmp_path: Path,
) -> AsyncIterator[Store]:
    settings = docker_settings(
        database_url=catalogue.settings.database_url,
        data_dir=tmp_path / "data",
        reconcile_seconds=0.3,
        serve_worker=True,
        job_poll_seconds=0.2,
        poll_seconds=0,  # only the webhook may start an index run here
        update_grace_seconds=1,
        restart_backoff_seconds=0.5,
        repo_allowed_networks=["127.0.0.0/8"],  # `git daemon` here: the lab's git server
    )
    name = uuid.uuid4().hex[:10]
    bare = git_daemon.base / f"{name}.git"
    work = WorkRepo(tmp_path / "work", bare)
    async with catalogue.sessions() as session, session.begin():
        await add_repo(
            session,
            git_daemon.url(bare),
            allow_local=False,
            allowed_networks=settings.repo_allowed_networks,
            webhook_secret=SECRET,
        )
        alice = await create_user(session, "alice")
        _, token = await create_token(session, alice, "tests")
    async with AsyncTestClient(app=create_app(settings)) as client:
        yield Store(client, settings, work, name, token, docker_engine)


@pytest.fixture
def second_image(docker_engine: Any, docker_images: TestImages) -> Any:
    """The `forever` image under a second name: release 1.1.0's build."""
    repository, tag = "port-test/forever-next", uuid.uuid4().hex[:8]
    docker_engine.api.tag(docker_images["forever"], repository, tag)
    yield f"{repository}:{tag}"
    docker_engine.images.remove(f"{repository}:{tag}", force=True)


@pytest.mark.parametrize("forge", ["github", "gitlab", "gitea"])
async def test_a_pushed_tag_updates_the_setups_that_follow_it(
    store: Store, docker_images: TestImages, second_image: str, forge: str
) -> None:
    store.release("1.0.0", docker_images["forever"])
    await store.webhook(forge, "1.0.0")  # the first index run, through the job worker
    for _ in range(300):
        apps = await store.gql('{ app(identifier: "busy") { identifier } }')
        if apps["app"]:
            break
        await asyncio.sleep(0.1)
    minor, patch, pinned = [await store.setup(p) for p in ("MINOR", "PATCH", "NONE")]
    before = {
        s: (await store.until(s, running))["pods"][0]["containerId"] for s in (minor, patch, pinned)
    }

    store.release("1.1.0", second_image)
    await store.webhook(forge, "1.1.0")
    moved = await store.until(
        minor, lambda s: "UPDATE_SUCCEEDED" in [e["kind"] for e in s["events"]]
    )
    assert moved["release"]["version"] == "1.1.0"
    assert running(moved)
    [pod] = moved["pods"]
    assert pod["image"] == second_image
    kinds = [e["kind"] for e in moved["events"]]
    assert {"UPDATE_AVAILABLE", "UPDATE_STARTED", "UPDATE_SUCCEEDED"} <= set(kinds)
    ids = {c.id for c in store.containers()}
    assert before[minor] not in ids  # the old container is gone
    assert pod["containerId"] in ids
    for stays in (patch, pinned):
        seen = (await store.gql(SETUP, id=stays))["setup"]
        assert seen["release"]["version"] == "1.0.0"
        assert [p["containerId"] for p in seen["pods"]] == [before[stays]]
    assert len(ids) == 3


async def test_a_release_that_exits_at_once_is_rolled_back(
    store: Store, docker_images: TestImages
) -> None:
    store.release("1.0.0", docker_images["forever"])
    await store.webhook("github", "1.0.0")
    for _ in range(300):
        if (await store.gql('{ app(identifier: "busy") { identifier } }'))["app"]:
            break
        await asyncio.sleep(0.1)
    setup_id = await store.setup("MINOR")
    old = (await store.until(setup_id, running))["pods"][0]["containerId"]
    started = store.docker.containers.get(old).attrs["State"]["StartedAt"]

    store.release("1.1.0", docker_images["exit3"])
    await store.webhook("github", "1.1.0")
    seen = await store.until(setup_id, lambda s: s["skippedVersions"] == ["1.1.0"])
    assert seen["release"]["version"] == "1.0.0"
    assert [p["containerId"] for p in seen["pods"]] == [old]
    [rolled] = [e for e in seen["events"] if e["kind"] == "UPDATE_ROLLED_BACK"]
    assert "exited with code 3" in rolled["message"]
    assert "failing on purpose" in rolled["message"]  # the tail of the new pod's output
    container = store.docker.containers.get(old)
    assert container.status == "running"
    assert container.attrs["State"]["StartedAt"] == started  # never stopped nor restarted
    assert [c.id for c in store.containers()] == [old]  # the failed one was removed
