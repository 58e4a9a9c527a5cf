"""Index runs end to end: real git remotes -> indexer -> catalogue, on both databases."""

from __future__ import annotations

from sqlalchemy import func, select

from port.catalogue.models import IndexRun
from port.catalogue.queries import app_document, list_apps
from port.catalogue.repos import add_repo
from port.catalogue.scanning import ScanOutcome, scan_repo
from tests.conftest import Catalogue
from tests.integration.conftest import MakeRemote, Remote
from tests.integration.gitfixtures import app_image, app_images_yaml, port_yaml

CATALOGUE_TABLES = ("repos", "apps", "releases", "flavours")


async def register(cat: Catalogue, url: str, **options: str) -> int:
    async with cat.sessions() as session, session.begin():
        return (await add_repo(session, url, allow_local=True, **options)).id


async def scan(cat: Catalogue, repo_id: int, remote: Remote | None = None) -> ScanOutcome:
    if remote is not None:
        remote.work.push()
    return await scan_repo(cat.sessions, cat.settings, repo_id)


async def catalogue_doc(cat: Catalogue) -> dict[str, dict[str, object]]:
    async with cat.sessions() as session:
        return {a.identifier: app_document(a) for a in await list_apps(session)}


async def test_tags_added_moved_deleted_between_scans(
    catalogue: Catalogue, make_remote: MakeRemote
) -> None:
    remote = make_remote()
    work = remote.work
    work.commit("0.1.0", {"port.yaml": port_yaml("stardist", "0.1.0")})
    work.tag("v0.1.0")
    work.commit("0.2.0", {"port.yaml": port_yaml("stardist", "0.2.0", ("cuda", "cpu"))})
    work.tag("v0.2.0")
    repo_id = await register(catalogue, remote.url)

    first = await scan(catalogue, repo_id, remote)
    assert first.run.status == "succeeded"
    assert sorted(first.run.added) == ["stardist 0.1.0", "stardist 0.2.0"]
    releases = (await catalogue_doc(catalogue))["stardist"]["releases"]
    assert [r["version"] for r in releases] == ["0.2.0", "0.1.0"]  # type: ignore[index]

    # Nothing moved: an unchanged run that writes nothing to the catalogue.
    catalogue.statements.clear()
    again = await scan(catalogue, repo_id, remote)
    assert (again.run.status, again.run.blobs_read) == ("unchanged", 0)
    assert catalogue.writes(*CATALOGUE_TABLES) == []

    # v0.2.0 moves to a commit with another image; v0.1.0 vanishes; v0.3.0 appears.
    work.commit("rebuild", {"port.yaml": port_yaml("stardist", "0.2.0", ("cpu",))})
    work.tag("v0.2.0")
    work.delete_tag("v0.1.0")
    work.commit("0.3.0", {"port.yaml": port_yaml("stardist", "0.3.0")})
    work.tag("v0.3.0")
    third = await scan(catalogue, repo_id, remote)
    assert third.run.added == ["stardist 0.3.0"]
    assert third.run.withdrawn == ["stardist 0.1.0"]
    [changed] = third.run.changed
    assert changed.startswith("stardist 0.2.0: commit")
    assert "flavours.cuda removed" in changed
    releases = (await catalogue_doc(catalogue))["stardist"]["releases"]
    assert [(r["version"], r["withdrawn"]) for r in releases] == [  # type: ignore[index]
        ("0.3.0", False),
        ("0.2.0", False),
        ("0.1.0", True),
    ]


async def test_broken_manifest_is_an_error_of_the_run(
    catalogue: Catalogue, local_remote: Remote
) -> None:
    work = local_remote.work
    work.commit("good", {"port.yaml": port_yaml("napari", "1.0.0")})
    work.tag("v1.0.0")
    work.commit("bad", {"port.yaml": "apiVersion: port/v1\napp: [not, a, mapping\n"})
    work.tag("v1.1.0")
    repo_id = await register(catalogue, local_remote.url)
    outcome = await scan(catalogue, repo_id, local_remote)
    assert outcome.run.status == "succeeded"
    assert outcome.run.added == ["napari 1.0.0"]
    [error] = outcome.run.errors
    assert (error.file, error.ref, error.line) == ("port.yaml", "v1.1.0", 3)


async def test_unreachable_remote_fails_the_run_and_keeps_the_catalogue(
    catalogue: Catalogue, local_remote: Remote, tmp_path: object
) -> None:
    work = local_remote.work
    work.commit("one", {"port.yaml": port_yaml("fiji", "1.0.0")})
    work.tag("v1.0.0")
    repo_id = await register(catalogue, local_remote.url)
    await scan(catalogue, repo_id, local_remote)

    local_remote.work.bare.rename(local_remote.work.bare.with_name("gone.git"))
    failed = await scan(catalogue, repo_id)
    assert failed.changes is None
    assert failed.run.status == "failed"
    assert failed.run.message
    assert "fiji" in await catalogue_doc(catalogue)
    async with catalogue.sessions() as session:
        statuses = list(await session.scalars(select(IndexRun.status).order_by(IndexRun.id)))
    assert statuses == ["succeeded", "failed"]


async def test_identifier_collision_between_two_real_repos(
    catalogue: Catalogue, make_remote: MakeRemote
) -> None:
    first, second = make_remote(), make_remote()
    for remote, version in ((first, "1.0.0"), (second, "2.0.0")):
        remote.work.commit("release", {"port.yaml": port_yaml("stardist", version)})
        remote.work.tag(f"v{version}")
    first_id = await register(catalogue, first.url)
    second_id = await register(catalogue, second.url)
    await scan(catalogue, first_id, first)
    outcome = await scan(catalogue, second_id, second)
    assert outcome.run.added == []
    assert [e.path for e in outcome.run.errors] == ["app.identifier"]
    app = (await catalogue_doc(catalogue))["stardist"]
    assert app["repo"] == first.url
    assert [r["version"] for r in app["releases"]] == ["1.0.0"]  # type: ignore[index]


async def test_arkitekt_history_cut_back_keeps_old_entries(
    catalogue: Catalogue, local_remote: Remote
) -> None:
    work = local_remote.work
    path = ".arkitekt_next/deployments.yaml"
    work.commit("0.1.0", {path: app_images_yaml(app_image("renamer", "0.1.0"))})
    work.commit(
        "0.2.0",
        {path: app_images_yaml(app_image("renamer", "0.1.0"), app_image("renamer", "0.2.0"))},
    )
    work.commit("cut", {path: app_images_yaml(app_image("renamer", "0.2.0"))})
    repo_id = await register(catalogue, local_remote.url)
    outcome = await scan(catalogue, repo_id, local_remote)
    assert sorted(outcome.run.added) == ["renamer 0.1.0", "renamer 0.2.0"]
    releases = (await catalogue_doc(catalogue))["renamer"]["releases"]
    assert [(r["version"], r["current"]) for r in releases] == [  # type: ignore[index]
        ("0.2.0", True),
        ("0.1.0", False),
    ]

    # The head drops 0.2.0 as well: both now live only in history.
    work.commit("cut more", {path: app_images_yaml(app_image("renamer", "0.3.0"))})
    await scan(catalogue, repo_id, local_remote)
    releases = (await catalogue_doc(catalogue))["renamer"]["releases"]
    assert [(r["version"], r["current"]) for r in releases] == [  # type: ignore[index]
        ("0.3.0", True),
        ("0.2.0", False),
        ("0.1.0", False),
    ]


async def test_tag_prefix_and_manifest_path(catalogue: Catalogue, local_remote: Remote) -> None:
    work = local_remote.work
    work.commit("mono", {"apps/sd/port.yaml": port_yaml("sd", "1.0.0")})
    work.tag("sd-v1.0.0")
    work.tag("v9.9.9")  # not this app's tag: the prefix filters it out
    repo_id = await register(
        catalogue, local_remote.url, tag_prefix="sd-", manifest_path="apps/sd/port.yaml"
    )
    outcome = await scan(catalogue, repo_id, local_remote)
    assert outcome.run.added == ["sd 1.0.0"]
    async with catalogue.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(IndexRun)) == 1
