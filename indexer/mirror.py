"""The local copy of a remote: asking what it has, and keeping a bare mirror up to date.

``ls_remote`` is the cheap question ("did any ref move?") a poll asks first. The mirror
holds branches and tags only (``refs/heads/*``, ``refs/tags/*``): ``clone --mirror``
would also copy ``refs/pull/*`` and the like, which hosting services fill with every
fork's pull requests and which Port never reads. It is created by ``git clone --bare``
into a temporary directory renamed into place, so an interrupted clone never leaves a
half mirror behind, then kept current by ``git fetch --prune --prune-tags`` with explicit
refspecs. The URL is passed on every fetch instead of being trusted from the mirror's
config, and credentials are never written to disk.
"""

from __future__ import annotations

import logging
import re
import shutil
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

from indexer.errors import IndexerError, RemoteError, RepoTooLargeError, SetupError
from indexer.gitcmd import GitOutput, SizeCallback, run_git
from indexer.limits import Limits, describe_size
from indexer.urls import check_url, redact

if TYPE_CHECKING:
    import git

log = logging.getLogger(__name__)

FETCH_REFSPECS = ("+refs/heads/*:refs/heads/*", "+refs/tags/*:refs/tags/*")
# git's words for "the remote is the problem", as opposed to a broken local mirror.
_REMOTE_TROUBLE = re.compile(
    r"could not read from remote|unable to access|repository .*not found|not found"
    r"|does not appear to be a git repository|connection refused|could not resolve"
    r"|unable to look up|authentication failed|could not read (username|password)"
    r"|terminal prompts disabled|permission denied|remote error|unable to connect"
    r"|timed out|network is unreachable|no route to host|host key verification failed"
    r"|not allowed|early eof|the remote end hung up|protocol error",
    re.IGNORECASE,
)


class RemoteRefs(dict[str, str]):
    """The refs a remote advertised: full name -> sha, ``HEAD`` included.

    Peeled entries (``refs/tags/v1^{}``) are kept apart in ``peeled`` (tag ref -> the
    commit an annotated tag points at); ``head_branch`` is the branch ``HEAD`` names
    (``main``), or None when the remote did not say.
    """

    def __init__(self) -> None:
        super().__init__()
        self.peeled: dict[str, str] = {}
        self.head_branch: str | None = None


def ls_remote(url: str, limits: Limits) -> RemoteRefs:
    """Every ref ``url`` advertises, with HEAD's branch resolved (one ``git ls-remote``)."""
    url = check_url(url, allow_local=limits.allow_local)
    out = run_git(["ls-remote", "--symref", "--", url], limits=limits, what="ls-remote")
    if not out.ok:
        raise RemoteError(f"cannot read {redact(url)}: {out.message()}")
    refs = RemoteRefs()
    for line in out.stdout.decode("utf-8", "replace").splitlines():
        value, _, name = line.partition("\t")
        if value.startswith("ref: "):
            if name == "HEAD" and value.startswith("ref: refs/heads/"):
                refs.head_branch = value.removeprefix("ref: refs/heads/")
        elif name.endswith("^{}"):
            refs.peeled[name[:-3]] = value
        elif name:
            refs[name] = value
    return refs


def ensure_mirror(url: str, path: Path, limits: Limits) -> git.Repo:
    """Bring the bare mirror at ``path`` up to date with ``url`` and return it.

    Clones when ``path`` is missing or is not a usable repository, fetches otherwise; a
    fetch that fails for a reason local to the mirror (corruption) falls back to a fresh
    clone. A mirror over ``limits.max_repo_bytes`` is removed and ``RepoTooLargeError``
    raised.
    """
    import git  # GitPython's import is slow; index runs use sync_mirror and never pay it

    return git.Repo(sync_mirror(url, path, limits))


def sync_mirror(url: str, path: Path, limits: Limits, on_size: SizeCallback | None = None) -> Path:
    """``ensure_mirror`` without building a GitPython ``Repo``; returns the mirror's path.

    ``on_size`` hears the bytes on disk while git downloads (a progress display).
    """
    url = check_url(url, allow_local=limits.allow_local)
    if _is_mirror(path):
        if not _fetch(url, path, limits, on_size):
            log.warning("mirror %s is damaged; cloning %s again", path, redact(url))
            _remove(path)
            _clone(url, path, limits, on_size)
    else:
        if path.exists():
            _remove_broken(path)
        _clone(url, path, limits, on_size)
    _check_size(url, path, limits)
    return path


def mirror_size(path: Path, limits: Limits) -> int:
    """Bytes of objects in the repository at ``path``, as ``git count-objects`` counts."""
    out = run_git(["count-objects", "-v"], limits=limits, what="count-objects", cwd=path)
    if not out.ok:
        raise IndexerError(f"cannot measure mirror {path}: {out.message()}")
    kib = 0
    for line in out.stdout.decode().splitlines():
        key, _, value = line.partition(":")
        if key in ("size", "size-pack", "size-garbage"):
            kib += int(value)
    return kib * 1024


def _is_mirror(path: Path) -> bool:
    return (
        (path / "HEAD").is_file()
        and (path / "objects").is_dir()
        and (path / "refs").is_dir()
        and (path / "config").is_file()
    )


def _remove(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


def _remove_broken(path: Path) -> None:
    """Clear the leftovers of a broken mirror, but never a directory that is not one."""
    if path.is_dir() and not any(path.iterdir()):
        path.rmdir()
        return
    if path.is_dir() and ((path / "objects").exists() or (path / "HEAD").exists()):
        log.warning("mirror %s is incomplete; removing it", path)
        _remove(path)
        return
    raise SetupError(f"{path} exists and is not a git mirror; refusing to replace it")


def _clone(url: str, path: Path, limits: Limits, on_size: SizeCallback | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}.tmp")
    log.info("cloning %s into %s", redact(url), path)
    try:
        out = run_git(
            ["clone", "--bare", "--quiet", "--", url, str(tmp)],
            limits=limits,
            what=f"clone of {redact(url)}",
            watch=tmp,
            on_size=on_size,
        )
        if not out.ok:
            raise RemoteError(f"cannot clone {redact(url)}: {out.message()}")
        _forget_url(tmp, url, limits)
        try:
            tmp.rename(path)
        except OSError:
            if not _is_mirror(path):
                raise
            log.info("mirror %s appeared during the clone; keeping it", path)
    finally:
        _remove(tmp)


def _forget_url(path: Path, url: str, limits: Limits) -> None:
    """Drop the remote the clone stored: its URL may hold credentials; fetches pass it."""
    out = run_git(
        ["config", "--remove-section", "remote.origin"], limits=limits, what="config", cwd=path
    )
    if not out.ok:
        raise IndexerError(f"cannot configure mirror of {redact(url)}: {out.message()}")


def _fetch(url: str, path: Path, limits: Limits, on_size: SizeCallback | None = None) -> bool:
    """Fetch into the mirror; False when the failure lies with the mirror, not the remote."""
    log.info("fetching %s into %s", redact(url), path)
    try:
        args = ["fetch", "--prune", "--prune-tags", "--quiet", "--no-write-fetch-head"]
        out = run_git(
            [*args, "--", url, *FETCH_REFSPECS],
            limits=limits,
            what=f"fetch of {redact(url)}",
            cwd=path,
            watch=path,
            on_size=on_size,
        )
    except RepoTooLargeError:
        _remove(path)
        raise
    if out.ok:
        return True
    if _is_remote_trouble(out):
        raise RemoteError(f"cannot fetch {redact(url)}: {out.message()}")
    log.warning("fetch of %s failed locally: %s", redact(url), out.message())
    return False


def _is_remote_trouble(out: GitOutput) -> bool:
    return bool(_REMOTE_TROUBLE.search(out.stderr))


def _check_size(url: str, path: Path, limits: Limits) -> None:
    size = mirror_size(path, limits)
    if size > limits.max_repo_bytes:
        _remove(path)
        raise RepoTooLargeError(
            f"{redact(url)} is {describe_size(size)}, over the limit of "
            f"{describe_size(limits.max_repo_bytes)}; its mirror was removed"
        )
