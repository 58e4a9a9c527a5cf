"""Why an index run could not read a remote.

Only problems with the remote itself (its URL, reachability, size, time) are exceptions;
problems inside manifests are ``ManifestError`` values on the result, because one bad
file must never stop a run. Every message here is safe to show a user: URLs in it are
redacted before the exception is built.
"""

from __future__ import annotations

from typing import ClassVar


class IndexerError(Exception):
    """Base of every indexer failure; ``str()`` is safe to show (no credentials).

    ``transient``: the same run may succeed a little later (network, a slow remote, a
    local fault such as too many open files); a refused URL, a remote over the size
    limit or a missing branch stay as they are.
    """

    transient: ClassVar[bool] = True


class UnsafeUrlError(IndexerError):
    """The URL uses a transport or form Port refuses to hand to git."""

    transient = False


class RemoteError(IndexerError):
    """The remote is unreachable, is not a git repository, or wants credentials."""


class GitTimeoutError(IndexerError):
    """A git call ran longer than ``Limits.timeout_seconds`` and was killed."""


class RepoTooLargeError(IndexerError):
    """The mirror grew past ``Limits.max_repo_bytes``; it has been removed."""

    transient = False


class SetupError(IndexerError):
    """What the run was given cannot work: a manifest path outside the repository, a
    directory in the mirror's place that is not a mirror."""

    transient = False


class BranchNotFoundError(IndexerError):
    """The configured branch does not exist on a remote that has other refs."""

    transient = False
