"""Ingest of index results into the catalogue, on SQLite and PostgreSQL.

The index results are built by hand here, so every rule of the catalogue (idempotence,
ownership, withdrawal, moved tags, Arkitekt head-ness) is checked without git; the
scan tests check the same rules end to end through real git remotes.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import selectinload

from indexer.result import FoundRelease, IndexResult, RepoSpec, Source, TagInfo
from manifests.specs import AppSpec, FlavourSpec, ReleaseSpec
from port.catalogue.ingest import Changes, ReleaseRef, ingest
from port.catalogue.models import App, Release, Repo
from port.catalogue.queries import app_document, list_apps
from port.catalogue.repos import add_repo
from tests.harness import Catalogue

CATALOGUE_TABLES = ("repos", "apps", "releases", "flavours")
C1, C2, C3 = "1" * 40, "2" * 40, "3" * 40


def found(
    identifier: str,
    version: str,
    *,
    flavours: dict[str, str] | None = None,
    source: Source = "port",
    commit: str = C1,
    current: bool = True,
    description: str = "",
) -> FoundRelease:
    images = flavours or {"cpu": f"registry.example/{identifier}:{version}-cpu"}
    spec = ReleaseSpec(
        app=AppSpec(identifier=identifier, name=identifier.title(), description=description),
        version=version,
        flavours=tuple(FlavourSpec(name=n, image=i) for n, i in images.items()),
    )
    ref = f"v{version}" if source == "port" else "main"
    return FoundRelease(spec, source, "port.yaml", ref, commit, current)


def result(
    *releases: FoundRelease,
    tags: list[str] | None = None,
    head: frozenset[tuple[str, str]] | None = None,
) -> IndexResult:
    """An index result whose remote advertises exactly ``tags`` (default: the releases')."""
    names = tags if tags is not None else [r.ref for r in releases if r.source == "port"]
    tag_infos = {n: TagInfo(n, n.removeprefix("v"), C1) for n in names}
    refs = {f"refs/tags/{n}": C1 for n in names} | {"refs/heads/main": C3}
    return IndexResult(
        repo=RepoSpec("https://git.example/acme/apps.git"),
        branch="main",
        head=C3,
        refs=refs,
        fetched=True,
        tags=tag_infos,
        releases=list(releases),
        arkitekt_head=head,
    )


def texts(entries: list[Any]) -> list[str]:
    """Entries of Changes as a person (and an index run) reads them."""
    return [str(entry) for entry in entries]


async def apply(cat: Catalogue, repo_url: str, index: IndexResult) -> Changes:
    async with cat.sessions() as session, session.begin():
        repo = await session.scalar(select(Repo).where(Repo.url == repo_url))
        if repo is None:
            repo = await add_repo(session, repo_url, allow_local=False)
        return await ingest(session, repo, index)


async def releases_of(cat: Catalogue, identifier: str) -> dict[str, Release]:
    async with cat.sessions() as session:
        rows = await session.scalars(
            select(Release)
            .join(App)
            .where(App.identifier == identifier)
            .options(selectinload(Release.flavours))
        )
        return {r.version: r for r in rows}


URL_A = "https://git.example/acme/apps.git"
URL_B = "https://git.example/other/apps.git"


async def test_first_ingest_builds_the_catalogue(catalogue: Catalogue) -> None:
    changes = await apply(
        catalogue,
        URL_A,
        result(
            found("stardist", "0.4.9"),
            found("stardist", "0.4.10", flavours={"cuda": "sd:cuda", "cpu": "sd:cpu"}),
        ),
    )
    assert sorted(changes.added) == [
        ReleaseRef("stardist", "0.4.10"),
        ReleaseRef("stardist", "0.4.9"),
    ]
    async with catalogue.sessions() as session:
        [app] = [app_document(a) for a in await list_apps(session)]
    assert app["identifier"] == "stardist"
    assert app["repo"] == URL_A
    assert [r["version"] for r in app["releases"]] == ["0.4.10", "0.4.9"]  # semver, not text
    assert [f["name"] for f in app["releases"][0]["flavours"]] == ["cuda", "cpu"]


def release_reads(cat: Catalogue) -> list[str]:
    return [
        " ".join(s.split())
        for s in cat.statements
        if s.lstrip().upper().startswith("SELECT") and "FROM releases" in s
    ]


async def test_a_first_ingest_reads_back_only_what_it_needs(catalogue: Catalogue) -> None:
    # A thousand-tag first index must not look up releases an app created in this run
    # cannot have, nor load as objects the releases it just wrote to withdraw none.
    index = result(*[found("sd", f"1.{n}.0") for n in range(20)])
    index.tags_read = {f"v1.{n}.0" for n in range(20)}
    catalogue.statements.clear()
    changes = await apply(catalogue, URL_A, index)
    assert len(changes.added) == 20
    reads = release_reads(catalogue)
    assert len(reads) == 2, reads  # the new ids, then what the tags read no longer release
    assert reads[1].startswith("SELECT releases.id, apps.identifier, releases.version ")

    # A release a moved tag no longer produces is withdrawn, and only it is loaded.
    again = result(*[found("sd", f"1.{n}.0") for n in range(19)], tags=sorted(index.tags_read))
    again.tags_read = set(index.tags_read)
    catalogue.statements.clear()
    changes = await apply(catalogue, URL_A, again)
    assert texts(changes.withdrawn) == ["sd 1.19.0"]
    assert (await releases_of(catalogue, "sd"))["1.19.0"].withdrawn


async def test_same_result_twice_writes_nothing(catalogue: Catalogue) -> None:
    index = result(found("stardist", "1.0.0"), found("napari", "0.1.0", commit=C2))
    await apply(catalogue, URL_A, index)
    catalogue.statements.clear()
    changes = await apply(catalogue, URL_A, index)
    assert (changes.added, changes.changed, changes.withdrawn) == ([], [], [])
    assert catalogue.writes(*CATALOGUE_TABLES) == []


async def test_moved_tag_updates_release_and_says_what_changed(catalogue: Catalogue) -> None:
    await apply(catalogue, URL_A, result(found("stardist", "1.0.0")))
    moved = found("stardist", "1.0.0", commit=C2, flavours={"cpu": "sd:rebuilt"})
    changes = await apply(catalogue, URL_A, result(moved))
    assert texts(changes.changed) == ["stardist 1.0.0: commit, flavours.cpu.image"]
    release = (await releases_of(catalogue, "stardist"))["1.0.0"]
    assert release.commit == C2
    assert [f.image for f in release.flavours] == ["sd:rebuilt"]


async def test_port_release_flavours_follow_the_manifest(catalogue: Catalogue) -> None:
    await apply(catalogue, URL_A, result(found("sd", "1.0.0", flavours={"a": "i:a", "b": "i:b"})))
    changes = await apply(
        catalogue, URL_A, result(found("sd", "1.0.0", commit=C2, flavours={"c": "i:c"}))
    )
    assert texts(changes.changed) == [
        "sd 1.0.0: commit, flavours.c added, flavours.a removed, flavours.b removed"
    ]
    assert [f.name for f in (await releases_of(catalogue, "sd"))["1.0.0"].flavours] == ["c"]


async def test_vanished_tag_withdraws_release_and_keeps_it(catalogue: Catalogue) -> None:
    await apply(
        catalogue,
        URL_A,
        result(found("sd", "1.0.0", description="old"), found("sd", "1.1.0", description="new")),
    )
    changes = await apply(catalogue, URL_A, result(tags=["v1.0.0"]))
    assert texts(changes.withdrawn) == ["sd 1.1.0"]
    releases = await releases_of(catalogue, "sd")
    assert releases["1.1.0"].withdrawn
    assert not releases["1.0.0"].withdrawn
    async with catalogue.sessions() as session:
        app = await session.scalar(select(App).where(App.identifier == "sd"))
    assert app is not None
    assert (app.description, app.meta_version) == ("old", "1.0.0")  # from what is left

    # The tag comes back: the release is published again.
    comeback = result(found("sd", "1.1.0", description="new"), tags=["v1.0.0", "v1.1.0"])
    changes = await apply(catalogue, URL_A, comeback)
    assert texts(changes.changed) == ["sd 1.1.0: current, withdrawn"]
    assert not (await releases_of(catalogue, "sd"))["1.1.0"].withdrawn


async def test_identifier_belongs_to_the_first_repo(catalogue: Catalogue) -> None:
    await apply(catalogue, URL_A, result(found("stardist", "1.0.0")))
    changes = await apply(catalogue, URL_B, result(found("stardist", "9.9.9")))
    assert changes.added == []
    [error] = changes.errors
    assert "belongs to repository https://git.example/acme/apps.git" in error.message
    assert error.path == "app.identifier"
    assert set(await releases_of(catalogue, "stardist")) == {"1.0.0"}


async def test_newest_release_describes_the_app(catalogue: Catalogue) -> None:
    await apply(catalogue, URL_A, result(found("sd", "1.2.0", description="newest")))
    await apply(
        catalogue,
        URL_A,
        result(found("sd", "1.1.0", description="older"), tags=["v1.2.0", "v1.1.0"]),
    )
    async with catalogue.sessions() as session:
        app = await session.scalar(select(App).where(App.identifier == "sd"))
    assert app is not None
    assert app.description == "newest"


async def test_arkitekt_entries_accumulate_and_head_decides_current(
    catalogue: Catalogue,
) -> None:
    head = frozenset({("fiji", "0.2.0")})
    await apply(
        catalogue,
        URL_A,
        result(
            found("fiji", "0.2.0", source="arkitekt", flavours={"vanilla": "f:0.2.0"}),
            found("fiji", "0.1.0", source="arkitekt", current=False, flavours={"vanilla": "f:1"}),
            head=head,
        ),
    )
    # A later commit adds a cuda build of 0.2.0 and cuts 0.2.0's vanilla out of the file.
    changes = await apply(
        catalogue,
        URL_A,
        result(
            found("fiji", "0.2.0", source="arkitekt", commit=C2, flavours={"cuda": "f:cuda"}),
            head=head,
        ),
    )
    assert texts(changes.changed) == ["fiji 0.2.0: commit, flavours.cuda added"]
    releases = await releases_of(catalogue, "fiji")
    assert [f.name for f in releases["0.2.0"].flavours] == ["vanilla", "cuda"]
    assert releases["0.2.0"].current
    assert not releases["0.1.0"].current
    assert not releases["0.1.0"].withdrawn  # history is not withdrawal

    await apply(catalogue, URL_A, result(head=frozenset()))
    assert not (await releases_of(catalogue, "fiji"))["0.2.0"].current


async def test_port_release_wins_over_arkitekt_entry(catalogue: Catalogue) -> None:
    await apply(catalogue, URL_A, result(found("sd", "1.0.0", flavours={"cpu": "native"})))
    changes = await apply(
        catalogue,
        URL_A,
        result(
            found("sd", "1.0.0", source="arkitekt", flavours={"vanilla": "ark"}),
            tags=["v1.0.0"],
        ),
    )
    assert changes.changed == []
    release = (await releases_of(catalogue, "sd"))["1.0.0"]
    assert (release.source, [f.image for f in release.flavours]) == ("port", ["native"])
