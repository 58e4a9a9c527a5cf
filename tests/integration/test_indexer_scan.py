"""Index runs against real remotes: semver tags, port.yaml, and incremental rescans.

Every test here runs twice, over ``file://`` and over ``git daemon`` (see conftest).
"""

from __future__ import annotations

import shutil

import pytest

from indexer.errors import BranchNotFoundError
from indexer.result import IndexResult, Previous
from indexer.scan import Limits, index_repo
from tests.integration.gitfixtures import MakeRemote, Remote, port_yaml

pytestmark = pytest.mark.git


def versions(result: IndexResult) -> list[str]:
    return sorted(f.spec.version for f in result.releases)


def released(remote: Remote) -> IndexResult:
    """A remote with a tag before any manifest, two releases and non-release tags."""
    work = remote.work
    work.commit("readme", {"README.md": "hello\n"})
    work.tag("v0.9.0")  # no port.yaml at this commit: not a release, not an error
    work.commit("first", {"port.yaml": port_yaml("hello")})
    work.tag("v1.0.0")
    work.tag("latest")
    work.commit("second", {"port.yaml": port_yaml("hello", "1.1.0")})
    work.tag("1.1.0", annotated=True)
    work.tag("v2.0")  # not semver
    return remote.scan()


def test_first_scan_reads_every_semver_tag(remote: Remote) -> None:
    result = released(remote)

    assert not result.unchanged
    assert result.fetched
    assert result.branch == "main"
    assert result.head == remote.work.git("rev-parse", "HEAD")
    assert sorted(result.tags) == ["1.1.0", "v0.9.0", "v1.0.0"]
    assert result.tags["1.1.0"].commit == remote.work.git("rev-parse", "1.1.0^{commit}")
    assert result.tags["1.1.0"].version == "1.1.0"
    assert versions(result) == ["1.0.0", "1.1.0"]
    assert result.errors == []
    assert result.blobs_read == 2
    assert {"refs/tags/latest", "refs/tags/v2.0", "refs/heads/main"} <= result.refs.keys()
    assert not any(name.endswith("^{}") for name in result.refs)
    first = next(f for f in result.releases if f.spec.version == "1.0.0")
    assert (first.source, first.file, first.ref, first.current) == (
        "port",
        "port.yaml",
        "v1.0.0",
        True,
    )
    assert first.commit == remote.work.git("rev-parse", "v1.0.0")
    assert first.spec.app.identifier == "hello"
    assert [f.name for f in first.spec.flavours] == ["cpu"]


def test_unchanged_rescan_fetches_and_parses_nothing(remote: Remote) -> None:
    first = released(remote)
    shutil.rmtree(remote.mirror)  # a fetch would have to recreate it

    again = remote.scan(first)

    assert again.unchanged
    assert not again.fetched
    assert again.blobs_read == 0
    assert again.releases == []
    assert again.arkitekt_head is None
    assert not remote.mirror.exists()
    assert (again.branch, again.head, again.refs) == (first.branch, first.head, first.refs)
    assert again.tags == first.tags


def test_rescan_after_a_new_tag_parses_only_that_tag(remote: Remote) -> None:
    first = released(remote)
    remote.work.commit("third", {"port.yaml": port_yaml("hello", "1.2.0")})
    remote.work.tag("v1.2.0")

    again = remote.scan(first)

    assert not again.unchanged
    assert again.fetched
    assert again.blobs_read == 1
    assert versions(again) == ["1.2.0"]
    assert sorted(again.tags) == ["1.1.0", "v0.9.0", "v1.0.0", "v1.2.0"]


def test_moved_tag_is_parsed_again(remote: Remote) -> None:
    first = released(remote)
    remote.work.commit("fix", {"port.yaml": port_yaml("hello", "1.0.0", ("cpu", "cuda"))})
    remote.work.tag("v1.0.0")  # --force: moves it

    again = remote.scan(first)

    assert again.blobs_read == 1
    assert versions(again) == ["1.0.0"]
    (moved,) = again.releases
    assert [f.name for f in moved.spec.flavours] == ["cpu", "cuda"]
    assert moved.commit == remote.work.git("rev-parse", "HEAD")
    assert again.tags["v1.0.0"].commit == moved.commit


def test_moved_annotated_tag_is_parsed_again(remote: Remote) -> None:
    first = released(remote)
    remote.work.commit("fix", {"port.yaml": port_yaml("hello", "1.1.0", ("gpu",))})
    remote.work.tag("1.1.0", annotated=True)

    again = remote.scan(first)

    assert [f.name for r in again.releases for f in r.spec.flavours] == ["gpu"]


def test_deleted_tag_is_absent_from_tags(remote: Remote) -> None:
    first = released(remote)
    remote.work.delete_tag("v1.0.0")

    again = remote.scan(first)

    assert not again.unchanged
    assert sorted(again.tags) == ["1.1.0", "v0.9.0"]
    assert "refs/tags/v1.0.0" not in again.refs
    assert again.blobs_read == 0
    assert again.releases == []


def test_broken_manifest_is_a_located_error_and_others_still_count(remote: Remote) -> None:
    work = remote.work
    work.commit("one", {"port.yaml": port_yaml("hello", "1.0.0")})
    work.tag("v1.0.0")
    work.commit("broken", {"port.yaml": "apiVersion: port/v1\napp:\n  identifier: [unclosed\n"})
    work.tag("v1.1.0")
    work.commit("three", {"port.yaml": port_yaml("hello", "1.2.0")})
    work.tag("v1.2.0")

    result = remote.scan()

    assert versions(result) == ["1.0.0", "1.2.0"]
    (error,) = result.errors
    assert (error.file, error.ref) == ("port.yaml", "v1.1.0")
    assert error.line is not None


def test_version_field_must_match_the_tag(remote: Remote) -> None:
    remote.work.commit("one", {"port.yaml": port_yaml("hello", "9.9.9")})
    remote.work.tag("v1.0.0")

    result = remote.scan()

    assert result.releases == []
    (error,) = result.errors
    assert error.ref == "v1.0.0"
    assert "9.9.9" in error.message


def test_tag_prefix_selects_one_apps_tags(remote: Remote) -> None:
    work = remote.work
    work.commit("one", {"port.yaml": port_yaml("stardist", "1.0.0")})
    work.tag("stardist-v1.0.0")
    work.commit("two", {"port.yaml": port_yaml("stardist", "1.1.0")})
    work.tag("stardist-1.1.0")
    work.tag("v3.0.0")  # another app's tag in the same repository
    work.tag("napari-v1.1.0")

    result = remote.scan(tag_prefix="stardist-")

    assert sorted(result.tags) == ["stardist-1.1.0", "stardist-v1.0.0"]
    assert versions(result) == ["1.0.0", "1.1.0"]
    assert {f.ref for f in result.releases} == {"stardist-v1.0.0", "stardist-1.1.0"}


def test_manifest_path_is_configurable(remote: Remote) -> None:
    remote.work.commit("one", {"deploy/port.yaml": port_yaml("hello", "1.0.0")})
    remote.work.tag("v1.0.0")

    result = remote.scan(manifest_path="./deploy/port.yaml")

    assert versions(result) == ["1.0.0"]
    assert result.releases[0].file == "deploy/port.yaml"


def test_two_tags_of_one_version_release_it_once(remote: Remote) -> None:
    remote.work.commit("one", {"port.yaml": port_yaml("hello", "1.0.0")})
    remote.work.tag("v1.0.0")
    remote.work.tag("1.0.0")

    result = remote.scan()

    assert [f.ref for f in result.releases] == ["1.0.0"]
    (error,) = result.errors
    assert error.ref == "v1.0.0"
    assert "already releases" in error.message
    assert sorted(result.tags) == ["1.0.0", "v1.0.0"]


def test_oversized_manifest_is_an_error(remote: Remote) -> None:
    padding = "# " + "x" * 4000 + "\n"
    remote.work.commit("big", {"port.yaml": padding + port_yaml("hello", "1.0.0")})
    remote.work.tag("v1.0.0")
    remote.work.commit("small", {"port.yaml": port_yaml("hello", "1.1.0")})
    remote.work.tag("v1.1.0")
    limits = Limits(
        allow_local=remote.limits.allow_local, timeout_seconds=30, max_manifest_bytes=2000
    )

    result = remote.scan(limits=limits)

    assert versions(result) == ["1.1.0"]
    (error,) = result.errors
    assert error.ref == "v1.0.0"
    assert "over the limit" in error.message


def test_configured_branch_is_indexed(remote: Remote) -> None:
    remote.work.commit("main", {"README.md": "main\n"})
    remote.work.git("checkout", "--quiet", "-b", "stable")
    stable = remote.work.commit("stable", {"README.md": "stable\n"})
    remote.work.git("checkout", "--quiet", "main")

    result = remote.scan(branch="stable")

    assert (result.branch, result.head) == ("stable", stable)


def test_missing_branch_raises(remote: Remote) -> None:
    remote.work.commit("main", {"README.md": "main\n"})

    with pytest.raises(BranchNotFoundError, match="nope"):
        remote.scan(branch="nope")


def test_default_branch_follows_the_remote_head(remote: Remote) -> None:
    remote.work.commit("main", {"README.md": "main\n"})
    remote.work.git("branch", "trunk")
    remote.work.push()
    remote.work.git("--git-dir", str(remote.work.bare), "symbolic-ref", "HEAD", "refs/heads/trunk")

    result = remote.scan()

    assert result.branch == "trunk"


def test_empty_remote_gives_an_empty_result(remote: Remote) -> None:
    result = index_repo(remote.spec(), remote.mirror, None, remote.limits)

    assert (result.head, result.releases, result.tags, result.errors) == (None, [], {}, [])
    again = index_repo(remote.spec(), remote.mirror, Previous(), remote.limits)
    assert again.unchanged


def test_progress_reports_each_stage(remote: Remote) -> None:
    remote.work.commit("one", {"port.yaml": port_yaml("hello", "1.0.0")})
    remote.work.tag("v1.0.0")
    remote.work.push()
    seen: list[tuple[str, int, int]] = []

    index_repo(remote.spec(), remote.mirror, None, remote.limits, lambda *a: seen.append(a))

    stages = [stage for stage, _, _ in seen]
    assert stages[0] == "ls-remote"
    assert "fetch" in stages
    assert seen[-1][0] == "read"
    assert seen[-1][1] == seen[-1][2]


def test_mirror_damage_is_repaired_by_a_fresh_clone(make_remote: MakeRemote) -> None:
    remote = make_remote()
    remote.work.commit("one", {"port.yaml": port_yaml("hello", "1.0.0")})
    remote.work.tag("v1.0.0")
    remote.scan()
    (remote.mirror / "config").write_text("[[[ not a git config\n")
    remote.work.commit("two", {"port.yaml": port_yaml("hello", "1.1.0")})
    remote.work.tag("v1.1.0")

    result = remote.scan()

    assert versions(result) == ["1.0.0", "1.1.0"]
