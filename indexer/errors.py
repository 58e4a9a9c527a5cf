"""Why an index run could not read a remote.

Only problems with the remote itself (its URL, reachability, size, time) are exceptions;
problems inside manifests are ``ManifestError`` values on the result, because one bad
file must never stop a run. Every message here is safe to show a user: URLs in it are
redacted before the exception is built.
"""

from __future__ import annotations


class IndexerError(Exception):
    """Base of every indexer failure; ``str()`` is safe to show (no credentials)."""


class UnsafeUrlError(IndexerError):
    """The URL uses a transport or form Port refuses to hand to git."""


class RemoteError(IndexerError):
    """The remote is unreachable, is not a git repository, or wants credentials."""


class GitTimeoutError(IndexerError):
    """A git call ran longer than ``Limits.timeout_seconds`` and was killed."""


class RepoTooLargeError(IndexerError):
    """The mirror grew past ``Limits.max_repo_bytes``; it has been removed."""


class BranchNotFoundError(IndexerError):
    """The configured branch does not exist on a remote that has other refs."""
