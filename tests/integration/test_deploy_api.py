"""Setups and Pods over GraphQL, against a fake engine: the whole lifecycle, who may do
what, coded errors, and the two subscriptions. Against the real Docker engine: the
reconciler in test_deploy_engine.py, `port serve` processes in test_deploy_restart.py."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from contextlib import ExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import Any

import pytest
from litestar.testing import AsyncTestClient, TestClient
from prometheus_client import REGISTRY
from pydantic import SecretStr
from sqlalchemy import select
from strawberry.relay import to_base64

from port.accounts.models import Token, User
from port.accounts.service import FirstAdmin, create_token, create_user, hash_secret
from port.catalogue.models import App, Repo
from port.deploy import setups as service
from port.deploy.grants import Consent
from port.deploy.models import Pod, Secret, SetupEvent
from port.deploy.reconciler import Reconciler
from port.jobs import queue
from port.orm import utcnow
from port.principal import Principal
from port.secretbox import new_key
from port.settings import Settings
from port.work.server import create_app
from tests.deployfakes import CUDA, FakeBackend, add_app, add_release
from tests.harness import Api, Catalogue, subscribe

SETUP_FIELDS = """id owner { name } status running updatePolicy flavour env
  app { identifier } release { version }
  pods { id status flavour image containerId exitCode restarts message selection
         resources { cpus memory gpus gpuVendor } }"""
CREATE = (
    "mutation($input: CreateSetupInput!) { createSetup(input: $input) { "
    f"setup {{ {SETUP_FIELDS} }} noFittingFlavour {{ message rejected {{ flavour reasons }} "
    f"}} }} }}"
)


@dataclass
class Tenants:
    api: Api
    backend: FakeBackend
    reconciler: Reconciler
    alice: str
    bob: str

    async def gql(self, query: str, token: str | None, **variables: Any) -> dict[str, Any]:
        return await self.api.gql(query, variables, token=token)

    async def create(self, token: str | None, **fields: Any) -> dict[str, Any]:
        return await self.gql(CREATE, token, input={"app": "stardist", **fields})


def code(body: dict[str, Any]) -> str:
    [error] = body["errors"]
    return str(error["extensions"]["code"])


async def _users(catalogue: Catalogue) -> tuple[str, str]:
    async with catalogue.sessions() as session, session.begin():
        await add_app(session, versions=("1.0.0", "1.1.0"))
        await add_app(session, identifier="gpuonly", flavours=(("cuda", "img/gpu:1", CUDA),))
        tokens = []
        for name in ("alice", "bob"):
            user = await create_user(session, name)
            tokens.append((await create_token(session, user, "tests"))[1])
    return tokens[0], tokens[1]


@pytest.fixture
async def tenants(catalogue: Catalogue) -> AsyncIterator[Tenants]:
    backend = FakeBackend("port")
    backend.images.add("img/cpu:1")
    announced: list[FirstAdmin] = []
    app = create_app(catalogue.settings, announce=announced.append, backend=backend)
    async with AsyncTestClient(app=app) as client:
        alice, bob = await _users(catalogue)
        # The app runs on the test client's own thread and loop; passes run here, on the
        # test's loop, through the test's engine (one engine must not span two loops).
        reconciler = Reconciler(catalogue.sessions, catalogue.settings, backend)
        yield Tenants(
            Api(client, announced[0].token, catalogue, announced[0].password),
            backend,
            reconciler,
            alice,
            bob,
        )


async def test_a_setup_lives_from_create_to_delete(tenants: Tenants) -> None:
    created = await tenants.create(tenants.alice, env={"GREETING": "hi"})
    setup = created["data"]["createSetup"]["setup"]
    assert setup["owner"] == {"name": "alice"}
    assert (setup["status"], setup["running"], setup["pods"]) == ("STOPPED", False, [])
    assert setup["release"] == {"version": "1.1.0"}
    assert setup["env"] == {"GREETING": "hi"}

    started = await tenants.gql(
        f"mutation($id: ID!) {{ startSetup(input: {{id: $id}}) {{ setup {{ {SETUP_FIELDS} }} }} }}",
        tenants.alice,
        id=setup["id"],
    )
    [pod] = started["data"]["startSetup"]["setup"]["pods"]
    assert pod["status"] == "PENDING"
    assert pod["selection"] == {
        "flavour": "cpu",
        "score": 0,
        "accelerated": False,
        "rejected": {},
        "node": {"id": "local", "name": "local"},  # the fake engine, one node
    }
    assert pod["resources"] == {"cpus": 2.0, "memory": 1 << 30, "gpus": 0, "gpuVendor": None}

    await tenants.reconciler.reconcile()
    shown = await tenants.gql(
        "query($id: ID!) { setup(id: $id) { status pods { id status containerId logs(tail: 5) } "
        "events { kind message } } }",
        tenants.alice,
        id=setup["id"],
    )
    seen = shown["data"]["setup"]
    assert seen["status"] == "RUNNING"
    [pod] = seen["pods"]
    assert pod["containerId"] in tenants.backend.containers
    assert pod["logs"] == "hello"
    assert [e["kind"] for e in seen["events"]] == ["CREATED", "STARTED", "POD_RUNNING"]

    restarted = await tenants.gql(
        "mutation($id: ID!) { restartPod(input: {id: $id}) { pod { id } } }",
        tenants.alice,
        id=pod["id"],
    )
    assert restarted["data"]["restartPod"]["pod"]["id"] == pod["id"]
    await tenants.reconciler.reconcile()
    again = await tenants.gql(
        "query($id: ID!) { pod(id: $id) { restarts status containerId } }",
        tenants.alice,
        id=pod["id"],
    )
    assert again["data"]["pod"]["restarts"] == 1
    assert again["data"]["pod"]["containerId"] != pod["containerId"]

    stopped = await tenants.gql(
        "mutation($id: ID!) { stopSetup(input: {id: $id}) { setup { running } } }",
        tenants.alice,
        id=setup["id"],
    )
    assert stopped["data"]["stopSetup"]["setup"]["running"] is False
    await tenants.reconciler.reconcile()
    assert tenants.backend.containers == {}
    after = await tenants.gql(
        "query($id: ID!) { setup(id: $id) { status pods { id } all: pods(all: true) "
        "{ status retired } } }",
        tenants.alice,
        id=setup["id"],
    )
    assert after["data"]["setup"] == {
        "status": "STOPPED",
        "pods": [],
        "all": [{"status": "STOPPED", "retired": True}],
    }

    await tenants.gql(
        "mutation($id: ID!) { startSetup(input: {id: $id}) { setup { id } } }",
        tenants.alice,
        id=setup["id"],
    )
    await tenants.reconciler.reconcile()
    assert len(tenants.backend.containers) == 1
    deleted = await tenants.gql(
        "mutation($id: ID!) { deleteSetup(input: {id: $id}) { deletedId } }",
        tenants.alice,
        id=setup["id"],
    )
    assert deleted["data"]["deleteSetup"] == {"deletedId": setup["id"]}
    assert tenants.backend.containers == {}  # removed by the mutation itself
    gone = await tenants.gql(
        "query($id: ID!) { setup(id: $id) { id } }", tenants.alice, id=setup["id"]
    )
    assert gone["data"] == {"setup": None}


async def test_who_may_see_and_touch_a_setup(tenants: Tenants) -> None:
    setup = (await tenants.create(tenants.alice, start=True))["data"]["createSetup"]["setup"]
    await tenants.reconciler.reconcile()
    pod_id = (await tenants.gql("{ pods { id } }", tenants.alice))["data"]["pods"][0]["id"]
    lookups = {
        "setup": ("query($id: ID!) { setup(id: $id) { id } }", setup["id"]),
        "pod": ("query($id: ID!) { pod(id: $id) { id } }", pod_id),
    }
    changes = {
        "startSetup": (
            "mutation($id: ID!) { startSetup(input: {id: $id}) { setup { id } } }",
            setup["id"],
        ),
        "stopSetup": (
            "mutation($id: ID!) { stopSetup(input: {id: $id}) { setup { id } } }",
            setup["id"],
        ),
        "restartPod": (
            "mutation($id: ID!) { restartPod(input: {id: $id}) { pod { id } } }",
            pod_id,
        ),
        "deleteSetup": (
            "mutation($id: ID!) { deleteSetup(input: {id: $id}) { deletedId } }",
            setup["id"],
        ),
    }
    for name, (query, gid) in {**lookups, **changes}.items():
        assert code(await tenants.gql(query, None, id=gid)) == "UNAUTHENTICATED", name
    for name, (query, gid) in lookups.items():  # as if it did not exist
        assert (await tenants.gql(query, tenants.bob, id=gid))["data"] == {name: None}, name
    for name, (query, gid) in changes.items():
        assert code(await tenants.gql(query, tenants.bob, id=gid)) == "NOT_FOUND", name
    assert code(await tenants.create(None)) == "UNAUTHENTICATED"
    assert (await tenants.gql("{ setups { id } pods { id } }", tenants.bob))["data"] == {
        "setups": [],
        "pods": [],
    }
    node = "query($id: ID!) { node(id: $id) { id } }"
    assert (await tenants.gql(node, tenants.bob, id=setup["id"]))["data"]["node"] is None
    assert (await tenants.gql(node, tenants.alice, id=setup["id"]))["data"]["node"] == {
        "id": setup["id"]
    }
    assert len(tenants.backend.running()) == 1  # bob's attempts changed nothing

    admin = tenants.api.admin_token
    everyone = await tenants.gql("{ setups { id owner { name } } }", admin)
    assert everyone["data"]["setups"] == [{"id": setup["id"], "owner": {"name": "alice"}}]
    stopped = await tenants.gql(changes["stopSetup"][0], admin, id=setup["id"])
    assert "errors" not in stopped
    await tenants.reconciler.reconcile()
    assert tenants.backend.containers == {}


async def test_no_fitting_flavour_is_a_typed_result_with_reasons(tenants: Tenants) -> None:
    body = await tenants.gql(CREATE, tenants.alice, input={"app": "gpuonly"})
    assert "errors" not in body
    result = body["data"]["createSetup"]
    assert result["setup"] is None
    assert result["noFittingFlavour"]["rejected"] == [
        {"flavour": "cuda", "reasons": ["no CUDA GPU"]}
    ]
    assert "cuda: no CUDA GPU" in result["noFittingFlavour"]["message"]
    assert (await tenants.gql("{ setups { id } }", tenants.alice))["data"]["setups"] == []


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"app": "nope"}, "NOT_FOUND"),
        ({"env": {"PORT_SETUP_ID": "7"}}, "INVALID_INPUT"),
        ({"env": ["not", "an", "object"]}, "INVALID_INPUT"),
        ({"flavour": "gpu"}, "INVALID_INPUT"),
        ({"updatePolicy": "RANGE", "versionRange": "banana"}, "INVALID_INPUT"),
    ],
)
async def test_bad_input_is_refused_with_a_code(
    tenants: Tenants, fields: dict[str, Any], expected: str
) -> None:
    assert code(await tenants.create(tenants.alice, **fields)) == expected


async def test_a_variable_the_manifest_requires_must_be_given(
    tenants: Tenants, catalogue: Catalogue
) -> None:
    needs = {"name": "API_KEY", "value": None, "description": "", "secret": False}
    run = {"env": [needs | {"required": True}, {**needs, "name": "LANG", "required": False}]}
    async with catalogue.sessions() as session, session.begin():
        await add_app(session, identifier="keyed", flavours=(("cpu", "img/cpu:1", []),), run=run)
    for env in ({}, {"API_KEY": ""}, {"LANG": "C"}):
        body = await tenants.create(tenants.alice, app="keyed", env=env)
        [error] = body["errors"]
        assert error["extensions"] == {"code": "INVALID_INPUT", "field": "env"}, error
        assert error["message"] == "keyed 1.0.0 needs a value for API_KEY: set it in env"
    created = await tenants.create(tenants.alice, app="keyed", env={"API_KEY": "k"})
    assert created["data"]["createSetup"]["setup"]["env"] == {"API_KEY": "k"}


async def test_pod_events_and_logs_stream_to_the_owner(catalogue: Catalogue) -> None:
    backend = FakeBackend("port")
    backend.images.add("img/cpu:1")
    # The server's own reconciler: its passes are jobs, run by the server's worker.
    settings = catalogue.settings.model_copy(
        update={"reconcile_seconds": 0.2, "serve_worker": True, "poll_seconds": 0}
    )
    alice, _bob = await _users(catalogue)
    auth = {"Authorization": f"Bearer {alice}"}
    with TestClient(app=create_app(settings, backend=backend)) as client:
        created = client.post(
            "/graphql",
            json={"query": CREATE, "variables": {"input": {"app": "stardist"}}},
            headers=auth,
        ).json()["data"]["createSetup"]["setup"]
        with client.websocket_connect(
            "/graphql", subprotocols=["graphql-transport-ws"], headers=auth
        ) as socket:
            subscribe(
                socket,
                "subscription($id: ID!) { setupEvents(setupId: $id) { kind podId } }",
                {"id": created["id"]},
            )
            client.post(
                "/graphql",
                json={
                    "query": "mutation($id: ID!) { startSetup(input: {id: $id}) { setup { id } } }",
                    "variables": {"id": created["id"]},
                },
                headers=auth,
            )
            kinds = [
                socket.receive_json()["payload"]["data"]["setupEvents"]["kind"] for _ in range(3)
            ]
        assert kinds == ["CREATED", "STARTED", "POD_RUNNING"]

        assert len(backend.running()) == 1
        pods = client.post("/graphql", json={"query": "{ pods { id } }"}, headers=auth).json()
        pod_id = pods["data"]["pods"][0]["id"]
        with client.websocket_connect(
            "/graphql", subprotocols=["graphql-transport-ws"], headers=auth
        ) as socket:
            subscribe(
                socket, "subscription($id: ID!) { podLogs(podId: $id, tail: 10) }", {"id": pod_id}
            )
            line = socket.receive_json()
            assert line["payload"]["data"]["podLogs"] == "hello"
            assert socket.receive_json()["type"] == "complete"  # the fake's output ended

        # Someone else's pod: refused, and nothing streamed.
        with client.websocket_connect("/graphql", subprotocols=["graphql-transport-ws"]) as socket:
            subscribe(socket, "subscription($id: ID!) { podLogs(podId: $id) }", {"id": pod_id})
            refused = socket.receive_json()
        assert refused["payload"]["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


@pytest.mark.parametrize("change", ["revoked", "made admin"])
async def test_a_revoked_token_or_changed_rights_end_streams(
    catalogue: Catalogue, change: str
) -> None:
    alice, _bob = await _users(catalogue)
    auth = {"Authorization": f"Bearer {alice}"}
    with TestClient(app=create_app(catalogue.settings, backend=FakeBackend("port"))) as client:
        created = client.post(
            "/graphql",
            json={"query": CREATE, "variables": {"input": {"app": "stardist"}}},
            headers=auth,
        ).json()["data"]["createSetup"]["setup"]
        with client.websocket_connect(
            "/graphql", subprotocols=["graphql-transport-ws"], headers=auth
        ) as socket:
            subscribe(
                socket,
                "subscription($id: ID!) { setupEvents(setupId: $id) { kind } }",
                {"id": created["id"]},
            )
            assert socket.receive_json()["payload"]["data"]["setupEvents"]["kind"] == "CREATED"
            async with catalogue.sessions() as session, session.begin():
                token = await session.scalar(
                    select(Token).where(Token.secret_hash == hash_secret(alice))
                )
                assert token is not None
                if change == "revoked":
                    token.revoked_at = utcnow()
                else:  # what it may see changed: it subscribes again to see it
                    await session.refresh(token, ["user"])
                    token.user.is_admin = True
            ended = await asyncio.to_thread(socket.receive_json, timeout=30)
    assert ended["payload"]["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


async def test_open_subscriptions_are_capped(catalogue: Catalogue) -> None:
    alice, _bob = await _users(catalogue)
    auth = {"Authorization": f"Bearer {alice}"}
    settings = catalogue.settings.model_copy(update={"max_subscriptions": 1})
    events = "subscription($id: ID!) { setupEvents(setupId: $id) { kind } }"
    with TestClient(app=create_app(settings, backend=FakeBackend("port"))) as client:
        created = client.post(
            "/graphql",
            json={"query": CREATE, "variables": {"input": {"app": "stardist"}}},
            headers=auth,
        ).json()["data"]["createSetup"]["setup"]
        connect: dict[str, Any] = {"subprotocols": ["graphql-transport-ws"], "headers": auth}
        with client.websocket_connect("/graphql", **connect) as first:
            subscribe(first, events, {"id": created["id"]})
            assert first.receive_json()["payload"]["data"]["setupEvents"]["kind"] == "CREATED"
            with client.websocket_connect("/graphql", **connect) as second:
                subscribe(second, events, {"id": created["id"]})
                refused = second.receive_json()
        assert refused["payload"]["errors"][0]["extensions"]["code"] == "BUSY"
        with client.websocket_connect("/graphql", **connect) as third:  # the place is free
            subscribe(third, events, {"id": created["id"]})
            assert third.receive_json()["payload"]["data"]["setupEvents"]["kind"] == "CREATED"


async def test_one_user_cannot_take_every_subscription(catalogue: Catalogue) -> None:
    """Repro (issue 16, 11): 130 of alice's subscriptions plus 130 anonymous ones left
    bob BUSY. Now one user holds PORT_MAX_SUBSCRIPTIONS_PER_USER at most."""
    alice, bob = await _users(catalogue)
    update = {"max_subscriptions": 8, "max_subscriptions_per_user": 2}
    settings = catalogue.settings.model_copy(update=update)
    events = "subscription($id: ID!) { setupEvents(setupId: $id) { kind } }"
    with (
        TestClient(app=create_app(settings, backend=FakeBackend("port"))) as client,
        ExitStack() as held,
    ):

        def setup_of(token: str) -> str:
            created = client.post(
                "/graphql",
                json={"query": CREATE, "variables": {"input": {"app": "stardist"}}},
                headers={"Authorization": f"Bearer {token}"},
            ).json()["data"]["createSetup"]["setup"]
            return str(created["id"])

        def watch(token: str, setup_id: str) -> dict[str, Any]:
            connect: dict[str, Any] = {
                "subprotocols": ["graphql-transport-ws"],
                "headers": {"Authorization": f"Bearer {token}"},
            }
            socket = held.enter_context(client.websocket_connect("/graphql", **connect))
            subscribe(socket, events, {"id": setup_id})
            answer: dict[str, Any] = socket.receive_json()
            return answer

        mine, his = setup_of(alice), setup_of(bob)
        for _ in range(2):
            assert watch(alice, mine)["payload"]["data"]["setupEvents"]["kind"] == "CREATED"
        refused = watch(alice, mine)["payload"]["errors"][0]
        assert refused["extensions"]["code"] == "BUSY"
        assert "as one user may (2)" in refused["message"]
        assert watch(bob, his)["payload"]["data"]["setupEvents"]["kind"] == "CREATED"


async def test_an_unreachable_engine_is_a_coded_error(tenants: Tenants) -> None:
    tenants.backend.down = True
    body = await tenants.create(tenants.alice)
    assert code(body) == "BACKEND_UNAVAILABLE"
    assert body["errors"][0]["message"] == "fake engine is down"
    assert (await tenants.gql("{ setups { id } }", tenants.alice))["data"]["setups"] == []


async def test_a_deleted_setups_event_stream_ends_and_never_shows_the_next_setup(
    catalogue: Catalogue,
) -> None:
    """Repro: alice's open setupEvents stream went on with the events of bob's new Setup,
    which had taken her deleted Setup's id. Now the stream ends with the deletion."""
    alice, bob = await _users(catalogue)
    with TestClient(app=create_app(catalogue.settings, backend=FakeBackend("port"))) as client:

        def gql(token: str, query: str, **variables: Any) -> dict[str, Any]:
            answer = client.post(
                "/graphql",
                json={"query": query, "variables": variables},
                headers={"Authorization": f"Bearer {token}"},
            )
            return dict(answer.json()["data"])

        created = gql(alice, CREATE, input={"app": "stardist"})["createSetup"]["setup"]
        with client.websocket_connect(
            "/graphql",
            subprotocols=["graphql-transport-ws"],
            headers={"Authorization": f"Bearer {alice}"},
        ) as socket:
            subscribe(
                socket,
                "subscription($id: ID!) { setupEvents(setupId: $id) { kind message } }",
                {"id": created["id"]},
            )
            assert socket.receive_json()["payload"]["data"]["setupEvents"]["kind"] == "CREATED"
            gql(
                alice,
                "mutation($id: ID!) { deleteSetup(input: {id: $id}) { deletedId } }",
                id=created["id"],
            )
            theirs = gql(bob, CREATE, input={"app": "stardist"})["createSetup"]["setup"]
            assert theirs["id"] != created["id"]
            assert socket.receive_json()["type"] == "complete"


async def test_setups_with_events_and_pods_cost_the_same_statements_for_few_or_many(
    tenants: Tenants,
) -> None:
    """Events and a Pod's Setup come through DataLoaders: no query per object."""
    query = "{ setups { events(limit: 5) { kind } pods { setup { id owner { name } } } } }"

    async def statements() -> float:
        before = REGISTRY.get_sample_value("port_sql_statements_total") or 0.0
        body = await tenants.gql(query, tenants.alice)
        assert "errors" not in body
        return (REGISTRY.get_sample_value("port_sql_statements_total") or 0.0) - before

    for _ in range(2):
        await tenants.create(tenants.alice, start=True)
    few = await statements()
    for _ in range(6):
        await tenants.create(tenants.alice, start=True)
    many = await statements()
    setups = (await tenants.gql(query, tenants.alice))["data"]["setups"]
    assert len(setups) == 8
    assert all(len(s["events"]) == 2 and s["pods"][0]["setup"]["owner"] for s in setups)
    assert many == few


async def test_deleting_a_repository_never_deletes_users_setups_silently(
    tenants: Tenants,
) -> None:
    """Repro (issue 16, 6): deleteRepo destroyed every user's Setups of its apps (env,
    history, running container) with no word. Now it is refused and names them."""
    setup = (await tenants.create(tenants.alice))["data"]["createSetup"]["setup"]
    async with tenants.api.catalogue.sessions() as session:
        repo_id = await session.scalar(select(App.repo_id).where(App.identifier == "stardist"))
    delete = "mutation($id: ID!) { deleteRepo(input: {id: $id}) { deletedId } }"
    gid = to_base64("Repo", repo_id)
    refused = await tenants.gql(delete, tenants.api.admin_token, id=gid)
    [error] = refused["errors"]
    assert error["extensions"]["code"] == "CONFLICT"
    assert (
        f"1 Setup of this repository's apps exist: alice's stardist ({setup['id']})"
        in (error["message"])
    )
    still = await tenants.gql(
        "query($id: ID!) { setup(id: $id) { id } }", tenants.alice, id=setup["id"]
    )
    assert still["data"]["setup"] == {"id": setup["id"]}

    await tenants.gql(
        "mutation($id: ID!) { deleteSetup(input: {id: $id}) { deletedId } }",
        tenants.alice,
        id=setup["id"],
    )
    deleted = await tenants.gql(delete, tenants.api.admin_token, id=gid)
    assert deleted["data"]["deleteRepo"] == {"deletedId": gid}


async def test_an_admins_force_deletes_a_repository_and_keeps_its_setups_running(
    tenants: Tenants,
) -> None:
    """Repro (issue 16, 6): with force, an admin deletes a repository whose apps users
    run. The repository and its apps leave every listing and its releases are
    withdrawn; alice's Setup keeps running its release, says why it gets no updates,
    and a notice is queued for her. Her last Setup's deletion takes the rest."""
    setup = (await tenants.create(tenants.alice, start=True))["data"]["createSetup"]["setup"]
    await tenants.reconciler.reconcile()
    async with tenants.api.catalogue.sessions() as session, session.begin():
        repo_id = await session.scalar(select(App.repo_id).where(App.identifier == "stardist"))
        alice = await session.scalar(select(User).where(User.name == "alice"))
        assert alice is not None
        alice.notify_url = "https://alice.example.org/hook"
    gid = to_base64("Repo", repo_id)
    force = "mutation($id: ID!) { deleteRepo(input: {id: $id, force: true}) { deletedId } }"

    refused = await tenants.gql(force, tenants.alice, id=gid)
    assert code(refused) == "FORBIDDEN"  # force is an admin's
    deleted = await tenants.gql(force, tenants.api.admin_token, id=gid)
    assert deleted["data"]["deleteRepo"] == {"deletedId": gid}

    listing = await tenants.gql(
        "{ repos { totalCount } apps { edges { node { identifier } } } "
        'app(identifier: "stardist") { id } }',
        tenants.alice,
    )
    assert listing["data"]["repos"]["totalCount"] == 1  # gpuonly's only
    assert [e["node"]["identifier"] for e in listing["data"]["apps"]["edges"]] == ["gpuonly"]
    assert listing["data"]["app"] is None
    shown = await tenants.gql(
        "query($id: ID!) { setup(id: $id) { release { version withdrawn } "
        "pods { status } events(limit: 1) { kind message } } }",
        tenants.alice,
        id=setup["id"],
    )
    assert "errors" not in shown, shown
    kept = shown["data"]["setup"]
    assert kept["release"] == {"version": "1.1.0", "withdrawn": True}
    assert [p["status"] for p in kept["pods"]] == ["RUNNING"]
    [event] = kept["events"]
    assert event["kind"] == "REPO_DELETED"
    assert "keeps running its release, and gets no more updates" in event["message"]
    async with tenants.api.catalogue.sessions() as session:
        notices = [j.payload for j in await queue.jobs(session, kind="notify")]
    assert [n["notice"]["kind"] for n in notices] == ["repo.deleted"]
    again = await tenants.gql(
        "mutation($url: String!) { createRepo(input: {url: $url}) { repo { id } } }",
        tenants.api.admin_token,
        url="https://example.org/stardist.git",
    )
    assert code(again) == "CONFLICT"

    await tenants.gql(
        "mutation($id: ID!) { deleteSetup(input: {id: $id}) { deletedId } }",
        tenants.alice,
        id=setup["id"],
    )
    async with tenants.api.catalogue.sessions() as session:
        assert await session.get(Repo, repo_id) is None


async def test_logs_are_bounded_per_request_however_many_aliases_ask(
    tenants: Tenants,
) -> None:
    """Repro (issue 16, 4): `logs(tail: 10000)` times 15 aliases returned 480 MB. One
    request now returns at most PORT_LOGS_MAX_KB of output in all, whole lines only."""
    setup = (await tenants.create(tenants.alice, start=True))["data"]["createSetup"]["setup"]
    await tenants.reconciler.reconcile()
    [container] = tenants.backend.containers.values()
    container.logs = [f"line {n:05d} " + "x" * 90 for n in range(20_000)]  # ~2 MB
    fields = " ".join(f"l{n}: logs(tail: 10000)" for n in range(15))
    query = f"query($id: ID!) {{ setup(id: $id) {{ pods {{ {fields} }} }} }}"
    body = await tenants.gql(query, tenants.alice, id=setup["id"])
    assert "errors" not in body
    [pod] = body["data"]["setup"]["pods"]
    total = sum(len(text.encode()) for text in pod.values())
    limit = tenants.api.catalogue.settings.logs_max_kb << 10
    assert 0 < total <= limit
    assert pod["l0"].endswith("line 19999 " + "x" * 90)  # the newest output comes first
    assert pod["l0"].startswith("line ")  # whole lines
    assert pod["l14"] == ""  # the budget is spent


@asynccontextmanager
async def served(
    catalogue: Catalogue, **settings: Any
) -> AsyncIterator[tuple[Api, FakeBackend, Settings]]:
    """A server on the catalogue's settings with ``settings`` over them, on a fake engine
    that has img/cpu:1; its first admin made."""
    changed = catalogue.settings.model_copy(update=settings)
    backend = FakeBackend("port")
    backend.images.add("img/cpu:1")
    announced: list[FirstAdmin] = []
    server = create_app(changed, announce=announced.append, backend=backend)
    async with AsyncTestClient(app=server) as client:
        yield Api(client, announced[0].token, catalogue, announced[0].password), backend, changed


GRANT_FIELDS = "id grants consentNeeded pods { grants }"
CREATE_GRANTED = (
    "mutation($input: CreateSetupInput!) { createSetup(input: $input) { "
    f"setup {{ {GRANT_FIELDS} }} noFittingFlavour {{ code message asks }} }} }}"
)
FOLDER = {"kind": "folder", "name": "images", "target": "/images", "readOnly": True}


async def test_capabilities_are_granted_by_the_owner_alone(catalogue: Catalogue) -> None:
    """createSetup without the grant says what to grant (nothing is created); with it the
    Pod gets it; grantSetup on someone else's Setup is NOT_FOUND."""
    async with served(catalogue, grantable_folders=["/data"]) as (api, _backend, _settings):
        async with catalogue.sessions() as session, session.begin():
            app = await add_app(session, identifier="scope", versions=())
            add_release(session, app.id, "1.0.0", (("cpu", "img/cpu:1", []),), None, [FOLDER])
            tokens = []
            for name in ("alice", "bob"):
                user = await create_user(session, name)
                tokens.append((await create_token(session, user, "tests"))[1])
        alice, bob = tokens

        asked = await api.gql(CREATE_GRANTED, {"input": {"app": "scope"}}, token=alice)
        refused = asked["data"]["createSetup"]
        assert refused["setup"] is None
        assert refused["noFittingFlavour"]["code"] == "CONSENT_NEEDED"
        assert refused["noFittingFlavour"]["asks"] == {"cpu": [FOLDER]}

        outside = await api.gql(
            CREATE_GRANTED,
            {"input": {"app": "scope", "grants": [{"name": "images", "host": "/etc"}]}},
            token=alice,
        )
        [error] = outside["errors"]
        assert error["extensions"]["code"] == "INVALID_INPUT"
        assert error["extensions"]["field"] == "grants"
        assert "/etc is not under a folder" in error["message"]

        granted = await api.gql(
            CREATE_GRANTED,
            {
                "input": {
                    "app": "scope",
                    "start": True,
                    "grants": [{"name": "images", "host": "/data/alice"}],
                }
            },
            token=alice,
        )
        setup = granted["data"]["createSetup"]["setup"]
        assert setup["grants"] == [
            {
                "name": "images",
                "host": "/data/alice",
                "agreed": {"kind": "folder", "target": "/images", "readOnly": True},
            }
        ]
        assert setup["pods"][0]["grants"] == [
            {
                "name": "images",
                "kind": "folder",
                "source": "/data/alice",
                "target": "/images",
                "readOnly": True,
            }
        ]

        grant = (
            "mutation($id: ID!, $grants: [GrantInput!]!) { grantSetup(input: "
            f"{{id: $id, grants: $grants}}) {{ setup {{ {GRANT_FIELDS} }} }} }}"
        )
        stolen = await api.gql(
            grant, {"id": setup["id"], "grants": [{"name": "images", "host": "/data"}]}, token=bob
        )
        assert code(stolen) == "NOT_FOUND"
        withdrawn = await api.gql(grant, {"id": setup["id"], "grants": []}, token=alice)
        assert withdrawn["data"]["grantSetup"]["setup"]["grants"] == []
        shown = await api.gql(
            "query($id: ID!) { setup(id: $id) { events { kind message } } }",
            {"id": setup["id"]},
            token=alice,
        )
        assert shown["data"]["setup"]["events"][-1] == {
            "kind": "GRANTS_CHANGED",
            "message": "granted: nothing",
        }


SECRET_VALUE = "s3cr3t-redeem-7f1c"
TOKEN_VALUE = "fakts-token-99ab"


async def test_secrets_reach_the_pod_and_nothing_else(
    catalogue: Catalogue, caplog: pytest.LogCaptureFixture
) -> None:
    """Secret variables are write-only: in the Pod's environment, never in an answer, an
    event or a log line. The owner's redeem token goes to their Arkitekt apps alone."""
    caplog.set_level(logging.DEBUG)
    keyed = {"secret_key": SecretStr(new_key()), "arkitekt_url": "http://arkitekt.lab:8000"}
    async with served(catalogue, **keyed) as (api, backend, settings):
        async with catalogue.sessions() as session, session.begin():
            await add_app(session, identifier="plain", flavours=(("cpu", "img/cpu:1", []),))
            ark = await add_app(session, identifier="ark", versions=())
            add_release(session, ark.id, "1.0.0", (("cpu", "img/cpu:1", []),)).source = "arkitekt"
            user = await create_user(session, "alice")
            alice = (await create_token(session, user, "tests"))[1]
        reconciler = Reconciler(catalogue.sessions, settings, backend)
        answers = []

        async def ask(query: str, **variables: Any) -> dict[str, Any]:
            answer = await api.gql(query, variables, token=alice)
            answers.append(json.dumps(answer))
            return answer

        stored = await ask(
            "mutation($t: String) { setArkitektRedeemToken(input: {token: $t}) { stored } }",
            t=TOKEN_VALUE,
        )
        assert stored["data"]["setArkitektRedeemToken"]["stored"] is True
        assert (await ask("{ arkitektRedeemTokenStored }"))["data"] == {
            "arkitektRedeemTokenStored": True
        }
        fields = "id env secretNames events { kind message } pods { id }"
        created = {}
        for app in ("plain", "ark"):
            answer = await ask(
                "mutation($input: CreateSetupInput!) { createSetup(input: $input) { "
                f"setup {{ {fields} }} }} }}",
                input={"app": app, "start": True, "secrets": {"API_KEY": SECRET_VALUE}},
            )
            created[app] = answer["data"]["createSetup"]["setup"]
        assert created["plain"]["secretNames"] == ["API_KEY"]
        await reconciler.reconcile()
        envs = {c.spec.labels["port.app"]: c.spec.env for c in backend.containers.values()}
        assert envs["plain"]["API_KEY"] == SECRET_VALUE
        assert "FAKTS_REDEEM_TOKEN" not in envs["plain"]  # not an Arkitekt app
        assert "FAKTS_URL" not in envs["plain"]
        assert envs["ark"]["API_KEY"] == SECRET_VALUE
        assert envs["ark"]["FAKTS_REDEEM_TOKEN"] == TOKEN_VALUE
        assert envs["ark"]["FAKTS_URL"] == "http://arkitekt.lab:8000"

        removed = await ask(
            "mutation($id: ID!) { setSetupSecrets(input: {id: $id, secrets: {API_KEY: null}}) "
            "{ setup { secretNames events { kind message } } } }",
            id=created["plain"]["id"],
        )
        setup = removed["data"]["setSetupSecrets"]["setup"]
        assert setup["secretNames"] == []
        assert setup["events"][-1] == {"kind": "SECRETS_CHANGED", "message": "removed API_KEY"}
        await ask(f"{{ setups {{ {fields} pods {{ selection grants }} }} }}")

    for text in [*answers, *(r.getMessage() for r in caplog.records)]:
        assert SECRET_VALUE not in text
        assert TOKEN_VALUE not in text
    async with catalogue.sessions() as session:
        events = list(await session.scalars(select(SetupEvent.message)))
        sealed = list(await session.scalars(select(Secret.sealed)))
    assert not any(SECRET_VALUE in m or TOKEN_VALUE in m for m in events)
    assert len(sealed) == 2  # ark's API_KEY and the token, sealed
    assert not any(SECRET_VALUE in s or TOKEN_VALUE in s for s in sealed)


async def test_no_key_no_secrets(tenants: Tenants) -> None:
    refused = await tenants.create(tenants.alice, secrets={"API_KEY": "x"})
    [error] = refused["errors"]
    assert error["extensions"]["field"] == "secrets"
    assert "no PORT_SECRET_KEY" in error["message"]
    setups = await tenants.gql("{ setups { id } }", tenants.alice)
    assert setups["data"]["setups"] == []  # nothing was created


async def test_a_narrowed_policy_keeps_a_pod_from_what_it_no_longer_allows(
    catalogue: Catalogue,
) -> None:
    """An admin lowers the shared memory owners may grant: the Pod granted more is not
    started again with it (its restart fails and says why)."""
    shm = {"kind": "shared_memory", "name": "shm", "min": 512}
    backend = FakeBackend("port")
    backend.images.add("img/cpu:1")
    async with catalogue.sessions() as session, session.begin():
        app = await add_app(session, identifier="scope", versions=())
        add_release(session, app.id, "1.0.0", (("cpu", "img/cpu:1", []),), None, [shm])
        user = await create_user(session, "alice")
    alice = Principal(user_id=user.id, name="alice", is_admin=False, via="token")
    reconciler = Reconciler(catalogue.sessions, catalogue.settings, backend)
    caps = await reconciler.capabilities()
    async with catalogue.sessions() as session, session.begin():
        setup = await service.create_setup(
            session,
            alice,
            service.SetupRequest(app="scope", grants=(Consent("shm"),)),
            caps,
            catalogue.settings,
        )
        pod = await service.start_setup(session, setup, caps, catalogue.settings)
        pod_id = pod.id
    await reconciler.reconcile()
    [container] = backend.containers.values()
    assert [g.shm_mb for g in container.spec.grants] == [512]

    reconciler.settings = catalogue.settings.model_copy(
        update={"grantable_shared_memory_mb": 256, "instance": reconciler.settings.instance}
    )
    async with catalogue.sessions() as session, session.begin():
        service.restart_pod(session, await service.get_pod(session, alice, pod_id))
    await reconciler.reconcile()
    async with catalogue.sessions() as session:
        failed = await session.get(Pod, pod_id)
    assert failed is not None
    assert failed.status == "FAILED"
    assert "its grant 'shm' is no longer allowed" in (failed.message or "")
    assert "more than the 256 MB" in (failed.message or "")
    assert backend.running() == []
