"""Catalogue answers are shared by every signed-in caller (issue 12), and nothing that
shows a caller's own objects ever is (on both databases)."""

from __future__ import annotations

from typing import Any

from litestar.testing import AsyncTestClient
from sqlalchemy import select
from strawberry import relay

from port.accounts.known import RECHECK_SECONDS, KnownSessions
from port.accounts.models import Token, User
from port.accounts.service import create_token, create_user, revoke_token
from port.catalogue.models import App, Release
from port.deploy.models import Setup
from port.metrics import REGISTRY
from port.principal import CLI
from port.work.server import create_app
from tests.deployfakes import FakeBackend, add_app
from tests.harness import Api, Catalogue

BROWSE = """{ apps(first: 10) { totalCount edges { node { identifier
  releases(first: 5) { edges { node { version flavours { name image } } } } } } } }"""


def statements() -> float:
    return REGISTRY.get_sample_value("port_sql_statements_total") or 0.0


async def users(catalogue: Catalogue) -> tuple[str, str, int]:
    """alice's and bob's tokens, and the id of a Setup of alice's."""
    async with catalogue.sessions() as session, session.begin():
        await add_app(session)
        secrets = []
        owners = []
        for name in ("alice", "bob"):
            user = await create_user(session, name)
            owners.append(user.id)
            secrets.append((await create_token(session, user, "tests"))[1])
        app_id = await session.scalar(select(App.id))
        release_id = await session.scalar(select(Release.id))
        setup = Setup(owner_id=owners[0], app_id=app_id, release_id=release_id, env={"K": "v"})
        session.add(setup)
        await session.flush()
        return secrets[0], secrets[1], setup.id


async def test_signed_in_callers_share_one_answer(api: Api) -> None:
    alice, bob, _ = await users(api.catalogue)
    before = statements()
    first = await api.gql(BROWSE, token=alice)
    executed = statements() - before
    before = statements()
    second = await api.gql(BROWSE, token=bob)
    shared = statements() - before
    assert second == first
    assert "errors" not in first
    assert shared < executed
    assert shared <= 2  # the token's lookup (and its last use), no catalogue query


async def test_nothing_of_a_callers_own_is_shared(api: Api) -> None:
    alice, bob, setup_id = await users(api.catalogue)
    gid = relay.to_base64("Setup", setup_id)
    shapes = [
        ("{ me { name } }", {}),
        ("query($id: ID!) { node(id: $id) { id ... on Setup { env } } }", {"id": gid}),
        ("query($id: ID!) { apps { totalCount } mine: node(id: $id) { id } }", {"id": gid}),
        ("{ a: apps { totalCount } b: me { name } }", {}),
        ("{ setups { id } }", {}),
        ("query Q { ...F } fragment F on Query { me { name } }", {}),
    ]
    for query, variables in shapes:
        alices = await api.gql(query, variables, token=alice)
        bobs = await api.gql(query, variables, token=bob)
        assert alices != bobs or "errors" in bobs, query
        assert "'v'" not in str(bobs), query  # alice's env
        assert "alice" not in str(bobs), query


async def test_a_shared_answer_still_needs_a_good_credential(api: Api) -> None:
    alice, bob, _ = await users(api.catalogue)
    await api.gql(BROWSE, token=alice)
    for bad in ("port_" + "x" * 43, "not-a-token"):
        refused = await api.gql(BROWSE, token=bad)
        assert refused["_status"] == 401, bad
    async with api.catalogue.sessions() as session, session.begin():
        bobs = await session.scalar(select(Token.id).join(User).where(User.name == "bob"))
        assert bobs is not None
        await revoke_token(session, bobs, by=CLI)
    assert (await api.gql(BROWSE, token=bob))["_status"] == 401


async def test_a_caller_proved_a_moment_ago_costs_no_query_until_revoked(api: Api) -> None:
    alice, bob, _ = await users(api.catalogue)
    for _ in range(2):  # executed and kept; then alice proved a moment ago
        await api.gql(BROWSE, token=alice)
    before = statements()
    assert "errors" not in await api.gql(BROWSE, token=alice)
    assert statements() == before  # not even the token's lookup

    # Revoked here (revokeToken): refused at once.
    [mine] = (await api.gql("{ me { user { tokens { id } } } }", token=alice))["data"]["me"][
        "user"
    ]["tokens"]
    revoke = "mutation($id: ID!) { revokeToken(input: {id: $id}) { token { id } } }"
    assert "errors" not in await api.gql(revoke, {"id": mine["id"]}, token=alice)
    assert (await api.gql(BROWSE, token=alice))["_status"] == 401

    # Revoked elsewhere (the CLI, another process): refused within RECHECK_SECONDS.
    state = api.client.app.state.api
    now = [0.0]
    state.callers = KnownSessions(clock=lambda: now[0])
    assert "errors" not in await api.gql(BROWSE, token=bob)
    async with api.catalogue.sessions() as session, session.begin():
        bobs = await session.scalar(select(Token.id).join(User).where(User.name == "bob"))
        assert bobs is not None
        await revoke_token(session, bobs, by=CLI)
    now[0] += RECHECK_SECONDS
    assert (await api.gql(BROWSE, token=bob))["_status"] == 401


async def test_a_private_store_never_shows_a_shared_answer_to_strangers(
    catalogue: Catalogue,
) -> None:
    settings = catalogue.settings.model_copy(update={"public_catalogue": False})
    alice, _, _ = await users(catalogue)
    async with AsyncTestClient(app=create_app(settings, backend=FakeBackend("port"))) as client:

        async def ask(token: str | None) -> Any:
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            return (await client.post("/graphql", json={"query": BROWSE}, headers=headers)).json()

        assert "errors" not in await ask(alice)
        stranger = await ask(None)
        assert stranger["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
        assert stranger.get("data") in (None, {"apps": None})
