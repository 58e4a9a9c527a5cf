"""One index run of one repository: remote refs in, ``IndexResult`` out.

The cost model drives the shape. A poll must be cheap, so the run starts with one
``git ls-remote`` and stops there when no tag and not the branch moved since ``previous``
(no fetch, no parse). Otherwise it fetches the mirror, lists its refs with one
``for-each-ref`` and reads exactly the manifests that can have changed, all through one
``cat-file --batch`` process:

- ``port.yaml`` at each semver tag that is new or moved (compared with
  ``previous.refs``): a tag without the file is not a release and is skipped silently;
- when the branch head moved: the Arkitekt files at the head (giving ``arkitekt_head``)
  and every version of them in commits since the previous head (all commits when the
  previous head is not an ancestor, e.g. after a force-push), see ``indexer.arkitekt``.

Problems inside manifests are ``ManifestError`` values on the result; only problems with
the remote (URL, reachability, time, size) raise ``IndexerError``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from indexer.arkitekt import ARKITEKT_FILES, ArkitektMerge
from indexer.catfile import CatFileBatch, GitObject
from indexer.errors import BranchNotFoundError
from indexer.history import FileVersion, file_history, is_ancestor
from indexer.limits import Budget, Limits, describe_size
from indexer.logos import read_logos
from indexer.mirror import RemoteRefs, ls_remote, sync_mirror
from indexer.parsing import RunParser
from indexer.paths import check_manifest_path
from indexer.refs import HEADS, TAGS, LocalRef, advertised_tags, list_refs, release_tags
from indexer.result import FoundRelease, IndexResult, Previous, RepoSpec, TagInfo
from indexer.tags import parse_tag
from indexer.urls import redact
from manifests.errors import ManifestError

__all__ = ["Limits", "Progress", "check_manifest_path", "index_repo"]

log = logging.getLogger(__name__)

Progress = Callable[[str, int, int], None]
"""``progress(stage, done, total)``; stages: "ls-remote" (0/1, 1/1), "fetch" (bytes of
the mirror on disk while git downloads / the size limit), "read" (manifests read / to
read)."""


@dataclass(frozen=True, slots=True)
class _Read:
    """One manifest blob to read, and how to treat it."""

    kind: Literal["head", "history", "tag"]
    rev: str  # what cat-file is asked for
    path: str
    ref: str  # tag name, branch name or commit sha, as errors name it
    commit: str
    tag: TagInfo | None = None


def index_repo(
    repo: RepoSpec,
    mirror_dir: Path,
    previous: Previous | None = None,
    limits: Limits = Limits(),  # noqa: B008 - frozen, so one shared default is safe
    progress: Progress | None = None,
) -> IndexResult:
    """Index ``repo`` using the bare mirror at ``mirror_dir`` (created when missing).

    ``previous`` is what the last successful run of the same RepoSpec saw; with it, only
    what moved is fetched and parsed. Pass None (or an empty Previous) after changing
    the spec's manifest path or tag prefix, so everything is read again.
    """
    report = progress or _no_progress
    manifest_path = check_manifest_path(repo.manifest_path)
    report("ls-remote", 0, 1)
    remote = ls_remote(repo.url, limits)
    report("ls-remote", 1, 1)
    branch = _branch(repo, remote)
    remote_head = remote.get(HEADS + branch) if branch else None
    if previous is not None and _unchanged(previous, remote, remote_head):
        log.info("%s: no ref moved since the last run", redact(repo.url))
        return IndexResult(
            repo=repo,
            branch=branch,
            head=remote_head,
            refs=dict(remote),
            unchanged=True,
            tags=advertised_tags(remote, remote.peeled, repo.tag_prefix),
        )

    report("fetch", 0, limits.max_repo_bytes)
    git_dir = sync_mirror(
        repo.url,
        mirror_dir,
        limits,
        on_size=lambda size: report("fetch", size, limits.max_repo_bytes),
    )
    local = list_refs(git_dir, [TAGS, *([HEADS + branch] if branch else [])], limits)
    head_ref = local.get(HEADS + branch) if branch else None
    if head_ref is None and remote_head is not None:
        raise BranchNotFoundError(f"branch {branch!r} vanished from {redact(repo.url)}")
    head = head_ref.target if head_ref is not None else None
    tags = release_tags(local, repo.tag_prefix)
    # Tags and the branch as the mirror has them, i.e. as they were indexed: should the
    # remote move between ls-remote and fetch, the next run sees the difference.
    refs = {name: sha for name, sha in remote.items() if not name.startswith(TAGS)}
    refs.update((name, ref.sha) for name, ref in local.items())
    result = IndexResult(repo=repo, branch=branch, head=head, refs=refs, fetched=True, tags=tags)
    if not branch and any(name.startswith(HEADS) for name in remote):
        result.errors.append(
            ManifestError(
                file="HEAD",
                message=(
                    "the remote's HEAD names no branch and several branches exist, so "
                    "Arkitekt files were not read: set the repository's branch"
                ),
            )
        )
    prev_refs = previous.refs if previous is not None else {}
    prev_head = previous.head if previous is not None else None

    # Head files, then tags, then history: should the run's budget end it early, what
    # it leaves unread is the least current (tags left unread are read next run).
    reads: list[_Read] = []
    history: list[_Read] = []
    if head is not None and head != prev_head:
        reads += _head_reads(branch, head)
        history = _history_reads(git_dir, head, prev_head, limits, result.errors)
    reads += _tag_reads(tags, local, prev_refs, manifest_path, repo.tag_prefix, result.errors)
    unread = _read_all(git_dir, reads + history, limits, result, report)
    _leave_for_next_run(unread, result, previous, branch)
    result.logos, logo_errors = read_logos(git_dir, result.releases, limits)
    result.errors.extend(logo_errors)
    log.info(
        "%s: %d semver tags, %d manifests parsed, %d releases, %d errors",
        redact(repo.url),
        len(tags),
        result.blobs_read,
        len(result.releases),
        len(result.errors),
    )
    return result


def _no_progress(stage: str, done: int, total: int) -> None:
    """The default progress callback: nobody is watching."""


def _branch(repo: RepoSpec, remote: RemoteRefs) -> str:
    """The branch to index: the configured one, else the remote's HEAD ("" if none)."""
    if repo.branch is not None:
        if HEADS + repo.branch not in remote and remote:
            raise BranchNotFoundError(
                f"branch {repo.branch!r} does not exist on {redact(repo.url)}"
            )
        return repo.branch
    heads = sorted(name[len(HEADS) :] for name in remote if name.startswith(HEADS))
    if remote.head_branch in heads:
        return remote.head_branch
    # HEAD names no existing branch (an old server without symrefs, or a bare repo whose
    # HEAD still says "master" after "main" was pushed): the branch HEAD's commit is on,
    # else main or master, else the only branch there is.
    on_head = [name for name in heads if remote[HEADS + name] == remote.get("HEAD")]
    for candidates in (on_head, heads):
        for preferred in ("main", "master"):
            if preferred in candidates:
                return preferred
    if on_head:
        return on_head[0]
    return heads[0] if len(heads) == 1 else ""


def _unchanged(previous: Previous, remote: Mapping[str, str], head: str | None) -> bool:
    """Nothing to do: the indexed branch and every tag are where the last run saw them.

    Other refs (other branches, ``refs/pull/*``) are ignored: they hold no releases.
    """
    return previous.head == head and _tag_refs(previous.refs) == _tag_refs(remote)


def _tag_refs(refs: Mapping[str, str]) -> dict[str, str]:
    return {k: v for k, v in refs.items() if k.startswith(TAGS) and not k.endswith("^{}")}


def _head_reads(branch: str, head: str) -> list[_Read]:
    return [_Read("head", f"{head}:{path}", path, branch, head) for path in ARKITEKT_FILES]


def _history_reads(
    git_dir: Path, head: str, prev_head: str | None, limits: Limits, errors: list[ManifestError]
) -> list[_Read]:
    """The older versions of the Arkitekt files since ``prev_head``, newest first, at most
    ``limits.max_history`` per file (an error names what was left out)."""
    since = prev_head if prev_head and is_ancestor(git_dir, prev_head, head, limits) else None
    versions: list[FileVersion] = file_history(git_dir, head, ARKITEKT_FILES, limits, since=since)
    kept: list[_Read] = []
    per_file: dict[str, int] = {}
    for v in versions:  # each file's newest version is the head's own: not counted
        per_file[v.path] = per_file.get(v.path, 0) + 1
        if per_file[v.path] <= limits.max_history + 1:
            kept.append(_Read("history", v.blob, v.path, v.commit, v.commit))
    for path, count in sorted(per_file.items()):
        if count > limits.max_history + 1:
            message = (
                f"has {count - 1} older versions in the branch's history; only the newest "
                f"{limits.max_history} were read (PORT_INDEX_MAX_HISTORY)"
            )
            errors.append(ManifestError(file=path, ref=head, message=message))
    return kept


def _tag_reads(
    tags: Mapping[str, TagInfo],
    local: Mapping[str, LocalRef],
    prev_refs: Mapping[str, str],
    manifest_path: str,
    prefix: str,
    errors: list[ManifestError],
) -> list[_Read]:
    """Reads for tags that are new or moved; two tags of one version: the first name wins.

    A version that lost one of its tags is read again at the tag that now releases it,
    so deleting ``1.0.0`` beside ``v1.0.0`` moves the release instead of withdrawing it.
    """
    owner: dict[str, str] = {}
    for name in sorted(tags):
        owner.setdefault(tags[name].version, name)
    orphaned = {
        version
        for ref in prev_refs
        if ref.startswith(TAGS)
        and not ref.endswith("^{}")
        and ref[len(TAGS) :] not in tags
        and (version := parse_tag(ref[len(TAGS) :], prefix)) is not None
    }
    reads: list[_Read] = []
    for name in sorted(tags, key=lambda n: (tags[n].version, n)):
        tag = tags[name]
        if prev_refs.get(TAGS + name) == local[TAGS + name].sha and tag.version not in orphaned:
            continue
        if owner[tag.version] != name:
            errors.append(
                ManifestError(
                    file=manifest_path,
                    ref=name,
                    message=(
                        f"tag {name!r} names version {tag.version}, which tag "
                        f"{owner[tag.version]!r} already releases; this tag is ignored"
                    ),
                )
            )
            continue
        rev = f"{tag.commit}:{manifest_path}"
        reads.append(_Read("tag", rev, manifest_path, name, tag.commit, tag))
    return reads


def _read_all(
    git_dir: Path, reads: list[_Read], limits: Limits, result: IndexResult, report: Progress
) -> list[_Read]:
    """Read and parse the blobs of ``reads`` in order, within the run's budget; the reads
    the budget left unread (one located error names the first and counts the rest)."""
    arkitekt = ArkitektMerge()
    native: list[FoundRelease] = []
    head_blobs: set[tuple[str, str]] = set()
    head_readable = True  # False when a head file exists but could not be read as a whole
    parser = RunParser(limits)
    budget = Budget(limits)
    done = 0
    total = len(reads)
    report("read", 0, total)
    if reads:
        with CatFileBatch(git_dir, limits) as batch:
            answers = batch.read_many([r.rev for r in reads])
            for read, obj in zip(reads, answers, strict=False):
                spent = budget.exhausted()
                if spent is not None:
                    message = f"not read: this index run reached its budget of {spent}"
                    if total - done > 1:
                        message += f"; {total - done - 1} more manifests were not read either"
                    result.errors.append(
                        ManifestError(file=read.path, ref=read.ref, message=message)
                    )
                    break
                done += 1
                report("read", done, total)
                if read.kind == "history" and (read.path, read.rev) in head_blobs:
                    continue  # the same content was just read at the head
                if obj is None and read.tag is not None:
                    result.tags_read.add(read.tag.name)  # no manifest: not a release now
                data = _blob(obj, read, limits, result.errors)
                if obj is None or data is None:
                    head_readable = head_readable and not (read.kind == "head" and obj is not None)
                    continue
                budget.bytes += len(data)
                budget.manifests += 1
                result.blobs_read += 1
                if read.kind == "head":
                    head_blobs.add((read.path, obj.sha))
                if read.tag is not None:
                    tag = read.tag
                    parsed = parser.native(obj.sha, data, read.path, tag.name, tag.version)
                    result.errors.extend(parsed.errors)
                    if parsed.releases:
                        result.tags_read.add(tag.name)
                    native += [
                        FoundRelease(spec, "port", read.path, read.ref, read.commit)
                        for spec in parsed.releases
                    ]
                else:
                    parsed = parser.arkitekt(obj.sha, data, read.path, read.ref)
                    if read.kind == "head" and any(_whole_file(e) for e in parsed.errors):
                        head_readable = False
                    arkitekt.add(
                        parsed,
                        file=read.path,
                        ref=read.ref,
                        commit=read.commit,
                        at_head=read.kind == "head",
                    )
    native_keys = {(f.spec.app.identifier, f.spec.version) for f in native}
    result.releases = native + arkitekt.releases(excluding=native_keys)
    result.errors.extend(arkitekt.errors)
    unread = reads[done:]
    # A head file that failed as a whole says nothing about which entries are current:
    # keep what the catalogue knows rather than marking every entry as history.
    heads_read = any(r.kind == "head" for r in reads[:done])
    if head_readable and heads_read and not any(r.kind == "head" for r in unread):
        result.arkitekt_head = frozenset(arkitekt.head_keys)
    return unread


def _leave_for_next_run(
    unread: list[_Read], result: IndexResult, previous: Previous | None, branch: str
) -> None:
    """Make the next run read what this one's budget left: its tags count as new, and
    an unread head file keeps the branch where the last run saw it."""
    for read in unread:
        if read.tag is not None:
            result.refs.pop(TAGS + read.tag.name, None)
            result.refs.pop(TAGS + read.tag.name + "^{}", None)
    if any(read.kind == "head" for read in unread):
        old = previous.head if previous is not None else None
        result.head = old
        if old is None:
            result.refs.pop(HEADS + branch, None)
        else:
            result.refs[HEADS + branch] = old


def _whole_file(error: ManifestError) -> bool:
    """An error of the file itself (syntax, shape), not of one of its entries."""
    return "[" not in error.path


def _blob(
    obj: GitObject | None, read: _Read, limits: Limits, errors: list[ManifestError]
) -> bytes | None:
    """The content to parse, or None: missing (silently), not a file or too large (error)."""
    if obj is None:
        return None
    if obj.type != "blob":
        errors.append(ManifestError(file=read.path, ref=read.ref, message="is not a file"))
        return None
    if obj.data is None:
        errors.append(
            ManifestError(
                file=read.path,
                ref=read.ref,
                message=(
                    f"is {describe_size(obj.size)}, over the limit of "
                    f"{describe_size(limits.max_manifest_bytes)}; not read"
                ),
            )
        )
        return None
    return obj.data
