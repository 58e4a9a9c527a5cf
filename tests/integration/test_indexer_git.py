"""The git building blocks: cat-file batches, ls-remote, the mirror and file history."""

from __future__ import annotations

from pathlib import Path

import pytest

from indexer.catfile import CatFileBatch
from indexer.errors import IndexerError
from indexer.history import file_history, is_ancestor
from indexer.mirror import ensure_mirror, ls_remote, mirror_size
from indexer.refs import list_refs, release_tags
from indexer.scan import Limits
from tests.integration.gitfixtures import Remote

pytestmark = pytest.mark.git

LIMITS = Limits(allow_local=True, timeout_seconds=30, max_manifest_bytes=1000)


@pytest.fixture
def mirror(local_remote: Remote) -> Path:
    """A mirror with a few files of different sizes at tag v1 and a subdirectory."""
    work = local_remote.work
    work.commit(
        "files",
        {
            "small.txt": "hello\n",
            "empty.txt": "",
            "binary.bin": b"\0\n\xff" * 100,
            "big.txt": "x" * 5000,
            "dir/nested.txt": "nested\n",
        },
    )
    work.tag("v1.0.0", annotated=True)
    work.push()
    return Path(ensure_mirror(local_remote.url, local_remote.mirror, LIMITS).git_dir)


def test_cat_file_answers_in_order_with_missing_and_large_objects(mirror: Path) -> None:
    with CatFileBatch(mirror, LIMITS) as batch:
        answers = list(
            batch.read_many(
                [
                    "v1.0.0:small.txt",
                    "v1.0.0:nope.txt",
                    "v1.0.0:big.txt",
                    "v1.0.0:empty.txt",
                    "v1.0.0:dir",
                    "v1.0.0:binary.bin",
                    "0" * 40,
                    "v1.0.0:small.txt",
                ]
            )
        )

    small, missing, big, empty, tree, binary, unknown, again = answers
    assert small is not None
    assert (small.data, small.type, small.size) == (b"hello\n", "blob", 6)
    assert missing is None
    assert unknown is None
    assert big is not None
    assert (big.data, big.size) == (None, 5000)  # over max_manifest_bytes: skipped
    assert empty is not None
    assert empty.data == b""
    assert tree is not None
    assert tree.type == "tree"
    assert binary is not None
    assert binary.data == b"\0\n\xff" * 100
    assert again == small


def test_cat_file_is_one_process_for_many_reads(mirror: Path) -> None:
    with CatFileBatch(mirror, LIMITS) as batch:
        first = batch.read("v1.0.0:small.txt")
        process = batch._proc
        second = batch.read("v1.0.0:dir/nested.txt")
        assert batch._proc is process
        many = list(batch.read_many(["v1.0.0:small.txt"] * 3000))
    assert first is not None
    assert second is not None
    assert second.data == b"nested\n"
    assert many == [first] * 3000
    assert batch._proc is None


def test_cat_file_survives_an_abandoned_read(mirror: Path) -> None:
    with CatFileBatch(mirror, LIMITS) as batch:
        answers = batch.read_many(["v1.0.0:small.txt", "v1.0.0:empty.txt", "v1.0.0:big.txt"])
        next(answers)
        answers.close()  # two answers left unread on the pipe
        later = batch.read("v1.0.0:dir/nested.txt")
    assert later is not None
    assert later.data == b"nested\n"


def test_cat_file_refuses_names_that_would_split_the_protocol(mirror: Path) -> None:
    with CatFileBatch(mirror, LIMITS) as batch, pytest.raises(ValueError, match="cannot be sent"):
        batch.read("v1.0.0:small.txt\nHEAD")


def test_ls_remote_resolves_head_and_peels_tags(local_remote: Remote) -> None:
    work = local_remote.work
    commit = work.commit("one")
    work.tag("v1.0.0", annotated=True)
    work.git("branch", "-m", "main", "trunk")
    work.push()
    local_remote.work.git("--git-dir", str(work.bare), "symbolic-ref", "HEAD", "refs/heads/trunk")

    refs = ls_remote(local_remote.url, LIMITS)

    assert refs.head_branch == "trunk"
    assert refs["refs/heads/trunk"] == commit
    assert refs["HEAD"] == commit
    assert refs.peeled["refs/tags/v1.0.0"] == commit
    assert refs["refs/tags/v1.0.0"] != commit  # the tag object


def test_mirror_holds_branches_and_tags_only(local_remote: Remote) -> None:
    work = local_remote.work
    work.commit("one")
    work.tag("v1.0.0")
    work.git("update-ref", "refs/pull/1/head", "HEAD")
    work.push()

    repo = ensure_mirror(local_remote.url, local_remote.mirror, LIMITS)
    refs = list_refs(Path(repo.git_dir), ["refs/"], LIMITS)

    assert sorted(refs) == ["refs/heads/main", "refs/tags/v1.0.0"]
    assert sorted(release_tags(refs, "")) == ["v1.0.0"]
    assert 0 < mirror_size(local_remote.mirror, LIMITS) < 100_000


def test_fetch_prunes_deleted_tags_and_branches(local_remote: Remote) -> None:
    work = local_remote.work
    work.commit("one")
    work.tag("v1.0.0")
    work.git("branch", "feature")
    work.push()
    ensure_mirror(local_remote.url, local_remote.mirror, LIMITS)
    work.delete_tag("v1.0.0")
    work.git("branch", "-D", "feature")
    work.push()

    ensure_mirror(local_remote.url, local_remote.mirror, LIMITS)

    assert sorted(list_refs(local_remote.mirror, ["refs/"], LIMITS)) == ["refs/heads/main"]


def test_a_directory_that_is_not_a_mirror_is_never_removed(local_remote: Remote) -> None:
    local_remote.work.commit("one")
    local_remote.work.push()
    local_remote.mirror.mkdir()
    precious = local_remote.mirror / "notes.txt"
    precious.write_text("mine\n")

    with pytest.raises(IndexerError, match="not a git mirror"):
        ensure_mirror(local_remote.url, local_remote.mirror, LIMITS)
    assert precious.read_text() == "mine\n"


def test_file_history_lists_versions_newest_first(local_remote: Remote) -> None:
    work = local_remote.work
    first = work.commit("a", {"f.yaml": "1\n"})
    work.commit("unrelated", {"g.yaml": "x\n"})
    second = work.commit("b", {"f.yaml": "2\n"})
    work.commit("revert", {"f.yaml": "1\n"})
    work.remove("f.yaml")
    work.commit("delete")
    head = work.commit("c", {"f.yaml": "3\n"})
    work.push()
    git_dir = Path(ensure_mirror(local_remote.url, local_remote.mirror, LIMITS).git_dir)

    versions = file_history(git_dir, head, ["f.yaml"], LIMITS)
    since = file_history(git_dir, head, ["f.yaml"], LIMITS, since=second)

    # "1" appears twice; it is listed once, at the newer (revert) commit.
    assert len(versions) == 3
    assert versions[0].commit == head
    assert first not in [v.commit for v in versions]
    assert len(since) == 2
    assert since[0].commit == head
    assert is_ancestor(git_dir, first, head, LIMITS)
    assert not is_ancestor(git_dir, head, first, LIMITS)
    assert not is_ancestor(git_dir, "not-a-sha", head, LIMITS)
    assert not is_ancestor(git_dir, "1" * 40, head, LIMITS)


def test_cat_file_answers_one_batch_at_a_time(mirror: Path) -> None:
    with CatFileBatch(mirror, LIMITS) as batch:
        outer = batch.read_many(["v1.0.0:small.txt", "v1.0.0:empty.txt"])
        assert next(outer) is not None
        with pytest.raises(RuntimeError, match="one read_many at a time"):
            batch.read("v1.0.0:small.txt")
        last = next(outer)
        assert last is not None
        assert last.data == b""
