"""Browsing the catalogue over GraphQL (real HTTP through Litestar, both databases)."""

from __future__ import annotations

from typing import Any

from port.catalogue.queries import app_document, list_apps
from port.metrics import REGISTRY
from tests.harness import Api
from tests.integration.gitfixtures import Remote, app_image, app_images_yaml, port_yaml
from tests.integration.test_catalogue_scan import register, scan

BROWSE = """
query Browse($first: Int, $after: String, $search: String) {
  apps(first: $first, after: $after, search: $search) {
    totalCount
    pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
    edges { cursor node {
      id identifier name
      repo { url }
      latestRelease { version }
      releases { totalCount edges { node { version withdrawn flavours { name image } } } }
    } }
  }
}
"""


def data(body: dict[str, Any]) -> dict[str, Any]:
    assert "errors" not in body, body["errors"]
    result: dict[str, Any] = body["data"]
    return result


async def scanned(api: Api, remote: Remote) -> int:
    """Register ``remote`` and index it; return the repo's row id."""
    repo_id = await register(api.catalogue, remote.url)
    outcome = await scan(api.catalogue, repo_id, remote)
    assert outcome.changes is not None
    return repo_id


async def many_apps(api: Api, remote: Remote, count: int) -> None:
    """``count`` apps with two releases of two flavours each, from one Arkitekt file."""
    entries = [
        app_image(f"app{n:03d}", f"1.{minor}.0", flavour)
        for n in range(count)
        for minor in range(2)
        for flavour in ("cpu", "cuda")
    ]
    remote.work.commit("apps", {".arkitekt_next/deployments.yaml": app_images_yaml(*entries)})
    await scanned(api, remote)


async def test_browse_apps_with_releases_and_flavours(api: Api, local_remote: Remote) -> None:
    local_remote.work.commit("0.1", {"port.yaml": port_yaml("stardist", "0.1.0", ("cuda", "cpu"))})
    local_remote.work.tag("v0.1.0")
    local_remote.work.commit("0.10", {"port.yaml": port_yaml("stardist", "0.10.0")})
    local_remote.work.tag("v0.10.0")
    await scanned(api, local_remote)

    apps = data(await api.gql(BROWSE))["apps"]
    assert apps["totalCount"] == 1
    [edge] = apps["edges"]
    node = edge["node"]
    assert (node["identifier"], node["name"]) == ("stardist", "Stardist")
    assert node["repo"]["url"] == local_remote.url
    assert node["latestRelease"] == {"version": "0.10.0"}
    versions = [e["node"]["version"] for e in node["releases"]["edges"]]
    assert versions == ["0.10.0", "0.1.0"]  # semver order, not text order
    oldest = node["releases"]["edges"][1]["node"]
    assert [f["name"] for f in oldest["flavours"]] == ["cuda", "cpu"]

    # A page of releases brings their flavours; a release reached otherwise loads them:
    # the same flavours either way.
    shown = "flavours { name image selectors resources { cpus memory } ports { name } }"
    both = data(
        await api.gql(
            f"""{{ app(identifier: "stardist") {{ latestRelease {{ id {shown} }}
                releases(first: 1) {{ edges {{ node {{ id {shown} }} }} }} }} }}"""
        )
    )["app"]
    [paged] = [e["node"] for e in both["releases"]["edges"]]
    assert both["latestRelease"] == paged
    by_id = data(
        await api.gql(
            f"query($id: ID!) {{ node(id: $id) {{ ... on Release {{ id {shown} }} }} }}",
            {"id": paged["id"]},
        )
    )["node"]
    assert by_id == paged
    assert paged["flavours"]

    # The global id resolves back through node(id:).
    again = data(
        await api.gql(
            "query($id: ID!) { node(id: $id) { ... on App { identifier } } }", {"id": node["id"]}
        )
    )
    assert again["node"] == {"identifier": "stardist"}
    one = data(
        await api.gql(
            '{ app(identifier: "stardist") { identifier } nope: app(identifier: "x") { id } }'
        )
    )
    assert one == {"app": {"identifier": "stardist"}, "nope": None}


async def test_pagination_edges_and_search(api: Api, local_remote: Remote) -> None:
    await many_apps(api, local_remote, 7)
    first = data(await api.gql(BROWSE, {"first": 3}))["apps"]
    assert first["totalCount"] == 7
    assert [e["node"]["identifier"] for e in first["edges"]] == ["app000", "app001", "app002"]
    assert first["pageInfo"]["hasNextPage"] is True
    assert first["pageInfo"]["hasPreviousPage"] is False

    last = data(await api.gql(BROWSE, {"first": 5, "after": first["pageInfo"]["endCursor"]}))[
        "apps"
    ]
    assert [e["node"]["identifier"] for e in last["edges"]] == [f"app00{n}" for n in range(3, 7)]
    assert last["pageInfo"]["hasNextPage"] is False
    assert last["pageInfo"]["hasPreviousPage"] is True

    empty = data(await api.gql(BROWSE, {"first": 0}))["apps"]
    assert (empty["edges"], empty["pageInfo"]["endCursor"]) == ([], None)

    found = data(await api.gql(BROWSE, {"search": "APP00_"}))["apps"]  # literal, any case
    assert found["totalCount"] == 0
    found = data(await api.gql(BROWSE, {"search": "p005"}))["apps"]
    assert [e["node"]["identifier"] for e in found["edges"]] == ["app005"]


async def test_a_page_of_50_costs_the_same_statements_as_a_page_of_5(
    api: Api, local_remote: Remote
) -> None:
    await many_apps(api, local_remote, 55)

    async def statements(first: int) -> float:
        before = REGISTRY.get_sample_value("port_sql_statements_total") or 0.0
        page = data(await api.gql(BROWSE, {"first": first}))["apps"]
        assert len(page["edges"]) == first
        assert all(len(e["node"]["releases"]["edges"]) == 2 for e in page["edges"])
        return (REGISTRY.get_sample_value("port_sql_statements_total") or 0.0) - before

    small, large = await statements(5), await statements(50)
    assert small == large
    assert large <= 6  # count, apps, repos, releases, flavours


async def test_repos_show_their_last_run_and_its_errors(api: Api, local_remote: Remote) -> None:
    local_remote.work.commit("bad", {"port.yaml": "apiVersion: port/v1\napp: [1\n"})
    local_remote.work.tag("v1.0.0")
    await scanned(api, local_remote)
    query = "{ repos { edges { node { url lastRun { status errors { file ref line } } } } } }"
    repos = data(await api.gql(query))["repos"]
    [edge] = repos["edges"]
    run = edge["node"]["lastRun"]
    assert run["status"] == "SUCCEEDED"
    [error] = run["errors"]
    assert (error["file"], error["ref"], error["line"]) == ("port.yaml", "v1.0.0", 3)


async def test_withdrawn_releases_are_hidden_unless_asked(api: Api, local_remote: Remote) -> None:
    work = local_remote.work
    work.commit("1", {"port.yaml": port_yaml("sd", "1.0.0")})
    work.tag("v1.0.0")
    work.commit("2", {"port.yaml": port_yaml("sd", "2.0.0")})
    work.tag("v2.0.0")
    repo_id = await scanned(api, local_remote)
    work.delete_tag("v2.0.0")
    await scan(api.catalogue, repo_id, local_remote)
    query = """{ app(identifier: "sd") { latestRelease { version }
      shown: releases { edges { node { version } } }
      all: releases(includeWithdrawn: true) { edges { node { version withdrawn } } } } }"""
    app = data(await api.gql(query))["app"]
    assert app["latestRelease"] == {"version": "1.0.0"}
    assert [e["node"]["version"] for e in app["shown"]["edges"]] == ["1.0.0"]
    assert [e["node"] for e in app["all"]["edges"]] == [
        {"version": "2.0.0", "withdrawn": True},
        {"version": "1.0.0", "withdrawn": False},
    ]


async def test_anonymous_catalogue_reads_are_cached_until_the_catalogue_changes(
    api: Api, local_remote: Remote
) -> None:
    local_remote.work.commit("1", {"port.yaml": port_yaml("sd", "1.0.0")})
    local_remote.work.tag("v1.0.0")
    await scanned(api, local_remote)

    def statements() -> float:
        return REGISTRY.get_sample_value("port_sql_statements_total") or 0.0

    first = await api.gql(BROWSE)
    before = statements()
    assert await api.gql(BROWSE) == first
    assert statements() == before  # answered from the cache

    alice = await api.gql("{ apps { totalCount } }", token=api.admin_token)
    assert statements() > before  # signed-in answers are kept apart from anonymous ones
    assert alice["data"] == {"apps": {"totalCount": 1}}

    local_remote.work.commit("2", {"port.yaml": port_yaml("sd", "2.0.0")})
    local_remote.work.tag("v2.0.0")
    local_remote.work.push()
    gid = (await api.gql("{ repos { edges { node { id } } } }"))["data"]["repos"]["edges"][0][
        "node"
    ]["id"]
    scan = await api.gql(
        "mutation($id: ID!) { scanRepo(input: {id: $id}) { run { added } } }",
        {"id": gid},
        token=api.admin_token,
    )
    assert scan["data"]["scanRepo"]["run"]["added"] == ["sd 2.0.0"]
    fresh = data(await api.gql(BROWSE))["apps"]["edges"][0]["node"]
    assert fresh["latestRelease"] == {"version": "2.0.0"}


async def test_a_flavours_capabilities_are_shown_as_the_spec_writes_them(
    api: Api, local_remote: Remote
) -> None:
    camera = {"kind": "device", "name": "camera", "class": "video", "target": "/dev/video0"}
    shm = {"kind": "shared_memory", "name": "shm", "min": 2048, "required": False}
    entry = app_image("scope", "1.0.0", "live") | {"capabilities": [camera, shm]}
    plain = app_image("scope", "1.0.0", "offline")
    local_remote.work.commit(
        "apps", {".arkitekt_next/deployments.yaml": app_images_yaml(entry, plain)}
    )
    await scanned(api, local_remote)

    release = data(
        await api.gql(
            '{ app(identifier: "scope") { latestRelease { flavours { name capabilities } } } }'
        )
    )["app"]["latestRelease"]
    assert release["flavours"] == [
        {"name": "live", "capabilities": [camera | {"required": True}, shm]},
        {"name": "offline", "capabilities": []},
    ]
    async with api.catalogue.sessions() as session:
        [app] = [app_document(a) for a in await list_apps(session)]
    # `port apps --json` prints these documents: each flavour with its capabilities.
    flavours = app["releases"][0]["flavours"]
    assert [f["capabilities"] for f in flavours] == [[camera | {"required": True}, shm], []]
