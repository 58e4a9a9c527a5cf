"""The history of a file on a branch: every version it had, newest first.

Arkitekt app repositories keep one ``deployments.yaml`` that grows with each build and
is regularly cut back, so releases that are gone from the branch head survive only in
earlier versions of the file. One ``git log --raw`` lists, for every commit that changed
the file, the blob it left, so those versions can be read by blob id through the same
``cat-file`` process as everything else, without a checkout or a process per commit.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from indexer.errors import IndexerError
from indexer.gitcmd import run_git
from indexer.limits import Limits

_SHA = re.compile(r"^(?:[0-9a-f]{40}|[0-9a-f]{64})$")
_FILE_MODES = ("100644", "100755")


@dataclass(frozen=True, slots=True)
class FileVersion:
    """The blob ``path`` held after ``commit`` changed it."""

    commit: str
    path: str
    blob: str


def is_sha(text: str | None) -> bool:
    return text is not None and bool(_SHA.match(text))


def is_ancestor(git_dir: Path, ancestor: str, head: str, limits: Limits) -> bool:
    """Whether ``ancestor`` is in the history of ``head`` (False if it is unknown here)."""
    if not is_sha(ancestor):
        return False
    out = run_git(
        ["merge-base", "--is-ancestor", ancestor, head],
        limits=limits,
        what="merge-base",
        cwd=git_dir,
    )
    return out.ok


def file_history(
    git_dir: Path,
    head: str,
    paths: Sequence[str],
    limits: Limits,
    *,
    since: str | None = None,
) -> list[FileVersion]:
    """Versions of ``paths`` in commits reachable from ``head`` (and not from ``since``).

    Newest commit first; each (path, blob) once, at its newest commit. Merges count with
    their change against the first parent, so content a merge brought in is seen;
    deletions and non-file entries (symlinks, submodules) are skipped.
    """
    args = [
        "log",
        "--format=%x00%H",
        "--raw",
        "--no-abbrev",
        "--no-renames",
        "--full-history",
        "--diff-merges=first-parent",
        head,
    ]
    if since is not None:
        args.append(f"^{since}")
    out = run_git([*args, "--", *paths], limits=limits, what="log", cwd=git_dir)
    if not out.ok:
        raise IndexerError(f"cannot read the history of {', '.join(paths)}: {out.message()}")
    versions: list[FileVersion] = []
    seen: set[tuple[str, str]] = set()
    commit = ""
    for line in out.stdout.decode("utf-8", "replace").splitlines():
        if line.startswith("\0"):
            commit = line[1:]
        elif line.startswith(":") and "\t" in line:
            meta, _, path = line.partition("\t")
            fields = meta.split()
            if len(fields) < 5 or fields[1] not in _FILE_MODES:
                continue
            blob = fields[3]
            if (path, blob) not in seen and commit:
                seen.add((path, blob))
                versions.append(FileVersion(commit=commit, path=path, blob=blob))
    return versions
