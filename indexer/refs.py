"""The refs of a local mirror, listed by one ``git for-each-ref``, and the release tags.

One process lists every tag with the object it points at and, for annotated tags, the
commit behind it (``%(*objectname)``), so a repository with a thousand tags costs the
same one call as a repository with one.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from indexer.errors import IndexerError
from indexer.gitcmd import run_git
from indexer.limits import Limits
from indexer.result import TagInfo
from indexer.tags import parse_tag

TAGS = "refs/tags/"
HEADS = "refs/heads/"
CHANNELS = "refs/channels/"  # an OCI repository's followed channels (indexer/oci.py)
_FORMAT = "%(refname)%00%(objectname)%00%(objecttype)%00%(*objectname)%00%(*objecttype)"


@dataclass(frozen=True, slots=True)
class LocalRef:
    """One ref of the mirror. ``target`` is what it finally names (a tag's commit)."""

    name: str  # full name, "refs/tags/v1.2.3"
    sha: str  # the object the ref points at (a tag object for annotated tags)
    target: str
    target_type: str


def list_refs(git_dir: Path, patterns: Iterable[str], limits: Limits) -> dict[str, LocalRef]:
    """Refs under ``patterns`` (``refs/tags/``, ``refs/heads/main``), by full name."""
    out = run_git(
        ["for-each-ref", f"--format={_FORMAT}", *patterns],
        limits=limits,
        what="for-each-ref",
        cwd=git_dir,
    )
    if not out.ok:
        raise IndexerError(f"cannot list the refs of mirror {git_dir}: {out.message()}")
    refs: dict[str, LocalRef] = {}
    for line in out.stdout.decode("utf-8", "replace").splitlines():
        name, sha, kind, peeled, peeled_kind = line.split("\0")
        if peeled:
            refs[name] = LocalRef(name, sha, peeled, peeled_kind)
        else:
            refs[name] = LocalRef(name, sha, sha, kind)
    return refs


def release_tags(refs: Mapping[str, LocalRef], prefix: str) -> dict[str, TagInfo]:
    """Tags that name a semver version and point (directly or annotated) at a commit.

    Tags of trees or blobs, and tags of tags, are not releases.
    """
    tags: dict[str, TagInfo] = {}
    for ref in refs.values():
        if not ref.name.startswith(TAGS) or ref.target_type != "commit":
            continue
        name = ref.name[len(TAGS) :]
        version = parse_tag(name, prefix)
        if version is not None:
            tags[name] = TagInfo(name=name, version=version, commit=ref.target)
    return tags


def advertised_tags(
    refs: Mapping[str, str], peeled: Mapping[str, str], prefix: str
) -> dict[str, TagInfo]:
    """Release tags from what ``ls-remote`` advertised (no mirror needed)."""
    tags: dict[str, TagInfo] = {}
    for ref, sha in refs.items():
        if not ref.startswith(TAGS):
            continue
        name = ref[len(TAGS) :]
        version = parse_tag(name, prefix)
        if version is not None:
            tags[name] = TagInfo(name=name, version=version, commit=peeled.get(ref, sha))
    return tags
