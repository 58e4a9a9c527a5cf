"""Forge webhooks over real HTTP (Litestar), on SQLite and PostgreSQL.

A delivery is answered 202 once it is recorded and its index job queued; the index runs
as a job (nothing is scanned in the request). Wrong, missing or unknown: 401, nothing
queued, nothing recorded.
"""

from __future__ import annotations

import asyncio
import http.server
import json
import logging
import threading
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import urlencode

import pytest
from httpx import Response
from sqlalchemy import func, select

from port.api.webhooks import MAX_WEBHOOK_BODY
from port.catalogue.jobs import index_key
from port.catalogue.models import IndexRun
from port.catalogue.repos import add_repo, update_repo
from port.jobs.models import Job, JobStatus
from port.jobs.queue import jobs
from port.metrics import REGISTRY
from port.webhooks.models import WebhookDelivery
from tests.harness import Api
from tests.integration.ocifixtures import Pusher, descriptor, flavour
from tests.integration.tokenregistry import token_registry
from tests.unit.test_webhooks_forges import (
    SECRET,
    encode,
    gitea_headers,
    gitea_push,
    github_create,
    github_headers,
    github_ping,
    github_push,
    gitlab_headers,
    gitlab_push,
    sign,
)

GITHUB_URL = "https://github.com/acme/stardist"


async def repo(api: Api, url: str = GITHUB_URL, secret: str | None = SECRET, **kw: Any) -> int:
    async with api.catalogue.sessions() as session, session.begin():
        row = await add_repo(session, url, allow_local=True, webhook_secret=secret, **kw)
    return row.id


async def index_jobs(api: Api, repo_id: int | None = None) -> list[Job]:
    key = index_key(repo_id) if repo_id is not None else None
    async with api.catalogue.sessions() as session:
        return await jobs(session, kind="index", key=key)


async def deliveries(api: Api) -> list[WebhookDelivery]:
    async with api.catalogue.sessions() as session:
        return list(await session.scalars(select(WebhookDelivery).order_by(WebhookDelivery.id)))


async def post(api: Api, forge: str, body: bytes, headers: dict[str, str]) -> Response:
    return await api.client.post(f"/webhooks/{forge}", content=body, headers=headers)


async def github(api: Api, payload: dict[str, Any], **kw: str) -> Response:
    body = encode(payload)
    return await post(api, "github", body, github_headers(body, **kw))


# --- GitHub -------------------------------------------------------------------------


async def test_signed_push_queues_one_index_job(api: Api) -> None:
    repo_id = await repo(api)
    response = await github(api, github_push("refs/tags/v1.0.0"))
    assert response.status_code == 202, response.text
    assert response.json() == {
        "accepted": True,
        "message": "index queued for 1 repository",
        "event": "push",
        "replay": False,
        "repos": 1,
        "jobs": 1,
    }
    [job] = await index_jobs(api)
    assert (job.status, job.payload["repo_id"], job.key) == ("queued", repo_id, index_key(repo_id))
    [delivery] = await deliveries(api)
    assert (delivery.forge, delivery.repo_id, delivery.event) == ("github", repo_id, "push")
    async with api.catalogue.sessions() as session:  # the index is the job's, not the request's
        assert await session.scalar(select(func.count()).select_from(IndexRun)) == 0


async def test_replayed_delivery_is_acknowledged_and_ignored(api: Api) -> None:
    await repo(api)
    first = await github(api, github_push(), delivery="d-1")
    assert first.json()["jobs"] == 1
    [job] = await index_jobs(api)
    async with api.catalogue.sessions() as session, session.begin():  # the job ran meanwhile
        ran = await session.get(Job, job.id)
        assert ran is not None
        ran.status = JobStatus.SUCCEEDED

    again = await github(api, github_push(), delivery="d-1")
    assert again.status_code == 202
    assert again.json() | {"message": ""} == {
        "accepted": True,
        "message": "",
        "event": "push",
        "replay": True,
        "repos": 1,
        "jobs": 0,
    }
    assert len(await index_jobs(api)) == 1  # still the one job: nothing queued by the replay
    assert len(await deliveries(api)) == 1
    later = await github(api, github_push(), delivery="d-2")  # a new delivery queues again
    assert later.json()["jobs"] == 1
    assert len(await index_jobs(api)) == 2


async def test_a_queued_job_absorbs_further_pushes(api: Api) -> None:
    await repo(api)
    assert (await github(api, github_push(), delivery="a")).json()["jobs"] == 1
    second = await github(api, github_push("refs/heads/main"), delivery="b")
    assert second.status_code == 202
    assert second.json()["jobs"] == 0
    assert second.json()["message"] == (
        "index queued for 1 repository (1 already had one queued, which covers this push)"
    )
    assert len(await index_jobs(api)) == 1
    assert len(await deliveries(api)) == 2


@pytest.mark.parametrize(
    "signature",
    [
        "sha256=" + sign(b"another body"),
        "sha256=" + "0" * 64,
        "sha1=" + "0" * 40,
        sign(encode(github_push())),  # bare hex: Gitea's form
        "",
    ],
)
async def test_bad_signature_is_401_and_queues_nothing(api: Api, signature: str) -> None:
    await repo(api)
    body = encode(github_push())
    headers = github_headers(body) | {"X-Hub-Signature-256": signature}
    response = await post(api, "github", body, headers)
    assert response.status_code == 401
    assert response.json() == {
        "accepted": False,
        "message": "the delivery is not signed by the webhook secret of a registered repository",
    }
    assert await index_jobs(api) == []
    assert await deliveries(api) == []


async def test_missing_signature_is_401(api: Api) -> None:
    await repo(api)
    body = encode(github_push())
    headers = github_headers(body)
    del headers["X-Hub-Signature-256"]
    response = await post(api, "github", body, headers)
    assert response.status_code == 401
    assert await index_jobs(api) == []
    assert await deliveries(api) == []


async def test_signed_with_another_repos_secret_is_401(api: Api) -> None:
    """A secret opens its own repository only, even with a valid signature."""
    await repo(api, secret=SECRET)
    await repo(api, "https://github.com/acme/other", secret="the-other-secret")
    body = encode(github_push(name="other"))
    response = await post(api, "github", body, github_headers(body))  # signed with SECRET
    assert response.status_code == 401
    assert await index_jobs(api) == []


async def test_unknown_repo_answers_like_a_bad_signature(api: Api) -> None:
    await repo(api)
    unknown = await github(api, github_push(name="not-registered"))
    wrong = await post(
        api,
        "github",
        encode(github_push()),
        github_headers(encode(github_push())) | {"X-Hub-Signature-256": "sha256=" + "0" * 64},
    )
    assert unknown.status_code == wrong.status_code == 401
    assert unknown.json() == wrong.json()  # nothing tells which remotes are registered
    assert await deliveries(api) == []


async def test_repo_without_secret_cannot_be_triggered(api: Api) -> None:
    await repo(api, secret=None)
    response = await github(api, github_push())
    assert response.status_code == 401
    assert await index_jobs(api) == []


async def test_oversized_body_is_413(api: Api) -> None:
    repo_id = await repo(api)
    payload = github_push() | {"padding": "x" * MAX_WEBHOOK_BODY}
    response = await github(api, payload)
    assert response.status_code == 413
    assert await index_jobs(api, repo_id) == []
    assert await deliveries(api) == []


async def test_bodies_over_the_graphql_limit_are_fine(api: Api) -> None:
    """A big push payload (many commits) is above PORT_MAX_BODY_KB but not refused."""
    await repo(api)
    size = api.catalogue.settings.max_body_kb * 1024 * 2
    assert size < MAX_WEBHOOK_BODY
    commits = [
        {"id": f"{n:040x}", "message": "m" * 500, "added": ["a/b"] * 20} for n in range(1000)
    ]
    payload = github_push() | {"commits": commits}
    assert len(encode(payload)) > size
    response = await github(api, payload)
    assert response.status_code == 202, response.text


async def test_ping_queues_nothing(api: Api) -> None:
    await repo(api)
    response = await github(api, github_ping(), event="ping")
    assert response.status_code == 202
    assert response.json() | {"message": ""} == {
        "accepted": True,
        "message": "",
        "event": "ping",
        "replay": False,
        "repos": 1,
        "jobs": 0,
    }
    assert await index_jobs(api) == []
    wrong = await post(
        api,
        "github",
        encode(github_ping()),
        github_headers(encode(github_ping()), event="ping") | {"X-Hub-Signature-256": "x"},
    )
    assert wrong.status_code == 401  # a ping with a wrong secret tells the admin at once


async def test_events_that_do_not_index(api: Api) -> None:
    await repo(api)
    response = await github(api, github_push() | {"action": "opened"}, event="issues")
    assert response.status_code == 202
    assert response.json()["jobs"] == 0
    assert await index_jobs(api) == []


async def test_create_tag_event_queues_an_index(api: Api) -> None:
    repo_id = await repo(api, "git@github.com:Acme/StarDist.git")  # another form and case
    response = await github(api, github_create("v1.1.0"), event="create")
    assert response.status_code == 202
    assert [j.payload["repo_id"] for j in await index_jobs(api)] == [repo_id]


async def test_form_encoded_github_delivery(api: Api) -> None:
    await repo(api)
    body = urlencode({"payload": json.dumps(github_push())}).encode()
    headers = github_headers(body) | {"Content-Type": "application/x-www-form-urlencoded"}
    response = await post(api, "github", body, headers)
    assert response.status_code == 202, response.text
    assert len(await index_jobs(api)) == 1


async def test_malformed_bodies_are_400(api: Api) -> None:
    await repo(api)
    for body in (b"{oops", b"[]"):
        response = await post(api, "github", body, github_headers(body))
        assert response.status_code == 400
        assert response.json()["accepted"] is False
    body = encode({"zen": "no repository"})
    response = await post(api, "github", body, github_headers(body, event="ping"))
    assert response.status_code == 400
    assert "names no repository" in response.json()["message"]
    assert await deliveries(api) == []


async def test_unknown_forge_is_404(api: Api) -> None:
    body = encode(github_push())
    response = await post(api, "bitbucket", body, github_headers(body))
    assert response.status_code == 404
    assert response.json()["accepted"] is False


async def test_shared_remote_queues_each_repo_whose_secret_signed(api: Api) -> None:
    """One monorepo, three Repos (tag prefixes); two share the hook's secret."""
    url = "https://github.com/acme/mono"
    napari = await repo(api, url, tag_prefix="napari-")
    fiji = await repo(api, url + ".git", tag_prefix="fiji-")
    other = await repo(api, "git@github.com:acme/mono.git", "another-secret", tag_prefix="x-")
    response = await github(api, github_push("refs/tags/napari-v1.0.0", name="mono"))
    assert response.status_code == 202
    assert response.json()["repos"] == response.json()["jobs"] == 2
    queued = sorted(j.payload["repo_id"] for j in await index_jobs(api))
    assert queued == [napari, fiji]
    assert other not in queued

    # The other hook (its own secret) delivers the same event id: not a replay.
    body = encode(github_push("refs/tags/napari-v1.0.0", name="mono"))
    headers = github_headers(body) | {
        "X-Hub-Signature-256": "sha256=" + sign(body, "another-secret")
    }
    response = await post(api, "github", body, headers)
    assert response.json() | {"message": ""} == {
        "accepted": True,
        "message": "",
        "event": "push",
        "replay": False,
        "repos": 1,
        "jobs": 1,
    }


async def test_fifty_concurrent_deliveries_leave_one_queued_job(api: Api) -> None:
    repo_id = await repo(api)
    body = encode(github_push())
    responses = await asyncio.gather(
        *(post(api, "github", body, github_headers(body, delivery=f"burst-{n}")) for n in range(50))
    )
    assert [r.status_code for r in responses] == [202] * 50, [r.text for r in responses]
    assert sum(r.json()["jobs"] for r in responses) == 1
    [job] = await index_jobs(api, repo_id)
    assert job.status == "queued"
    assert len(await deliveries(api)) == 50


async def test_concurrent_twins_of_one_delivery_queue_once(api: Api) -> None:
    await repo(api)
    body = encode(github_push())
    responses = await asyncio.gather(
        *(post(api, "github", body, github_headers(body, delivery="twin")) for _ in range(10))
    )
    assert [r.status_code for r in responses] == [202] * 10
    assert sum(not r.json()["replay"] for r in responses) == 1
    assert len(await deliveries(api)) == 1


# --- GitLab ---------------------------------------------------------------------------


async def test_gitlab_token(api: Api) -> None:
    repo_id = await repo(api, "git@gitlab.example.org:acme/stardist.git")
    body = encode(gitlab_push("refs/tags/v1.0.0"))
    good = await post(api, "gitlab", body, gitlab_headers("Tag Push Hook", delivery="g-1"))
    assert good.status_code == 202, good.text
    assert [j.payload["repo_id"] for j in await index_jobs(api)] == [repo_id]

    bad = await post(api, "gitlab", body, gitlab_headers(token="wrong-token", delivery="g-2"))
    assert bad.status_code == 401
    headers = gitlab_headers(delivery="g-3")
    del headers["X-Gitlab-Token"]
    assert (await post(api, "gitlab", body, headers)).status_code == 401
    replay = await post(api, "gitlab", body, gitlab_headers("Tag Push Hook", delivery="g-1"))
    assert replay.json()["replay"] is True
    assert [d.delivery for d in await deliveries(api)] == [f"g-1@{repo_id}"]


async def test_gitlab_branch_push_and_other_hooks(api: Api) -> None:
    await repo(api, "https://gitlab.example.org/acme/stardist")
    body = encode(gitlab_push("refs/heads/main"))
    response = await post(api, "gitlab", body, gitlab_headers("Push Hook", delivery="p"))
    assert response.json()["jobs"] == 1
    note = await post(api, "gitlab", body, gitlab_headers("Note Hook", delivery="n"))
    assert note.status_code == 202
    assert note.json()["jobs"] == 0


# --- Gitea and Forgejo ------------------------------------------------------------------


@pytest.mark.parametrize("forge", ["gitea", "forgejo"])
async def test_gitea_and_forgejo_signatures(api: Api, forge: str) -> None:
    repo_id = await repo(api, "https://git.example.org/acme/stardist.git")
    body = encode(gitea_push("refs/tags/v1.0.0"))
    good = await post(api, forge, body, gitea_headers(body, forge, delivery="e-1"))
    assert good.status_code == 202, good.text
    assert [j.payload["repo_id"] for j in await index_jobs(api)] == [repo_id]

    wrong = gitea_headers(body, forge, delivery="e-2")
    for name in [h for h in wrong if h.endswith("-Signature")]:
        wrong[name] = sign(body, "wrong-secret")
    assert (await post(api, forge, body, wrong)).status_code == 401
    prefixed = gitea_headers(body, forge, delivery="e-3")
    for name in [h for h in prefixed if h.endswith("-Signature")]:
        prefixed[name] = "sha256=" + prefixed[name]
    assert (await post(api, forge, body, prefixed)).status_code == 401
    unsigned = {k: v for k, v in gitea_headers(body, forge).items() if "Signature" not in k}
    assert (await post(api, forge, body, unsigned)).status_code == 401
    assert [d.forge for d in await deliveries(api)] == [forge]


# --- secrets, logs, metrics and the GraphQL side ---------------------------------------


async def test_secret_never_in_answers_or_logs(api: Api, caplog: pytest.LogCaptureFixture) -> None:
    await repo(api)
    await repo(api, "https://gitlab.example.org/acme/stardist")
    # Everything a delivery logs, down to the database driver's DEBUG lines (registering
    # the repos above is not a delivery: its INSERT names the secret at DEBUG).
    caplog.set_level(logging.DEBUG)
    caplog.clear()
    texts = []
    body = encode(github_push())
    for forge, headers in [
        ("github", github_headers(body)),
        ("github", github_headers(body)),  # a replay
        ("github", github_headers(body) | {"X-Hub-Signature-256": "sha256=" + "1" * 64}),
    ]:
        texts.append((await post(api, forge, body, headers)).text)
    gitlab_body = encode(gitlab_push())
    for token in (SECRET, SECRET + "-wrong", SECRET):
        response = await post(api, "gitlab", gitlab_body, gitlab_headers(token=token))
        texts.append(response.text)
    response = await post(api, "gitlab", encode(gitlab_push(path="acme/unknown")), gitlab_headers())
    texts.append(response.text)
    body = encode(github_push())
    signature = sign(body)
    assert "webhook github push" in caplog.text  # the receiver does log
    for text in [*texts, caplog.text]:
        assert SECRET not in text
        assert signature not in text


async def test_logs_hide_credentials_of_payload_urls(
    api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    payload = github_push()
    payload["repository"]["clone_url"] = "https://x-access-token:ghs_leak@github.com/a/b.git"
    await github(api, payload)  # no such repository: refused and logged
    assert "refused" in caplog.text
    assert "ghs_leak" not in caplog.text


async def test_webhook_requests_have_their_own_metric_label(api: Api) -> None:
    def count() -> float:
        labels = {"method": "POST", "route": "/webhooks/github", "status": "401"}
        return REGISTRY.get_sample_value("port_http_requests_total", labels) or 0.0

    before = count()
    await github(api, github_push())
    assert count() == before + 1


CREATE = """
mutation($input: CreateRepoInput!) {
  createRepo(input: $input) { repo { url webhookUrls { github gitlab gitea forgejo } } }
}
"""


async def test_create_repo_returns_the_webhook_urls(api: Api) -> None:
    body = await api.gql(
        CREATE, {"input": {"url": GITHUB_URL, "webhookSecret": SECRET}}, token=api.admin_token
    )
    assert "errors" not in body, body
    created = body["data"]["createRepo"]["repo"]
    assert created["webhookUrls"] == {
        "github": "http://127.0.0.1:8080/webhooks/github",
        "gitlab": "http://127.0.0.1:8080/webhooks/gitlab",
        "gitea": "http://127.0.0.1:8080/webhooks/gitea",
        "forgejo": "http://127.0.0.1:8080/webhooks/forgejo",
    }
    assert SECRET not in json.dumps(body)
    listed = await api.gql("{ repos { edges { node { webhookUrls { github } } } } }")
    [edge] = listed["data"]["repos"]["edges"]
    assert edge["node"]["webhookUrls"]["github"].endswith("/webhooks/github")

    # The URL it returns works: a delivery there, signed with the secret, is accepted.
    response = await github(api, github_push())
    assert response.status_code == 202


async def test_changed_secret_takes_effect(api: Api) -> None:
    repo_id = await repo(api)
    async with api.catalogue.sessions() as session, session.begin():
        await update_repo(session, repo_id, webhook_secret="a-brand-new-secret")
    assert (await github(api, github_push(), delivery="old")).status_code == 401
    body = encode(github_push())
    headers = github_headers(body, delivery="new") | {
        "X-Hub-Signature-256": "sha256=" + sign(body, "a-brand-new-secret")
    }
    assert (await post(api, "github", body, headers)).status_code == 202


# --- registries (OCI repositories) ---------------------------------------------------


class Captured(http.server.BaseHTTPRequestHandler):
    """Keeps what a registry POSTs (its notifications) for the test to hand to Port."""

    got: ClassVar[list[tuple[dict[str, str], bytes]]] = []

    def log_message(self, *_args: Any) -> None:
        pass

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        type(self).got.append((dict(self.headers.items()), body))
        self.send_response(200)
        self.end_headers()


def _tagged(body: bytes, tag: str) -> bool:
    """Does a registry's events envelope tell of a push of ``tag``?"""
    events = json.loads(body).get("events", [])
    return any(e.get("target", {}).get("tag") == tag for e in events)


async def test_a_registrys_notification_queues_the_index_of_its_repository(
    api: Api, tmp_path: Path
) -> None:
    """Debian's docker-registry, told to notify Port with a shared token, pushes a
    release: what it sends (captured, then handed to Port) queues the repo's index;
    the same with another token is refused."""
    capture = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Captured)
    Captured.got = []
    threading.Thread(target=capture.serve_forever, daemon=True).start()
    notify = f"http://127.0.0.1:{capture.server_address[1]}/events"
    try:
        with token_registry(tmp_path, auth=None, notify=(notify, SECRET)) as registry:
            repository = "port-test/notified"
            repo_id = await repo(api, f"oci+http://{registry.address}/{repository}")
            pusher = Pusher(registry.address, repository)
            pinned = f"{registry.address}/{repository}@sha256:{'f' * 64}"
            pusher.release("1.0.0", descriptor("1.0.0", flavour("cpu", pinned)))
            pusher.client.close()
            for _ in range(100):
                if any(_tagged(body, "1.0.0") for _, body in Captured.got):
                    break
                await asyncio.sleep(0.1)
    finally:
        capture.shutdown()
        capture.server_close()
    headers, body = next((h, b) for h, b in Captured.got if _tagged(b, "1.0.0"))
    assert headers["Authorization"] == f"Token {SECRET}"  # what the registry was told
    forged = await post(api, "registry", body, {**headers, "Authorization": "Token nope"})
    assert forged.status_code == 401
    assert await index_jobs(api) == []
    blob_only = next(b for _, b in Captured.got if not _tagged(b, "1.0.0"))
    ignored = await post(api, "registry", blob_only, headers)
    assert ignored.status_code == 202  # a blob's push: acknowledged, nothing to index
    assert await index_jobs(api) == []
    response = await post(api, "registry", body, headers)
    assert response.status_code == 202, response.text
    assert response.json()["event"] == "push"
    [job] = await index_jobs(api)
    assert job.payload["repo_id"] == repo_id
