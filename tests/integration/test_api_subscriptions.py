"""Subscriptions over websockets (graphql-transport-ws): index runs as they finish."""

from __future__ import annotations

import asyncio
from typing import Any

from litestar.testing import TestClient
from strawberry.relay import GlobalID

from port.api.catalogue import RUN_POLL_SECONDS
from port.api.pagination import row_id
from port.catalogue.jobs import enqueue_index, index_handler
from port.jobs.models import Job
from port.jobs.worker import Worker
from port.work.server import create_app
from tests.harness import Api, subscribe
from tests.integration.gitfixtures import Remote, port_yaml

SUBSCRIBE = """subscription($id: ID!) {
  indexRuns(repoId: $id) { repoId status run { status added repo { url } } } }"""


async def test_index_runs_stream_to_subscribers(api: Api, local_remote: Remote) -> None:
    local_remote.work.commit("1", {"port.yaml": port_yaml("sd", "1.0.0")})
    local_remote.work.tag("v1.0.0")
    local_remote.work.push()
    repo_id = await api.create_repo(local_remote.url)
    auth = {"Authorization": f"Bearer {api.admin_token}"}

    # A second server process-alike on the same database, driven from a thread.
    with (
        TestClient(app=create_app(api.catalogue.settings)) as client,
        client.websocket_connect("/graphql", subprotocols=["graphql-transport-ws"]) as socket,
    ):
        subscribe(socket, SUBSCRIBE, {"id": repo_id})
        scan = "mutation($id: ID!) { scanRepo(input: {id: $id}) { run { status } } }"
        response = client.post(
            "/graphql", json={"query": scan, "variables": {"id": repo_id}}, headers=auth
        )
        assert response.json()["data"]["scanRepo"]["run"] == {"status": "SUCCEEDED"}
        started, finished = socket.receive_json(), socket.receive_json()
    assert started["payload"]["data"]["indexRuns"] == {
        "repoId": repo_id,
        "status": "RUNNING",
        "run": None,
    }
    assert finished["type"] == "next"
    assert finished["payload"]["data"]["indexRuns"] == {
        "repoId": repo_id,
        "status": "SUCCEEDED",
        "run": {"status": "SUCCEEDED", "added": ["sd 1.0.0"], "repo": {"url": local_remote.url}},
    }


async def test_index_runs_of_a_worker_reach_subscribers(api: Api, local_remote: Remote) -> None:
    """A run by a worker, as a webhook or a poll starts it, not by this server's scanRepo."""
    local_remote.work.commit("1", {"port.yaml": port_yaml("sd", "1.0.0")})
    local_remote.work.tag("v1.0.0")
    local_remote.work.push()
    repo_id = await api.create_repo(local_remote.url)
    catalogue = api.catalogue
    index = index_handler(catalogue.sessions, catalogue.settings)

    async def unhurried(job: Job) -> Any:  # long enough for the subscriber to see it run
        await asyncio.sleep(2 * RUN_POLL_SECONDS)
        return await index(job)

    worker = Worker(catalogue.sessions, catalogue.settings, {"index": unhurried})
    with (
        TestClient(app=create_app(catalogue.settings)) as client,
        client.websocket_connect("/graphql", subprotocols=["graphql-transport-ws"]) as socket,
    ):
        subscribe(socket, SUBSCRIBE, {"id": repo_id})
        async with catalogue.sessions() as session, session.begin():
            await enqueue_index(session, row_id(GlobalID.from_id(repo_id), "Repo"), "webhook")
        received, ran = await asyncio.gather(
            asyncio.to_thread(lambda: [socket.receive_json(timeout=30) for _ in range(2)]),
            worker.run_once(),
        )
    assert ran
    started, finished = (message["payload"]["data"]["indexRuns"] for message in received)
    assert (started["status"], started["run"]) == ("RUNNING", None)
    assert finished["run"] == {
        "status": "SUCCEEDED",
        "added": ["sd 1.0.0"],
        "repo": {"url": local_remote.url},
    }


async def test_private_catalogue_subscriptions_take_the_token_from_connection_init(
    api: Api, local_remote: Remote
) -> None:
    local_remote.work.commit("empty")
    local_remote.work.push()
    repo_id = await api.create_repo(local_remote.url)
    api.catalogue.settings.public_catalogue = False
    bearer = f"Bearer {api.admin_token}"
    with TestClient(app=create_app(api.catalogue.settings)) as client:
        with client.websocket_connect("/graphql", subprotocols=["graphql-transport-ws"]) as ws:
            subscribe(ws, SUBSCRIBE, {"id": repo_id})
            refused = ws.receive_json()
        assert refused["payload"]["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"

        with client.websocket_connect("/graphql", subprotocols=["graphql-transport-ws"]) as ws:
            subscribe(ws, SUBSCRIBE, {"id": repo_id}, init={"Authorization": bearer})
            scan = "mutation($id: ID!) { scanRepo(input: {id: $id}) { run { status } } }"
            client.post(
                "/graphql",
                json={"query": scan, "variables": {"id": repo_id}},
                headers={"Authorization": bearer},
            )
            started = ws.receive_json()
        assert started["payload"]["data"]["indexRuns"]["status"] == "RUNNING"


async def test_anonymous_subscriptions_get_half_the_places(api: Api, local_remote: Remote) -> None:
    local_remote.work.commit("empty")
    local_remote.work.push()
    variables = {"id": await api.create_repo(local_remote.url)}
    settings = api.catalogue.settings.model_copy(update={"max_subscriptions": 2})
    ws: dict[str, Any] = {"subprotocols": ["graphql-transport-ws"]}
    admin: dict[str, Any] = {**ws, "headers": {"Authorization": f"Bearer {api.admin_token}"}}
    with (
        TestClient(app=create_app(settings)) as client,
        client.websocket_connect("/graphql", **ws) as anonymous,
    ):
        subscribe(anonymous, SUBSCRIBE, variables)
        anonymous.send_json({"type": "ping"})  # answered after the subscription began
        assert anonymous.receive_json() == {"type": "pong"}
        with client.websocket_connect("/graphql", **ws) as another:
            subscribe(another, SUBSCRIBE, variables)
            refused = another.receive_json()
        assert refused["payload"]["errors"][0]["extensions"]["code"] == "BUSY"
        with client.websocket_connect("/graphql", **admin) as user:  # the other half
            subscribe(user, SUBSCRIBE, variables)
            user.send_json({"type": "ping"})
            assert user.receive_json() == {"type": "pong"}  # not an error
