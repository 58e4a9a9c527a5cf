"""OCI repositories on the real local registry (Debian's docker-registry): release
descriptors written by `arkitekt-spec` and pushed through the registry's API become
releases whose flavours name images by digest; a no-change rescan is one request; a
deleted tag withdraws its release; a broken descriptor is a located error."""

from __future__ import annotations

import http.server
import json
import os
import secrets
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from arkitekt_spec import capabilities as caps
from arkitekt_spec import selectors as spec
from arkitekt_spec.release import channel_tag, channel_version
from sqlalchemy import select

from indexer import oci
from indexer.errors import RemoteError
from indexer.result import RepoSpec
from port.catalogue.models import IndexRun, IndexRunError, IndexRunStatus, Release, Repo
from port.catalogue.queries import app_document, list_apps
from port.catalogue.repos import add_repo, update_repo
from port.catalogue.scanning import scan_repo
from port.errors import InvalidInput
from port.settings import Settings
from tests.harness import Catalogue, require
from tests.integration.ocifixtures import Pusher, descriptor, flavour
from tests.integration.tokenregistry import token_registry


@pytest.fixture
def registry() -> str:
    address = os.environ.get("PORT_TEST_REGISTRY")
    if not address:
        require("a local registry (PORT_TEST_REGISTRY, see `make services`)")
    return address


@pytest.fixture
def pusher(registry: str) -> Iterator[Pusher]:
    repository = f"port-test/oci-{secrets.token_hex(4)}"
    pushed = Pusher(registry, repository)
    yield pushed
    pushed.client.close()


def scanning(catalogue: Catalogue, registry: str) -> Settings:
    """The catalogue's settings, with the local registry's images allowed."""
    return catalogue.settings.model_copy(update={"allowed_registries": [registry]})


async def register(catalogue: Catalogue, url: str) -> int:
    async with catalogue.sessions() as session, session.begin():
        return (await add_repo(session, url, allow_local=True)).id


async def test_an_oci_repository_is_a_repo_like_a_git_one(
    catalogue: Catalogue, registry: str, pusher: Pusher, monkeypatch: pytest.MonkeyPatch
) -> None:
    repository = pusher.base.split("/v2/", 1)[1]
    pinned = f"{registry}/{repository}@sha256:{'c' * 64}"
    folder = caps.FolderCapability(name="images", target="/images")
    first = pusher.release("1.0.0", descriptor("1.0.0", flavour("cpu", pinned)))
    pusher.release(
        "1.1.0",
        descriptor(
            "1.1.0",
            flavour("cuda", pinned, selectors=[spec.CudaSelector(cuda_version="12.2")]),
            flavour("cpu", pinned, capabilities=[folder]),
        ),
    )
    pusher.image("1.1.0-cpu")  # an image beside the releases: not one
    repo_id = await register(catalogue, f"oci+http://{registry}/{repository}")

    outcome = await scan_repo(catalogue.sessions, scanning(catalogue, registry), repo_id)

    assert outcome.run.status == IndexRunStatus.SUCCEEDED
    assert [(e.ref, e.message) for e in outcome.run.errors] == []
    async with catalogue.sessions() as session:
        [app] = [app_document(a) for a in await list_apps(session)]
    assert [r["version"] for r in app["releases"]] == ["1.1.0", "1.0.0"]
    newest = app["releases"][0]
    assert [f["name"] for f in newest["flavours"]] == ["cuda", "cpu"]
    assert {f["image"] for f in newest["flavours"]} == {pinned}
    assert newest["flavours"][1]["capabilities"] == [
        {
            "kind": "folder",
            "name": "images",
            "required": True,
            "target": "/images",
            "readOnly": True,
        }
    ]
    async with catalogue.sessions() as session:
        release = await session.scalar(select(Release).where(Release.version == "1.0.0"))
    assert release is not None
    assert (release.source, release.git_ref, release.commit) == (
        "oci",
        "1.0.0",
        first.removeprefix("sha256:"),
    )

    # Nothing moved: one tags-list request, nothing else.
    asked: list[str] = []
    send = oci.Registry._send

    def counted(self: oci.Registry, url: str, accept: str, max_bytes: int) -> oci.Answer:
        asked.append(url)
        return send(self, url, accept, max_bytes)

    monkeypatch.setattr(oci.Registry, "_send", counted)
    again = await scan_repo(catalogue.sessions, scanning(catalogue, registry), repo_id)
    assert again.run.status == IndexRunStatus.UNCHANGED
    assert [url.split("/v2/", 1)[1] for url in asked] == [f"{repository}/tags/list?n=1000"]

    # A deleted tag withdraws its release, as a deleted git tag does.
    pusher.delete(first)
    withdrawn = await scan_repo(catalogue.sessions, scanning(catalogue, registry), repo_id)
    assert withdrawn.run.status == IndexRunStatus.SUCCEEDED
    async with catalogue.sessions() as session:
        release = await session.scalar(select(Release).where(Release.version == "1.0.0"))
    assert release is not None
    assert release.withdrawn


async def test_a_bad_descriptor_is_a_located_error_and_the_rest_is_indexed(
    catalogue: Catalogue, registry: str, pusher: Pusher
) -> None:
    repository = pusher.base.split("/v2/", 1)[1]
    pinned = f"{registry}/{repository}@sha256:{'d' * 64}"
    pusher.release("1.0.0", descriptor("1.0.0", flavour("cpu", pinned)))
    newer = json.loads(descriptor("2.0.0", flavour("cpu", pinned)))
    pusher.release("2.0.0", json.dumps({**newer, "spec_version": 2}).encode())
    mislabelled = descriptor("3.0.0", flavour("cpu", pinned))
    pusher.release("3.1.0", mislabelled)
    repo_id = await register(catalogue, f"oci+http://{registry}/{repository}")

    outcome = await scan_repo(catalogue.sessions, scanning(catalogue, registry), repo_id)

    async with catalogue.sessions() as session:
        versions = list(await session.scalars(select(Release.version)))
        run = await session.scalar(select(IndexRun).where(IndexRun.repo_id == repo_id))
        assert run is not None
        errors = list(
            await session.scalars(select(IndexRunError).where(IndexRunError.run_id == run.id))
        )
    assert outcome.run.status == IndexRunStatus.SUCCEEDED
    assert versions == ["1.0.0"]
    by_ref = {e.ref: e for e in errors}
    assert by_ref["2.0.0"].path == "spec_version"
    assert "newer than the Arkitekt spec Port reads" in by_ref["2.0.0"].message
    assert by_ref["2.0.0"].file == f"{registry}/{repository}:2.0.0"
    assert by_ref["3.1.0"].path == "manifest.version"
    assert "says version 3.0.0, its tag 3.1.0 says 3.1.0" in by_ref["3.1.0"].message


async def test_a_followed_channel_is_read_as_it_moves(
    catalogue: Catalogue, registry: str, pusher: Pusher, monkeypatch: pytest.MonkeyPatch
) -> None:
    repository = pusher.base.split("/v2/", 1)[1]
    pinned = f"{registry}/{repository}@sha256:{'e' * 64}"

    def build(revision: str, channel: str = "main") -> bytes:
        version = channel_version("1.1.0", revision)
        return descriptor(version, flavour("cpu", pinned), channel=channel, revision=revision)

    pusher.release("1.0.0", descriptor("1.0.0", flavour("cpu", pinned)))
    pusher.release(channel_tag("main"), build("a" * 40))
    pusher.release(channel_tag("feature/x"), build("b" * 40, "feature/x"))
    pusher.release(channel_tag("next"), build("d" * 40, "next"))  # not followed
    url = f"oci+http://{registry}/{repository}"
    followed = ["main", "feature/x"]
    async with catalogue.sessions() as session, session.begin():
        repo_id = (await add_repo(session, url, allow_local=True, channels=followed)).id
    settings = scanning(catalogue, registry)

    async def releases() -> dict[str, tuple[str | None, bool, bool]]:
        async with catalogue.sessions() as session:
            rows = await session.scalars(select(Release))
            return {r.version: (r.channel, r.current, r.withdrawn) for r in rows}

    first = await scan_repo(catalogue.sessions, settings, repo_id)
    assert first.run.status == IndexRunStatus.SUCCEEDED
    assert [e.message for e in first.run.errors] == []
    assert await releases() == {
        "1.0.0": (None, True, False),
        "1.1.0-dev.aaaaaaa": ("main", True, False),
        "1.1.0-dev.bbbbbbb": ("feature/x", True, False),
    }
    async with catalogue.sessions() as session:
        [app] = await list_apps(session)
    assert app.meta_version == "1.0.0"  # a release proper describes the app

    # Nothing moved: the tags list, and each followed channel's manifest.
    asked: list[str] = []
    send = oci.Registry._send

    def counted(self: oci.Registry, url: str, accept: str, max_bytes: int) -> oci.Answer:
        asked.append(url.split("/v2/", 1)[1])
        return send(self, url, accept, max_bytes)

    monkeypatch.setattr(oci.Registry, "_send", counted)
    again = await scan_repo(catalogue.sessions, settings, repo_id)
    assert again.run.status == IndexRunStatus.UNCHANGED
    assert asked == [
        f"{repository}/tags/list?n=1000",
        f"{repository}/manifests/main",
        f"{repository}/manifests/feature-x",
    ]
    monkeypatch.undo()

    # The channel moves: its new build is current, the one before is kept, superseded.
    pusher.release("main", build("c" * 40))
    moved = await scan_repo(catalogue.sessions, settings, repo_id)
    assert moved.changes is not None
    assert [str(a) for a in moved.changes.added] == ["stardist 1.1.0-dev.ccccccc"]
    assert [str(c) for c in moved.changes.changed] == [
        "stardist 1.1.0-dev.aaaaaaa: main: superseded"
    ]
    assert await releases() == {
        "1.0.0": (None, True, False),
        "1.1.0-dev.aaaaaaa": ("main", False, False),
        "1.1.0-dev.bbbbbbb": ("feature/x", True, False),
        "1.1.0-dev.ccccccc": ("main", True, False),
    }

    # A release proper pushed under the channel's tag is a located error; the build stands.
    proper = pusher.release("main", descriptor("1.2.0", flavour("cpu", pinned)))
    wrong = await scan_repo(catalogue.sessions, settings, repo_id)
    assert [(e.ref, e.message) for e in wrong.run.errors] == [
        (
            "main",
            "the descriptor under main is a release, not a channel build; "
            "channel 'main' is not read",
        )
    ]
    assert (await releases())["1.1.0-dev.ccccccc"] == ("main", True, False)

    # A channel's tag deleted, or a channel no longer followed: their builds are
    # withdrawn; the release proper stays.
    pusher.delete(proper)
    async with catalogue.sessions() as session, session.begin():
        await update_repo(session, repo_id, channels=["main"])
    gone = await scan_repo(catalogue.sessions, settings, repo_id)
    assert gone.changes is not None
    assert sorted(str(w) for w in gone.changes.withdrawn) == [
        "stardist 1.1.0-dev.aaaaaaa",
        "stardist 1.1.0-dev.bbbbbbb",
        "stardist 1.1.0-dev.ccccccc",
    ]
    assert (await releases())["1.0.0"] == (None, True, False)


async def test_a_channel_build_the_catalogue_refuses_leaves_the_last_good_one(
    catalogue: Catalogue, registry: str, pusher: Pusher
) -> None:
    repository = pusher.base.split("/v2/", 1)[1]
    pinned = f"{registry}/{repository}@sha256:{'f' * 64}"

    def build(version: str, **fields: Any) -> bytes:
        return descriptor(version, flavour("cpu", pinned), channel="main", **fields)

    held = "2.1.0-dev.bbbbbbb"  # a release proper whose version a build would take
    pusher.release(held, descriptor(held, flavour("cpu", pinned)))
    pusher.release("main", build("2.0.0-dev"))  # no revision: the digest marks it
    url = f"oci+http://{registry}/{repository}"
    async with catalogue.sessions() as session, session.begin():
        repo_id = (await add_repo(session, url, allow_local=True, channels=["main"])).id
    settings = scanning(catalogue, registry)

    async def versions() -> dict[str, tuple[str | None, bool, bool]]:
        async with catalogue.sessions() as session:
            rows = await session.scalars(select(Release))
            return {r.version: (r.channel, r.current, r.withdrawn) for r in rows}

    await scan_repo(catalogue.sessions, settings, repo_id)
    [first] = [v for v, (channel, _c, _w) in (await versions()).items() if channel]
    assert first.startswith("2.0.0-dev.")
    # The same version again, other images: another build, never the first one changed.
    pusher.release("main", build("2.0.0-dev", revision="0123456789"))
    await scan_repo(catalogue.sessions, settings, repo_id)
    assert (await versions())["2.0.0-dev.g0123456"] == ("main", True, False)
    assert (await versions())[first] == ("main", False, False)

    # A build whose version a release holds is refused: the channel's build stands, and
    # the moved tag is read again next run (never `unchanged`) until it is resolved.
    pusher.release("main", build("2.1.0", revision="b" * 40))
    refused = await scan_repo(catalogue.sessions, settings, repo_id)
    assert [e.message for e in refused.run.errors] == [
        f"stardist {held} is a release already; not indexed"
    ]
    assert (await versions())["2.0.0-dev.g0123456"] == ("main", True, False)
    again = await scan_repo(catalogue.sessions, settings, repo_id)
    assert again.run.status == IndexRunStatus.SUCCEEDED
    assert len(again.run.errors) == 1

    # The tag prefix changes (every ref forgotten) and the channel is unfollowed at
    # once: its builds are withdrawn all the same.
    async with catalogue.sessions() as session, session.begin():
        await update_repo(session, repo_id, tag_prefix="", channels=[], manifest_path="x")
    await scan_repo(catalogue.sessions, settings, repo_id)
    assert {v for v, (c, _cur, gone) in (await versions()).items() if c and not gone} == set()
    # A withdrawn build yields its version to a release proper pushed under it.
    pusher.release("2.0.0-dev.g0123456", descriptor("2.0.0-dev.g0123456", flavour("cpu", pinned)))
    taken = await scan_repo(catalogue.sessions, settings, repo_id)
    assert [e.message for e in taken.run.errors] == []
    assert (await versions())["2.0.0-dev.g0123456"] == (None, True, False)


async def test_channels_are_for_oci_repositories_and_taggable_names(
    catalogue: Catalogue, registry: str
) -> None:
    async with catalogue.sessions() as session:
        with pytest.raises(InvalidInput, match="followed in OCI repositories"):
            await add_repo(session, "https://example.org/a.git", allow_local=True, channels=["x"])
        with pytest.raises(InvalidInput, match="cannot be a registry tag"):
            await add_repo(
                session, f"oci+http://{registry}/acme/app", allow_local=True, channels=["..."]
            )
        repo = await add_repo(
            session,
            f"oci+http://{registry}/acme/app",
            allow_local=True,
            channels=["main", " main ", "feature/x"],
        )
    assert repo.channels == ["main", "feature/x"]


def test_oci_urls_are_checked_like_git_remotes() -> None:
    from indexer.errors import UnsafeUrlError
    from indexer.urls import check_url

    assert check_url("oci://ghcr.io/acme/stardist", allow_local=False) == (
        "oci://ghcr.io/acme/stardist"
    )
    for url, why in [
        ("oci+http://registry.lab/acme/app", "plain-HTTP registries"),
        ("oci://ghcr.io/acme/app:1.0", "without a tag or digest"),
        ("oci://ghcr.io/Acme/App", "lower case"),
        ("oci://-x/acme", "not a valid host name"),
    ]:
        with pytest.raises(UnsafeUrlError, match=why):
            check_url(url, allow_local=False)


async def test_a_registry_with_token_auth_anonymously_and_with_a_credential(
    catalogue: Catalogue, tmp_path: Path
) -> None:
    """The `WWW-Authenticate: Bearer realm=...` dance against a registry run as public
    ones are: public repositories anonymously, private ones with the URL's credential;
    a wrong one is the run's error, and the credential is never shown."""
    with token_registry(tmp_path) as tokens:
        for name in ("public/stardist", "private/stardist"):
            pusher = Pusher(tokens.address, name, tokens.push_token(name))
            pinned = f"{tokens.address}/{name}@sha256:{'e' * 64}"
            made = descriptor("1.0.0", flavour("cpu", pinned), identifier=name.split("/")[0])
            pusher.release("1.0.0", made)
            pusher.client.close()
        settings = scanning(catalogue, tokens.address)
        public = await register(catalogue, f"oci+http://{tokens.address}/public/stardist")
        outcome = await scan_repo(catalogue.sessions, settings, public)
        assert outcome.run.status == IndexRunStatus.SUCCEEDED
        assert [e.message for e in outcome.run.errors] == []

        wrong = await register(
            catalogue, f"oci+http://{tokens.user}:nope@{tokens.address}/private/stardist"
        )
        refused = await scan_repo(catalogue.sessions, settings, wrong)
        assert refused.run.status == IndexRunStatus.FAILED
        assert "token service" in (refused.run.message or "")
        assert "nope" not in (refused.run.message or "")

        async with catalogue.sessions() as session, session.begin():
            await session.delete(await session.get(Repo, wrong))
        private = await register(
            catalogue,
            f"oci+http://{tokens.user}:{tokens.password}@{tokens.address}/private/stardist",
        )
        allowed = await scan_repo(catalogue.sessions, settings, private)
        assert allowed.run.status == IndexRunStatus.SUCCEEDED
        assert [e.message for e in allowed.run.errors] == []
        assert "repository:private/stardist:pull" in tokens.issued
    async with catalogue.sessions() as session:
        apps = {a.identifier: app_document(a) for a in await list_apps(session)}
    assert sorted(apps) == ["private", "public"]
    assert apps["private"]["releases"][0]["version"] == "1.0.0"


async def test_a_registry_with_basic_auth_wants_the_urls_credential(
    catalogue: Catalogue, tmp_path: Path
) -> None:
    with token_registry(tmp_path, auth="basic") as basic:
        name = "lab/stardist"
        pusher = Pusher(basic.address, name)
        pusher.client.auth = httpx.BasicAuth(basic.user, basic.password)
        pinned = f"{basic.address}/{name}@sha256:{'1' * 64}"
        pusher.release("1.0.0", descriptor("1.0.0", flavour("cpu", pinned)))
        pusher.client.close()
        settings = scanning(catalogue, basic.address)
        anonymous = await register(catalogue, f"oci+http://{basic.address}/{name}")
        refused = await scan_repo(catalogue.sessions, settings, anonymous)
        assert refused.run.status == IndexRunStatus.FAILED
        assert "wants credentials: put them in the URL" in (refused.run.message or "")
        async with catalogue.sessions() as session, session.begin():
            await session.delete(await session.get(Repo, anonymous))
        signed = await register(
            catalogue, f"oci+http://{basic.user}:{basic.password}@{basic.address}/{name}"
        )
        allowed = await scan_repo(catalogue.sessions, settings, signed)
    assert allowed.run.status == IndexRunStatus.SUCCEEDED
    assert [e.message for e in allowed.run.errors] == []


class Endless(http.server.BaseHTTPRequestHandler):
    """A hostile registry: empty pages of tags, each naming a next one, forever."""

    def log_message(self, *_args: Any) -> None:
        pass

    def do_GET(self) -> None:
        body = b'{"name": "x/y", "tags": []}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Link", f'<{self.path.split("&")[0]}&last=z{len(self.path)}>; rel="next"')
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def test_a_registry_paging_forever_is_a_bounded_error() -> None:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Endless)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"oci+http://127.0.0.1:{server.server_address[1]}/x/y"
        with pytest.raises(RemoteError, match=f"more than {oci.MAX_PAGES} pages of tags"):
            oci.index_oci(RepoSpec(url=url))
    finally:
        server.shutdown()
        server.server_close()
