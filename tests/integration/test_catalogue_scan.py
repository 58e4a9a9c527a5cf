"""Index runs end to end: real git remotes -> indexer -> catalogue, on both databases."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from sqlalchemy import func, select, update
from sqlalchemy.exc import DataError

from port.catalogue import scanning
from port.catalogue.ingest import Changes
from port.catalogue.models import Flavour, IndexRun, Repo
from port.catalogue.queries import app_document, list_apps
from port.catalogue.repos import add_repo
from port.catalogue.scanning import ScanOutcome, scan_repo
from tests.harness import Catalogue
from tests.integration.gitfixtures import MakeRemote, Remote, app_image, app_images_yaml, port_yaml

CATALOGUE_TABLES = ("repos", "apps", "releases", "flavours")


async def register(cat: Catalogue, url: str, **options: Any) -> int:
    async with cat.sessions() as session, session.begin():
        return (await add_repo(session, url, allow_local=True, **options)).id


async def scan(cat: Catalogue, repo_id: int, remote: Remote | None = None) -> ScanOutcome:
    if remote is not None:
        remote.work.push()
    return await scan_repo(cat.sessions, cat.settings, repo_id)


def publish(remote: Remote, tag: str, manifest: str) -> None:
    """Commit ``manifest`` as port.yaml and tag it (moving the tag if it exists)."""
    remote.work.commit(tag, {"port.yaml": manifest})
    remote.work.tag(tag)


async def scanned(cat: Catalogue, remote: Remote) -> int:
    """Register ``remote`` and index it once; return its id."""
    repo_id = await register(cat, remote.url)
    await scan(cat, repo_id, remote)
    return repo_id


async def catalogue_doc(cat: Catalogue) -> dict[str, dict[str, Any]]:
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
    assert [r["version"] for r in releases] == ["0.2.0", "0.1.0"]

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
    assert [(r["version"], r["withdrawn"]) for r in releases] == [
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
    assert [r["version"] for r in app["releases"]] == ["1.0.0"]


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
    assert [(r["version"], r["current"]) for r in releases] == [
        ("0.2.0", True),
        ("0.1.0", False),
    ]

    # The head drops 0.2.0 as well: both now live only in history.
    work.commit("cut more", {path: app_images_yaml(app_image("renamer", "0.3.0"))})
    await scan(catalogue, repo_id, local_remote)
    releases = (await catalogue_doc(catalogue))["renamer"]["releases"]
    assert [(r["version"], r["current"]) for r in releases] == [
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


async def test_deleting_one_of_two_tags_of_a_version_keeps_the_release(
    catalogue: Catalogue, local_remote: Remote
) -> None:
    publish(local_remote, "1.0.0", port_yaml("dup", "1.0.0"))
    work = local_remote.work
    work.tag("v1.0.0")
    repo_id = await register(catalogue, local_remote.url)
    first = await scan(catalogue, repo_id, local_remote)
    assert first.run.added == ["dup 1.0.0"]

    work.delete_tag("1.0.0")  # the tag that released it; v1.0.0 still names the version
    second = await scan(catalogue, repo_id, local_remote)
    assert second.run.withdrawn == []
    assert second.run.changed == ["dup 1.0.0: git_ref"]
    [release] = (await catalogue_doc(catalogue))["dup"]["releases"]
    assert (release["ref"], release["withdrawn"]) == ("v1.0.0", False)


async def test_moved_tag_updates_the_app_description(
    catalogue: Catalogue, local_remote: Remote
) -> None:
    publish(local_remote, "v1.0.0", port_yaml("meta", "1.0.0"))
    repo_id = await scanned(catalogue, local_remote)
    renamed = port_yaml("meta", "1.0.0").replace("name: Meta", "name: Better Name")
    publish(local_remote, "v1.0.0", renamed)
    await scan(catalogue, repo_id, local_remote)
    assert (await catalogue_doc(catalogue))["meta"]["name"] == "Better Name"


async def test_moved_tag_that_releases_something_else_retires_what_it_released(
    catalogue: Catalogue, local_remote: Remote
) -> None:
    publish(local_remote, "v1.0.0", port_yaml("first", "1.0.0"))
    publish(local_remote, "v2.0.0", port_yaml("second", "2.0.0"))
    repo_id = await scanned(catalogue, local_remote)

    publish(local_remote, "v1.0.0", port_yaml("renamed", "1.0.0"))  # another app now
    work = local_remote.work
    work.remove("port.yaml")
    work.commit("no manifest")
    work.tag("v2.0.0")  # now points at a commit without a manifest
    outcome = await scan(catalogue, repo_id, local_remote)
    assert outcome.run.added == ["renamed 1.0.0"]
    assert sorted(outcome.run.withdrawn) == ["first 1.0.0", "second 2.0.0"]
    assert outcome.run.errors == []


async def test_moved_tag_with_a_broken_manifest_keeps_the_last_good_release(
    catalogue: Catalogue, local_remote: Remote
) -> None:
    publish(local_remote, "v1.0.0", port_yaml("keep", "1.0.0"))
    repo_id = await scanned(catalogue, local_remote)
    publish(local_remote, "v1.0.0", "apiVersion: port/v1\napp: {identifier: keep}\n")
    outcome = await scan(catalogue, repo_id, local_remote)
    assert outcome.run.withdrawn == []
    assert [e.ref for e in outcome.run.errors] == ["v1.0.0"]
    [release] = (await catalogue_doc(catalogue))["keep"]["releases"]
    assert release["withdrawn"] is False


async def test_broken_arkitekt_file_at_the_head_keeps_entries_current(
    catalogue: Catalogue, local_remote: Remote
) -> None:
    path = ".arkitekt_next/deployments.yaml"
    local_remote.work.commit("ok", {path: app_images_yaml(app_image("renamer", "0.1.0"))})
    repo_id = await scanned(catalogue, local_remote)
    local_remote.work.commit("typo", {path: "app_images: [\n"})
    outcome = await scan(catalogue, repo_id, local_remote)
    assert [(e.file, e.line) for e in outcome.run.errors] == [(path, 2)]
    [release] = (await catalogue_doc(catalogue))["renamer"]["releases"]
    assert release["current"] is True


async def test_remote_whose_head_names_a_missing_branch(
    catalogue: Catalogue, local_remote: Remote
) -> None:
    # `git init --bare` on an older default leaves HEAD at master; the app pushes main.
    (local_remote.work.bare / "HEAD").write_text("ref: refs/heads/master\n")
    path = ".arkitekt_next/deployments.yaml"
    local_remote.work.commit("ok", {path: app_images_yaml(app_image("renamer", "0.1.0"))})
    repo_id = await register(catalogue, local_remote.url)
    outcome = await scan(catalogue, repo_id, local_remote)
    assert outcome.run.branch == "main"
    assert outcome.run.added == ["renamer 0.1.0"]


async def test_overlong_texts_in_a_manifest_never_break_the_catalogue(
    catalogue: Catalogue, local_remote: Remote
) -> None:
    entry = app_image("long", "1.0.0")
    entry["manifest"] = {**entry["manifest"], "name": "N" * 300, "author": "A" * 5000}
    hostile_key = "k" * 3000
    work = local_remote.work
    work.commit(
        "long",
        {
            ".arkitekt_next/deployments.yaml": app_images_yaml(entry),
            "port.yaml": port_yaml("other", "1.0.0").replace(
                "entrypoint:", f"{hostile_key}: 1\nentrypoint:"
            ),
        },
    )
    work.tag("v1.0.0")
    repo_id = await register(catalogue, local_remote.url)
    outcome = await scan(catalogue, repo_id, local_remote)
    assert outcome.run.status == "succeeded"
    assert outcome.run.added == ["long 1.0.0"]  # informational texts over the limit dropped
    assert (await catalogue_doc(catalogue))["long"]["name"] == "long"
    [error] = outcome.run.errors  # the unknown key, its path clipped to the column
    assert error.ref == "v1.0.0"
    assert len(error.path) <= 1024


async def test_manifest_size_follows_the_setting(
    catalogue: Catalogue, local_remote: Remote
) -> None:
    padding = "#" + "x" * 1023 + "\n"
    big = port_yaml("big", "1.0.0") + padding * 3 * 1024  # 3 MiB of comments
    local_remote.work.commit("big", {"port.yaml": big})
    local_remote.work.tag("v1.0.0")
    repo_id = await register(catalogue, local_remote.url)
    refused = await scan(catalogue, repo_id, local_remote)
    [error] = refused.run.errors
    assert "limit" in error.message

    catalogue.settings.max_manifest_kb = 4096
    local_remote.work.tag("v1.0.0", annotated=True)  # move the tag so it is read again
    accepted = await scan(catalogue, repo_id, local_remote)
    assert accepted.run.added == ["big 1.0.0"]


async def test_a_result_the_database_refuses_ends_in_a_failed_run(
    catalogue: Catalogue, local_remote: Remote, monkeypatch: pytest.MonkeyPatch
) -> None:
    publish(local_remote, "v1.0.0", port_yaml("fiji", "1.0.0"))
    repo_id = await register(catalogue, local_remote.url)

    async def refused(*_args: object) -> Changes:
        raise DataError("INSERT ...", {}, Exception("value too long"))

    monkeypatch.setattr(scanning, "ingest", refused)
    outcome = await scan(catalogue, repo_id, local_remote)
    assert outcome.run.status == "failed"
    assert outcome.run.message == "the index result could not be stored (DataError)"
    monkeypatch.undo()
    retried = await scan(catalogue, repo_id, local_remote)  # nothing was half-written
    assert retried.run.added == ["fiji 1.0.0"]


def _with_image(manifest: str, flavour: str, image: str) -> str:
    doc = yaml.safe_load(manifest)
    doc["flavours"][flavour]["image"] = image
    return yaml.safe_dump(doc, sort_keys=False)


async def test_images_from_the_servers_own_network_are_refused_where_they_are_written(
    catalogue: Catalogue, local_remote: Remote
) -> None:
    """Repro: a manifest image on 127.0.0.1 would make the engine request the host's own
    loopback. Each such flavour is a located error; the rest of the release stands; a
    release with nothing left is not added."""
    work = local_remote.work
    two = port_yaml("napari", "1.0.0", ("cpu", "loop"))
    one = port_yaml("napari", "1.1.0", ("loop",))
    work.commit("1.0.0", {"port.yaml": _with_image(two, "loop", "127.0.0.1:8000/graphql:1")})
    work.tag("v1.0.0")
    work.commit("1.1.0", {"port.yaml": _with_image(one, "loop", "127.0.0.1:8000/graphql:1")})
    work.tag("v1.1.0")
    metadata = app_image("renamer", "0.1.0")
    metadata["image"] = {"imageString": "169.254.169.254/latest:meta-data"}
    work.commit("ark", {".arkitekt_next/deployments.yaml": app_images_yaml(metadata)})
    repo_id = await register(catalogue, local_remote.url)

    outcome = await scan(catalogue, repo_id, local_remote)
    assert outcome.run.added == ["napari 1.0.0"]
    errors = sorted(outcome.run.errors, key=lambda e: e.file)
    assert [(e.file, e.ref, e.path) for e in errors] == [
        (".arkitekt_next/deployments.yaml", errors[0].ref, "image"),
        ("port.yaml", "v1.0.0", "flavours.loop.image"),
        ("port.yaml", "v1.1.0", "flavours.loop.image"),
    ]
    assert "renamer 0.1.0 flavour vanilla: image 169.254.169.254/latest:meta-data" in (
        errors[0].message
    )
    assert "the registry 127.0.0.1:8000 is on this server's own network" in errors[1].message
    doc = await catalogue_doc(catalogue)
    assert set(doc) == {"napari"}
    [release] = doc["napari"]["releases"]
    assert [f["name"] for f in release["flavours"]] == ["cpu"]

    # An admin allows the registry: the next full index keeps the flavour.
    await scan(catalogue, repo_id, local_remote)  # unchanged: nothing re-read
    async with catalogue.sessions() as session, session.begin():
        await session.execute(update(Repo).where(Repo.id == repo_id).values(refs={}))
    allowed = catalogue.settings.model_copy(
        update={"allowed_registries": ["127.0.0.1:8000", "169.254.169.254"]}
    )
    again = await scan_repo(catalogue.sessions, allowed, repo_id)
    assert again.run.errors == []
    doc = await catalogue_doc(catalogue)
    assert set(doc) == {"napari", "renamer"}
    flavours = {r["version"]: [f["name"] for f in r["flavours"]] for r in doc["napari"]["releases"]}
    assert flavours == {"1.1.0": ["loop"], "1.0.0": ["cpu", "loop"]}


async def test_what_an_image_supports_reaches_the_catalogue(
    catalogue: Catalogue, local_remote: Remote
) -> None:
    doc = yaml.safe_load(port_yaml("napari", "1.0.0", ("cpu", "gpu")))
    doc["flavours"]["cpu"]["sandbox"] = {"read_only": True, "non_root": True}
    publish(local_remote, "v1.0.0", yaml.safe_dump(doc, sort_keys=False))
    await scanned(catalogue, local_remote)
    async with catalogue.sessions() as session:
        rows = await session.execute(
            select(Flavour.name, Flavour.read_only, Flavour.non_root).order_by(Flavour.name)
        )
        assert [tuple(row) for row in rows] == [("cpu", True, True), ("gpu", False, False)]


async def test_a_number_too_large_for_the_database_is_an_error_of_its_tag(
    catalogue: Catalogue, local_remote: Remote
) -> None:
    """Repro (issue 16, 5): `memory: 9223372036854775808` made scanRepo answer "Unexpected
    error." (OverflowError on SQLite), the good tags were never indexed, and every poll
    failed again. Now it is a located error of that tag; the rest is indexed."""
    publish(local_remote, "v1.0.0", port_yaml("big", "1.0.0"))
    doc = yaml.safe_load(port_yaml("big", "2.0.0"))
    doc["flavours"]["cpu"]["resources"] = {"memory": 9223372036854775808}
    publish(local_remote, "v2.0.0", yaml.safe_dump(doc, sort_keys=False))
    repo_id = await register(catalogue, local_remote.url)
    outcome = await scan(catalogue, repo_id, local_remote)
    assert outcome.run.status == "succeeded"
    assert outcome.run.added == ["big 1.0.0"]
    [error] = outcome.run.errors
    assert (error.ref, error.path) == ("v2.0.0", "flavours.cpu.resources.memory")
    assert "more than 1 PiB" in error.message


async def test_a_result_the_driver_cannot_bind_is_a_failed_run_not_a_crash(
    catalogue: Catalogue, local_remote: Remote, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Whatever slips past the manifest checks, the run is recorded as failed."""
    publish(local_remote, "v1.0.0", port_yaml("odd", "1.0.0"))
    repo_id = await register(catalogue, local_remote.url)

    async def overflowing(*_args: object, **_kwargs: object) -> None:
        raise OverflowError("Python int too large to convert to SQLite INTEGER")

    monkeypatch.setattr(scanning, "ingest", overflowing)
    outcome = await scan(catalogue, repo_id, local_remote)
    assert outcome.run.status == "failed"
    assert outcome.run.message == "the index result could not be stored (OverflowError)"
