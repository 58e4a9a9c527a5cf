"""Arkitekt deployment files: every shape, read at the head and through their history."""

from __future__ import annotations

import pytest

from indexer.result import FoundRelease, IndexResult
from tests.integration.gitfixtures import (
    Remote,
    app_image,
    app_images_yaml,
    deployment,
    deployments_yaml,
    port_yaml,
)

pytestmark = pytest.mark.git

NEXT = ".arkitekt_next/deployments.yaml"
OLD = ".arkitekt/deployments.yaml"


def by_key(result: IndexResult) -> dict[tuple[str, str, str], FoundRelease]:
    """Found releases by (identifier, version, flavour)."""
    return {
        (f.spec.app.identifier, f.spec.version, flavour.name): f
        for f in result.releases
        for flavour in f.spec.flavours
    }


def image_of(found: FoundRelease, flavour: str) -> str:
    return next(f.image for f in found.spec.flavours if f.name == flavour)


SHAPES = {
    "arkitekt_next app_images": (
        NEXT,
        app_images_yaml(app_image("renamer", "0.0.1"), app_image("renamer", "0.0.1", "cuda")),
    ),
    "arkitekt_next deployments": (
        NEXT,
        deployments_yaml(deployment("renamer", "0.0.1"), deployment("renamer", "0.0.1", "cuda")),
    ),
    "arkitekt deployments": (
        OLD,
        deployments_yaml(deployment("renamer", "0.0.1"), deployment("renamer", "0.0.1", "cuda")),
    ),
}


@pytest.mark.parametrize("shape", SHAPES)
def test_each_arkitekt_shape_is_read_at_the_head(remote: Remote, shape: str) -> None:
    path, text = SHAPES[shape]
    head = remote.work.commit("deploy", {path: text})

    result = remote.scan()

    assert result.errors == []
    (found,) = result.releases
    assert (found.source, found.file, found.ref, found.commit) == ("arkitekt", path, "main", head)
    assert found.current
    assert found.spec.version == "0.0.1"
    assert [f.name for f in found.spec.flavours] == ["vanilla", "cuda"]
    assert result.arkitekt_head == frozenset({("renamer", "0.0.1")})


def test_entries_cut_from_the_head_stay_as_not_current(remote: Remote) -> None:
    work = remote.work
    old = work.commit("two builds", {NEXT: app_images_yaml(app_image("renamer", "0.0.1"))})
    work.commit(
        "three builds",
        {NEXT: app_images_yaml(app_image("renamer", "0.0.1"), app_image("renamer", "0.0.2"))},
    )
    work.commit("cut back", {NEXT: app_images_yaml(app_image("renamer", "0.0.3"))})

    result = remote.scan()

    found = by_key(result)
    assert sorted(found) == [
        ("renamer", "0.0.1", "vanilla"),
        ("renamer", "0.0.2", "vanilla"),
        ("renamer", "0.0.3", "vanilla"),
    ]
    assert found[("renamer", "0.0.3", "vanilla")].current
    assert found[("renamer", "0.0.3", "vanilla")].ref == "main"
    assert not found[("renamer", "0.0.2", "vanilla")].current
    assert not found[("renamer", "0.0.1", "vanilla")].current
    # Each build is reported where it was last seen: the newest commit holding it.
    assert found[("renamer", "0.0.1", "vanilla")].commit != old
    assert result.arkitekt_head == frozenset({("renamer", "0.0.3")})
    assert result.errors == []


def test_head_wins_then_the_newest_history(remote: Remote) -> None:
    work = remote.work
    work.commit("gpu build", {NEXT: app_images_yaml(app_image("seg", "1.0.0", "gpu", build="1"))})
    work.commit(
        "cpu build",
        {NEXT: app_images_yaml(app_image("seg", "1.0.0", "cpu", build="2"))},
    )
    work.commit(
        "rebuild cpu",
        {NEXT: app_images_yaml(app_image("seg", "1.0.0", "cpu", build="3"))},
    )

    result = remote.scan()

    found = by_key(result)
    assert image_of(found[("seg", "1.0.0", "cpu")], "cpu").endswith("-b3")
    # A flavour only in history belongs to a release that is at the head: current.
    assert found[("seg", "1.0.0", "gpu")].current
    assert len([f for f in result.releases if f.spec.version == "1.0.0"]) == 2


def test_arkitekt_next_is_read_before_arkitekt(remote: Remote) -> None:
    remote.work.commit(
        "both",
        {
            NEXT: app_images_yaml(app_image("seg", "1.0.0", build="next")),
            OLD: deployments_yaml(deployment("seg", "1.0.0"), deployment("seg", "0.9.0")),
        },
    )

    result = remote.scan()

    found = by_key(result)
    assert image_of(found[("seg", "1.0.0", "vanilla")], "vanilla").endswith("-bnext")
    assert found[("seg", "0.9.0", "vanilla")].file == OLD
    assert found[("seg", "0.9.0", "vanilla")].current
    assert result.arkitekt_head == frozenset({("seg", "1.0.0"), ("seg", "0.9.0")})


def test_native_release_beats_arkitekt_entry(remote: Remote) -> None:
    remote.work.commit(
        "both",
        {
            "port.yaml": port_yaml("seg", "1.0.0"),
            NEXT: app_images_yaml(app_image("seg", "1.0.0"), app_image("seg", "0.9.0")),
        },
    )
    remote.work.tag("v1.0.0")

    result = remote.scan()

    sources = {(f.spec.version, f.source) for f in result.releases}
    assert sources == {("1.0.0", "port"), ("0.9.0", "arkitekt")}


def test_rescan_reads_only_new_history(remote: Remote) -> None:
    work = remote.work
    work.commit("a", {NEXT: app_images_yaml(app_image("seg", "0.1.0"))})
    work.commit("b", {NEXT: app_images_yaml(app_image("seg", "0.1.0"), app_image("seg", "0.2.0"))})
    first = remote.scan()
    assert first.blobs_read == 2  # the head, and the one older version of the file

    work.commit("c", {NEXT: app_images_yaml(app_image("seg", "0.3.0"))})
    work.commit("unrelated", {"README.md": "hi\n"})
    work.commit("d", {NEXT: app_images_yaml(app_image("seg", "0.4.0"))})
    again = remote.scan(first)

    # Head file, plus commit c; commit d's blob is the head's and is not parsed twice.
    assert again.blobs_read == 2
    found = by_key(again)
    assert sorted(found) == [("seg", "0.3.0", "vanilla"), ("seg", "0.4.0", "vanilla")]
    assert found[("seg", "0.4.0", "vanilla")].current
    assert not found[("seg", "0.3.0", "vanilla")].current
    assert again.arkitekt_head == frozenset({("seg", "0.4.0")})


def test_new_tag_without_head_move_does_not_reread_arkitekt(remote: Remote) -> None:
    work = remote.work
    work.commit("a", {NEXT: app_images_yaml(app_image("seg", "0.1.0"))})
    work.commit("b", {"port.yaml": port_yaml("tool", "1.0.0")})
    first = remote.scan()
    work.tag("v1.0.0")

    again = remote.scan(first)

    assert again.arkitekt_head is None
    assert [(f.source, f.spec.version) for f in again.releases] == [("port", "1.0.0")]


def test_force_push_reads_the_whole_history_again(remote: Remote) -> None:
    work = remote.work
    base = work.commit("a", {NEXT: app_images_yaml(app_image("seg", "0.1.0"))})
    work.commit("b", {NEXT: app_images_yaml(app_image("seg", "0.2.0"))})
    first = remote.scan()
    work.git("reset", "--quiet", "--hard", base)
    work.commit("b'", {NEXT: app_images_yaml(app_image("seg", "0.2.1"))})

    again = remote.scan(first)

    found = by_key(again)
    assert sorted(found) == [("seg", "0.1.0", "vanilla"), ("seg", "0.2.1", "vanilla")]
    assert again.arkitekt_head == frozenset({("seg", "0.2.1")})


def test_history_errors_are_reported_once(remote: Remote) -> None:
    bad = app_image("seg", "latest")  # not semver: an error of this entry only
    work = remote.work
    work.commit("a", {NEXT: app_images_yaml(bad, app_image("seg", "0.1.0"))})
    work.commit("b", {NEXT: app_images_yaml(bad, app_image("seg", "0.2.0"))})
    work.commit("c", {NEXT: app_images_yaml(bad, app_image("seg", "0.3.0"))})

    result = remote.scan()

    assert len(result.releases) == 3
    (error,) = result.errors
    assert (error.file, error.ref) == (NEXT, "main")
    assert "latest" in error.message


def test_broken_file_in_history_is_located_and_the_rest_counts(remote: Remote) -> None:
    work = remote.work
    work.commit("a", {NEXT: app_images_yaml(app_image("seg", "0.1.0"))})
    broken = work.commit("oops", {NEXT: "app_images: [ {unclosed\n"})
    work.commit("fixed", {NEXT: app_images_yaml(app_image("seg", "0.2.0"))})

    result = remote.scan()

    assert sorted(by_key(result)) == [("seg", "0.1.0", "vanilla"), ("seg", "0.2.0", "vanilla")]
    (error,) = result.errors
    assert (error.file, error.ref) == (NEXT, broken)
    assert error.line is not None


def test_deleted_arkitekt_file_empties_the_head(remote: Remote) -> None:
    work = remote.work
    work.commit("a", {NEXT: app_images_yaml(app_image("seg", "0.1.0"))})
    first = remote.scan()
    work.remove(NEXT)
    work.commit("gone")

    again = remote.scan(first)

    assert again.arkitekt_head == frozenset()
    assert again.releases == []
