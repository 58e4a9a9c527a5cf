"""Who may do what over GraphQL: every mutation against anonymous, user, admin, revoked
and wrong credentials, with the error code a client can act on."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from port.accounts.service import create_token, create_user
from port.work.server import create_app
from tests.harness import Api
from tests.integration.gitfixtures import Remote, port_yaml
from tests.unit.test_accounts_jwt import ISSUER, public_pem, rsa_key, sign


async def user_token(api: Api, name: str = "alice", *, admin: bool = False) -> str:
    async with api.catalogue.sessions() as session, session.begin():
        user = await create_user(session, name, is_admin=admin)
        _token, secret = await create_token(session, user, "tests")
    return secret


def code(body: dict[str, Any]) -> str:
    [error] = body["errors"]
    result: str = error["extensions"]["code"]
    return result


async def create_repo(api: Api, url: str, token: str | None) -> dict[str, Any]:
    return await api.gql(
        "mutation($url: String!) { createRepo(input: {url: $url}) { repo { id url } } }",
        {"url": url},
        token=token,
    )


async def test_repo_mutations_need_an_admin(api: Api, local_remote: Remote) -> None:
    local_remote.work.commit("empty")
    local_remote.work.push()
    alice = await user_token(api)

    anonymous = await create_repo(api, local_remote.url, None)
    assert code(anonymous) == "UNAUTHENTICATED"
    assert code(await create_repo(api, local_remote.url, alice)) == "FORBIDDEN"

    created = await create_repo(api, local_remote.url, api.admin_token)
    repo_id = created["data"]["createRepo"]["repo"]["id"]
    assert code(await create_repo(api, local_remote.url, api.admin_token)) == "CONFLICT"

    for mutation in (
        "mutation($id: ID!) { scanRepo(input: {id: $id}) { run { status } } }",
        'mutation($id: ID!) { updateRepo(input: {id: $id, tagPrefix: "x-"}) { repo { '
        "tagPrefix } } }",
        "mutation($id: ID!) { deleteRepo(input: {id: $id}) { deletedId } }",
    ):
        assert code(await api.gql(mutation, {"id": repo_id})) == "UNAUTHENTICATED", mutation
        assert code(await api.gql(mutation, {"id": repo_id}, token=alice)) == "FORBIDDEN"

    scanned = await api.gql(
        "mutation($id: ID!) { scanRepo(input: {id: $id}) { run { status repo { url } } } }",
        {"id": repo_id},
        token=api.admin_token,
    )
    assert scanned["data"]["scanRepo"]["run"] == {
        "status": "SUCCEEDED",
        "repo": {"url": local_remote.url},
    }
    updated = await api.gql(
        'mutation($id: ID!) { updateRepo(input: {id: $id, tagPrefix: "x-"}) { repo { '
        "tagPrefix } } }",
        {"id": repo_id},
        token=api.admin_token,
    )
    assert updated["data"]["updateRepo"]["repo"] == {"tagPrefix": "x-"}
    deleted = await api.gql(
        "mutation($id: ID!) { deleteRepo(input: {id: $id}) { deletedId } }",
        {"id": repo_id},
        token=api.admin_token,
    )
    assert deleted["data"]["deleteRepo"] == {"deletedId": repo_id}
    gone = await api.gql(
        "mutation($id: ID!) { scanRepo(input: {id: $id}) { run { status } } }",
        {"id": repo_id},
        token=api.admin_token,
    )
    assert code(gone) == "NOT_FOUND"


async def test_unreachable_remote_is_repo_unreachable(api: Api) -> None:
    created = await create_repo(api, "https://127.0.0.1:1/nowhere.git", api.admin_token)
    repo_id = created["data"]["createRepo"]["repo"]["id"]
    never = "{ repos { edges { node { lastRun { status } } } } }"
    assert (await api.gql(never))["data"]["repos"]["edges"] == [{"node": {"lastRun": None}}]
    scan = "mutation($id: ID!) { scanRepo(input: {id: $id}) { run { status } } }"
    body = await api.gql(scan, {"id": repo_id}, token=api.admin_token)
    assert code(body) == "REPO_UNREACHABLE"
    # Anonymous readers (served from the cache) see the failed run at once too.
    assert (await api.gql(never))["data"]["repos"]["edges"] == [
        {"node": {"lastRun": {"status": "FAILED"}}}
    ]
    last = await api.gql(
        "query($id: ID!) { node(id: $id) { ... on Repo { lastRun { status message } } } }",
        {"id": repo_id},
    )
    run = last["data"]["node"]["lastRun"]
    assert run["status"] == "FAILED"
    assert "127.0.0.1:1" in run["message"]


async def test_account_mutations_need_a_token(api: Api) -> None:
    for mutation in (
        'mutation { createToken(input: {name: "x"}) { secret } }',
        'mutation { revokeToken(input: {id: "VG9rZW46MQ=="}) { token { name } } }',
        'mutation { createUser(input: {name: "x"}) { user { name } } }',
    ):
        assert code(await api.gql(mutation)) == "UNAUTHENTICATED", mutation


async def test_hostile_urls_are_invalid_input(api: Api) -> None:
    for url in ("ext::sh -c touch% /tmp/pwned", "--upload-pack=touch /tmp/x", "http://x/y.git"):
        body = await create_repo(api, url, api.admin_token)
        assert code(body) == "INVALID_INPUT", url
        assert body["data"] is None


@pytest.mark.parametrize(
    ("header", "message"),
    [
        ("Bearer port_wrong", "unknown or revoked"),
        ("Basic YWxpY2U6cHc=", "Bearer"),
        ("Bearer not-a-port-token", "not a Port token"),
    ],
)
async def test_wrong_credentials_are_401(api: Api, header: str, message: str) -> None:
    response = await api.client.post(
        "/graphql", json={"query": "{ apps { totalCount } }"}, headers={"Authorization": header}
    )
    assert response.status_code == 401
    [error] = response.json()["errors"]
    assert error["extensions"]["code"] == "UNAUTHENTICATED"
    assert message in error["message"]
    assert "port_wrong" not in error["message"]


async def test_tokens_me_and_users(api: Api) -> None:
    alice = await user_token(api)
    me = await api.gql("{ me { name isAdmin via user { name } } }", token=alice)
    assert me["data"]["me"] == {
        "name": "alice",
        "isAdmin": False,
        "via": "token",
        "user": {"name": "alice"},
    }
    assert code(await api.gql("{ me { name } }")) == "UNAUTHENTICATED"

    created = await api.gql(
        'mutation { createToken(input: {name: "laptop"}) { secret token { id name prefix } } }',
        token=alice,
    )
    fresh = created["data"]["createToken"]
    assert fresh["secret"].startswith(fresh["token"]["prefix"])
    assert (await api.gql("{ me { name } }", token=fresh["secret"]))["data"]["me"][
        "name"
    ] == "alice"

    listed = await api.gql("{ me { user { tokens { name revokedAt } } } }", token=alice)
    assert [t["name"] for t in listed["data"]["me"]["user"]["tokens"]] == ["tests", "laptop"]
    assert "secret" not in str(listed)

    bob = await user_token(api, "bob")
    revoke = "mutation($id: ID!) { revokeToken(input: {id: $id}) { token { revokedAt } } }"
    # Someone else's token does not exist, as far as bob can tell.
    assert code(await api.gql(revoke, {"id": fresh["token"]["id"]}, token=bob)) == "NOT_FOUND"
    revoked = await api.gql(revoke, {"id": fresh["token"]["id"]}, token=alice)
    assert revoked["data"]["revokeToken"]["token"]["revokedAt"] is not None
    after = await api.gql("{ me { name } }", token=fresh["secret"])
    assert after["_status"] == 401

    assert code(await api.gql("{ users { name } }", token=alice)) == "FORBIDDEN"
    assert (
        code(
            await api.gql(
                'mutation { createUser(input: {name: "eve"}) { user { name } } }', token=alice
            )
        )
        == "FORBIDDEN"
    )
    made = await api.gql(
        'mutation { createUser(input: {name: "carol", isAdmin: true}) { user { name isAdmin } } }',
        token=api.admin_token,
    )
    assert made["data"]["createUser"]["user"] == {"name": "carol", "isAdmin": True}
    users = await api.gql("{ users { name } }", token=api.admin_token)
    assert [u["name"] for u in users["data"]["users"]] == ["admin", "alice", "bob", "carol"]
    again = await api.gql(
        'mutation { createUser(input: {name: "carol"}) { user { name } } }', token=api.admin_token
    )
    assert code(again) == "CONFLICT"


async def test_private_catalogue_needs_a_token(api: Api) -> None:
    api.catalogue.settings.public_catalogue = False
    assert code(await api.gql("{ apps { totalCount } }")) == "UNAUTHENTICATED"
    alice = await user_token(api)
    assert (await api.gql("{ apps { totalCount } }", token=alice))["data"] == {
        "apps": {"totalCount": 0}
    }


MUTATIONS = {
    "createRepo": 'mutation { createRepo(input: {url: "https://git.example/a.git"}) '
    "{ repo { id } } }",
    "scanRepo": 'mutation { scanRepo(input: {id: "UmVwbzox"}) { run { status } } }',
    "updateRepo": 'mutation { updateRepo(input: {id: "UmVwbzox"}) { repo { id } } }',
    "deleteRepo": 'mutation { deleteRepo(input: {id: "UmVwbzox"}) { deletedId } }',
    "createToken": 'mutation { createToken(input: {name: "x"}) { secret } }',
    "revokeToken": 'mutation { revokeToken(input: {id: "VG9rZW46MQ=="}) { token { name } } }',
    "createUser": 'mutation { createUser(input: {name: "zed"}) { user { name } } }',
}


@pytest.mark.parametrize("name", sorted(MUTATIONS))
async def test_every_mutation_refuses_wrong_and_revoked_tokens(api: Api, name: str) -> None:
    alice = await user_token(api)
    revoke = "mutation($id: ID!) { revokeToken(input: {id: $id}) { token { name } } }"
    me = await api.gql("{ me { user { tokens { id } } } }", token=alice)
    token_id = me["data"]["me"]["user"]["tokens"][0]["id"]
    await api.gql(revoke, {"id": token_id}, token=alice)
    for credential in ("port_" + "x" * 43, alice):  # unknown, then revoked
        body = await api.gql(MUTATIONS[name], token=credential)
        assert body["_status"] == 401, (name, body)
        assert code(body) == "UNAUTHENTICATED"


async def test_admins_revoke_anyones_tokens(api: Api) -> None:
    alice = await user_token(api)
    me = await api.gql("{ me { user { tokens { id } } } }", token=alice)
    token_id = me["data"]["me"]["user"]["tokens"][0]["id"]
    revoked = await api.gql(
        "mutation($id: ID!) { revokeToken(input: {id: $id}) { token { revokedAt } } }",
        {"id": token_id},
        token=api.admin_token,
    )
    assert revoked["data"]["revokeToken"]["token"]["revokedAt"] is not None
    assert (await api.gql("{ me { name } }", token=alice))["_status"] == 401


async def test_repo_management_can_be_opened_to_users_for_their_own_repos(api: Api) -> None:
    """Repro (issue 16, 6): with PORT_REPO_ADMIN_ONLY=false a user deleted the admin's
    repository. Users now manage only the repositories they registered."""
    api.catalogue.settings.repo_admin_only = False
    alice = await user_token(api)
    bob = await user_token(api, "bob")
    created = await create_repo(api, "https://git.example/acme/apps.git", alice)
    mine = created["data"]["createRepo"]["repo"]
    assert mine["url"] == "https://git.example/acme/apps.git"
    assert code(await create_repo(api, "https://git.example/other.git", None)) == "UNAUTHENTICATED"
    admins = await create_repo(api, "https://git.example/admins.git", api.admin_token)
    theirs = admins["data"]["createRepo"]["repo"]["id"]

    update = 'mutation($id: ID!) { updateRepo(input: {id: $id, tagPrefix: "x-"}) { repo { id } } }'
    delete = "mutation($id: ID!) { deleteRepo(input: {id: $id}) { deletedId } }"
    for mutation in (update, delete):
        assert code(await api.gql(mutation, {"id": theirs}, token=alice)) == "FORBIDDEN"
        assert code(await api.gql(mutation, {"id": mine["id"]}, token=bob)) == "FORBIDDEN"
    assert "errors" not in await api.gql(update, {"id": mine["id"]}, token=alice)
    assert "errors" not in await api.gql(delete, {"id": mine["id"]}, token=alice)
    assert "errors" not in await api.gql(delete, {"id": theirs}, token=api.admin_token)


async def test_jwt_callers_over_http(api: Api, tmp_path: Path) -> None:
    key = rsa_key()
    key_file = tmp_path / "idp.pem"
    key_file.write_bytes(public_pem(key))
    settings = api.catalogue.settings.model_copy(
        update={"jwt_issuer": ISSUER, "jwt_audience": "port", "jwt_public_key_file": key_file}
    )
    async with AsyncTestClient(app=create_app(settings)) as client:

        async def gql(query: str, jwt: str) -> dict[str, Any]:
            response = await client.post(
                "/graphql", json={"query": query}, headers={"Authorization": f"Bearer {jwt}"}
            )
            body: dict[str, Any] = response.json()
            body["_status"] = response.status_code
            return body

        user = sign(key, preferred_username="admin")  # named like the bootstrap admin
        me = await gql("{ me { name isAdmin via user { name } } }", user)
        assert me["data"]["me"] == {"name": "admin", "isAdmin": False, "via": "jwt", "user": None}
        minted = await gql('mutation { createToken(input: {name: "steal"}) { secret } }', user)
        assert code(minted) == "FORBIDDEN"
        assert code(await gql("{ users { name } }", user)) == "FORBIDDEN"

        admin = sign(key, sub="ops", roles=["port-admin"])
        assert "errors" not in await gql("{ users { name } }", admin)
        assert (await gql("{ me { name } }", sign(key, aud="other")))["_status"] == 401


async def test_update_rereads_and_delete_removes_everything(api: Api, local_remote: Remote) -> None:
    work = local_remote.work
    work.commit("sd", {"port.yaml": "x: 1\n", "apps/sd/port.yaml": port_yaml("sd", "1.0.0")})
    work.tag("v1.0.0")
    work.push()
    created = await create_repo(api, local_remote.url, api.admin_token)
    repo_id = created["data"]["createRepo"]["repo"]["id"]
    scan = "mutation($id: ID!) { scanRepo(input: {id: $id}) { run { added errors { file } } } }"
    first = await api.gql(scan, {"id": repo_id}, token=api.admin_token)
    assert first["data"]["scanRepo"]["run"]["added"] == []  # the root port.yaml is no manifest

    # A new manifest path: the next scan reads the old tag again, at the new path.
    moved = await api.gql(
        'mutation($id: ID!) { updateRepo(input: {id: $id, manifestPath: "apps/sd/port.yaml"})'
        " { repo { manifestPath } } }",
        {"id": repo_id},
        token=api.admin_token,
    )
    assert moved["data"]["updateRepo"]["repo"] == {"manifestPath": "apps/sd/port.yaml"}
    second = await api.gql(scan, {"id": repo_id}, token=api.admin_token)
    assert second["data"]["scanRepo"]["run"]["added"] == ["sd 1.0.0"]
    mirrors = api.catalogue.settings.mirrors_dir
    assert any(mirrors.iterdir())

    gone = await api.gql(
        "mutation($id: ID!) { deleteRepo(input: {id: $id}) { deletedId } }",
        {"id": repo_id},
        token=api.admin_token,
    )
    assert gone["data"]["deleteRepo"] == {"deletedId": repo_id}
    left = await api.gql(
        '{ repos { totalCount } apps { totalCount } app(identifier: "sd") { id } }'
    )
    assert left["data"] == {"repos": {"totalCount": 0}, "apps": {"totalCount": 0}, "app": None}
    assert not any(mirrors.iterdir())  # the mirror went with it


async def test_users_and_tokens_are_nodes_for_who_may_see_them(api: Api) -> None:
    alice = await user_token(api, "alice")
    bob = await user_token(api, "bob")
    mine = "{ me { user { id tokens { id } } } }"
    found = (await api.gql(mine, token=alice))["data"]["me"]["user"]
    user_id, token_id = found["id"], found["tokens"][0]["id"]
    node = "query($id: ID!) { node(id: $id) { id ... on User { name } ... on Token { name } } }"
    assert (await api.gql(node, {"id": user_id}, token=alice))["data"]["node"] == {
        "id": user_id,
        "name": "alice",
    }
    assert (await api.gql(node, {"id": token_id}, token=alice))["data"]["node"]["name"] == "tests"
    for gid in (user_id, token_id):  # not bob's: as if it did not exist
        assert (await api.gql(node, {"id": gid}, token=bob))["data"]["node"] is None
        assert (await api.gql(node, {"id": gid}, token=api.admin_token))["data"]["node"][
            "id"
        ] == gid
