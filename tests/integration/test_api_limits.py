"""What the server refuses before doing work, what it hides, and its plain endpoints."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import time
from typing import Any

import httpx
import pytest
import uvicorn
from litestar.testing import AsyncTestClient

from port import db
from port.api import app as api_app
from port.catalogue import queries as catalogue_queries
from port.metrics import REGISTRY
from port.serve import server_config
from port.work.server import create_app
from tests.deployfakes import Flavours, add_app
from tests.harness import Api, Catalogue, eventually, free_port
from tests.integration.gitfixtures import Remote


def messages(body: dict[str, Any]) -> list[str]:
    return [e["message"] for e in body.get("errors", [])]


async def test_too_deep_query_is_refused_before_execution(api: Api) -> None:
    nested = "repo { apps(first: 1) { edges { node { " * 10  # cheap, but too deep
    deep = (
        "{ apps(first: 1) { edges { node { " + nested + "identifier" + " } } } }" * 10 + " } } } }"
    )
    before = REGISTRY.get_sample_value("port_sql_statements_total") or 0.0
    body = await api.gql(deep)
    assert any("exceeds maximum operation depth" in m for m in messages(body)), body
    assert body.get("data") is None
    assert (REGISTRY.get_sample_value("port_sql_statements_total") or 0.0) == before


async def test_page_size_and_cursor_are_checked(api: Api) -> None:
    too_many = await api.gql("{ apps(first: 1000) { totalCount } }")
    assert too_many["errors"][0]["extensions"]["code"] == "INVALID_INPUT"
    assert "at most 100" in too_many["errors"][0]["message"]
    bad_cursor = await api.gql('{ apps(after: "bm9wZQ==") { totalCount } }')
    assert bad_cursor["errors"][0]["extensions"]["code"] == "INVALID_INPUT"


async def test_oversized_body_is_refused(api: Api) -> None:
    padding = "#" * (api.catalogue.settings.max_body_kb * 1024 + 1)
    response = await api.client.post(
        "/graphql", json={"query": "{ apps { totalCount } }" + padding}
    )
    assert response.status_code == 413


async def test_unexpected_errors_are_masked(
    api: Api, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(_text: str) -> str:
        raise RuntimeError("secret internals: /etc/shadow")

    monkeypatch.setattr(catalogue_queries, "_like", broken)
    body = await api.gql('{ apps(search: "x") { totalCount } }')
    assert messages(body) == ["Unexpected error."]
    assert "secret internals" not in str(body)
    assert "secret internals" in caplog.text  # logged for the operator, with its traceback


async def test_health_readiness_and_metrics(api: Api) -> None:
    assert (await api.client.get("/healthz")).text == "ok"
    assert (await api.client.get("/readyz")).text == "ok"
    await api.gql("{ apps { totalCount } }")

    def answered() -> float:
        labels = {"method": "POST", "route": "/graphql", "status": "200"}
        return REGISTRY.get_sample_value("port_http_requests_total", labels) or 0.0

    before = answered()
    await api.gql("{ apps { totalCount } }")
    assert answered() == before + 1
    text = (await api.client.get("/metrics")).text
    assert 'port_http_requests_total{method="POST",route="/graphql",status="200"}' in text


async def test_graphiql_in_a_browser(api: Api) -> None:
    page = await api.client.get("/graphql", headers={"Accept": "text/html"})
    assert page.status_code == 200
    assert "graphiql" in page.text.lower()


async def test_readiness_fails_when_the_database_goes_away(api: Api) -> None:
    state = api.client.app.state.api
    working = state.engine
    state.engine = db.create_engine("postgresql+asyncpg://port:pw@127.0.0.1:1/gone")
    try:
        response = await api.client.get("/readyz")
    finally:
        await state.engine.dispose()
        state.engine = working
    assert response.status_code == 503
    assert (await api.client.get("/healthz")).status_code == 200


FLAVOUR_BOMB = """{ app(identifier: "flavbomb") { releases(first: 100) { edges { node {
  version flavours { name image selectors } } } } } }"""


async def test_the_flavour_bomb_is_refused_and_a_plain_catalogue_page_is_not(api: Api) -> None:
    """Repro (issue 16, 3): releases of many flavours passed the cost limit, counted as
    ten each. A release holds at most 64 now, and a list counts what the catalogue
    really holds: a page of 50 apps x 10 releases with their flavours is answered while
    releases have two, and QUERY_TOO_COSTLY once one release has 64 (it could return
    32,000 objects). The repro itself returns 64 flavours, never 5,000."""
    many: Flavours = tuple((f"f{n}", "img/cpu:1", []) for n in range(64))
    two: Flavours = (("cpu", "img/cpu:1", []), ("gpu", "img/gpu:1", []))
    page = """{ apps(first: 50) { edges { node { identifier releases(first: 10) { edges {
      node { version flavours { name image selectors } } } } } } } }"""
    async with api.catalogue.sessions() as session, session.begin():
        for n in range(3):
            await add_app(session, f"plain{n}", versions=("1.0.0", "1.1.0"), flavours=two)
    assert "errors" not in await api.gql(page)

    async with api.catalogue.sessions() as session, session.begin():
        await add_app(session, "flavbomb", versions=("1.0.0",), flavours=many)
    # A server started now reads the sizes at once (a running one within 30 s).
    async with AsyncTestClient(app=create_app(api.catalogue.settings)) as later:
        refused = (await later.post("/graphql", json={"query": page})).json()
        assert [e["extensions"]["code"] for e in refused["errors"]] == ["QUERY_TOO_COSTLY"]
        bomb = (await later.post("/graphql", json={"query": FLAVOUR_BOMB})).json()
    [release] = bomb["data"]["app"]["releases"]["edges"]
    assert len(release["node"]["flavours"]) == 64
    assert (await api.client.get("/healthz")).text == "ok"


async def test_costly_queries_are_refused_before_they_run(api: Api) -> None:
    everything = """{ repos(first: 100) { edges { node { apps(first: 100) { edges { node {
      releases(first: 100) { edges { node { flavours { release { app { name } } } } } }
    } } } } } } }"""
    before = REGISTRY.get_sample_value("port_sql_statements_total") or 0.0
    body = await api.gql(everything)
    [error] = body["errors"]
    assert error["extensions"]["code"] == "QUERY_TOO_COSTLY"
    assert "first" in error["message"]
    assert (REGISTRY.get_sample_value("port_sql_statements_total") or 0.0) == before

    # Aliases add up; fragments are expanded; a variable counts like a literal.
    alias = "a{n}: apps(first: $n) {{ edges {{ node {{ ...r }} }} }}"
    query = (
        "query($n: Int) { "
        + " ".join(alias.format(n=n) for n in range(5))
        + " } fragment r on App { releases(first: 100) { edges { node { flavours { name } } } } }"
    )
    assert (await api.gql(query, {"n": 100}))["errors"][0]["extensions"][
        "code"
    ] == "QUERY_TOO_COSTLY"
    assert "errors" not in await api.gql(query, {"n": 2})


@pytest.mark.parametrize(
    ("query", "variables"),
    [
        ("query($id: ID!) { node(id: $id) { id } }", {"id": "garbage!!"}),
        ("query($id: ID!) { node(id: $id) { id } }", {"id": "QXBwOsKy"}),  # App:²
        ('{ apps(after: "b2Zmc2V0OsKy") { totalCount } }', {}),  # offset:²
        ('{ apps(after: "b2Zmc2V0Ojk5OTk5OTk5OTk5OTk5OTk5OTk5OTk5") { totalCount } }', {}),
    ],
)
async def test_hostile_ids_and_cursors_are_client_errors(
    api: Api, query: str, variables: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    body = await api.gql(query, variables)
    [error] = body["errors"]
    assert error["message"] != "Unexpected error."
    assert "unexpected error" not in caplog.text  # nothing for an operator to chase


async def test_metrics_count_index_runs(api: Api, local_remote: Remote) -> None:
    def runs() -> float:
        return REGISTRY.get_sample_value("port_index_runs_total", {"status": "succeeded"}) or 0.0

    local_remote.work.commit("empty")
    local_remote.work.push()
    repo_id = await api.create_repo(local_remote.url)
    before = runs()
    await api.gql(
        "mutation($id: ID!) { scanRepo(input: {id: $id}) { run { status } } }",
        {"id": repo_id},
        token=api.admin_token,
    )
    assert runs() == before + 1
    text = (await api.client.get("/metrics")).text
    assert 'port_index_runs_total{status="succeeded"}' in text
    assert "port_index_run_duration_seconds_count" in text


@pytest.mark.parametrize(
    "type_name",
    ["Repo", "App", "Release", "Flavour", "IndexRun", "Setup", "Pod", "User", "Token"],
)
async def test_node_of_an_unknown_id_is_null_not_an_error(
    api: Api, type_name: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Repro (issue 16, 7): node(id:) of an unknown or invisible id answered "Unexpected
    error." with a TypeError traceback in the log, for anonymous callers too."""
    gid = base64.b64encode(f"{type_name}:999".encode()).decode()
    query = "query($id: ID!) { node(id: $id) { id } }"
    for token in (None, api.admin_token):
        body = await api.gql(query, {"id": gid}, token=token)
        assert "errors" not in body, body
        assert body["data"] == {"node": None}
    assert "unexpected error" not in caplog.text


@pytest.mark.parametrize(
    ("raw", "said"),
    [
        (b'{"query": "{ apps { totalCount } }", "x": "\xff\xfe"}', "not UTF-8 (byte 43)"),
        (b"null", "must be a JSON object"),
        (b'"{ apps { totalCount } }"', "must be a JSON object"),
        (b'{"query": "{ apps { totalCount } }"', "not JSON"),
        (
            b'{"query": "{ apps { totalCount } }", "variables": {"v": '
            + b"[" * 5000
            + b"]" * 5000
            + b"}}",
            "nests deeper than 64 levels",
        ),
    ],
)
async def test_a_malformed_body_is_a_400_with_a_code(
    api: Api, raw: bytes, said: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Repro (issue 16, 9): invalid UTF-8, a JSON null and 5,000-deep JSON were 500s."""
    response = await api.client.post(
        "/graphql", content=raw, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400, response.text
    [error] = response.json()["errors"]
    assert error["extensions"] == {"code": "BAD_REQUEST"}
    assert said in error["message"]
    assert "Traceback" not in caplog.text
    brackets = {"query": '{ apps(search: "[[[[{{{{") { totalCount } }'}  # in a string: fine
    assert "errors" not in (await api.gql(brackets["query"]))


async def test_a_body_sent_a_byte_at_a_time_is_cut_off(
    catalogue: Catalogue, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Repro (issue 16, 13): 1,100 connections sending one byte every 5 s were all held.
    Port under uvicorn on a real socket; the client trickles a body by hand."""
    monkeypatch.setattr(api_app, "BODY_SECONDS", 0.5)
    number = free_port()
    settings = catalogue.settings
    server = uvicorn.Server(
        server_config(create_app(settings), settings, port=number, log_level="warning")
    )
    task = asyncio.create_task(server.serve())
    await eventually(lambda: server.started, "uvicorn to listen")
    body = b'{"query": "{ apps { totalCount } }"}'
    head = (
        "POST /graphql HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", number)
        started = time.monotonic()
        writer.write(head)

        async def trickle() -> None:
            with contextlib.suppress(ConnectionError):
                for byte in body:
                    writer.write(bytes([byte]))
                    await writer.drain()
                    await asyncio.sleep(0.1)

        sending = asyncio.create_task(trickle())
        answer = await asyncio.wait_for(reader.read(), 10)
        held = time.monotonic() - started
        sending.cancel()
        writer.close()
        assert answer.startswith(b"HTTP/1.1 408"), answer
        assert b"did not arrive within 0.5 s" in answer
        assert held < len(body) * 0.1  # cut off, not held to the end
        async with httpx.AsyncClient() as client:  # a prompt body is answered as ever
            prompt = await client.post(
                f"http://127.0.0.1:{number}/graphql",
                content=body,
                headers={"Content-Type": "application/json"},
            )
        assert prompt.json()["data"] == {"apps": {"totalCount": 0}}
    finally:
        server.should_exit = True
        await task
