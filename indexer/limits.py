"""The bounds every index run works within: what it may fetch, for how long, how much."""

from __future__ import annotations

import time
from dataclasses import dataclass

from manifests.bounds import MAX_BYTES


@dataclass(frozen=True, slots=True)
class Limits:
    """Bounds for one index run.

    ``allow_local`` admits ``file://`` URLs and plain paths (tests, demos; never on a
    server). ``timeout_seconds`` bounds every single git call, ``max_repo_bytes`` the
    mirror on disk (checked while it downloads and after), ``max_manifest_bytes`` each
    manifest blob (a larger one is an error on the run, not read).

    The budget of one run, checked before each manifest: ``max_seconds`` of wall time
    from its start, ``max_read_bytes`` of manifest blobs read and ``max_manifests``
    manifests parsed. ``max_history`` bounds the older versions of each Arkitekt file
    read from the branch's history (newest first). What a budget leaves unread is one
    located error on the run; tags left unread are read by the next run.
    """

    allow_local: bool = False
    timeout_seconds: float = 300
    max_repo_bytes: int = 1 << 30
    max_manifest_bytes: int = MAX_BYTES
    max_seconds: float = 600
    max_read_bytes: int = 64 << 20
    max_manifests: int = 10_000
    max_history: int = 100


def describe_size(size: int) -> str:
    """A byte count as people read it in an error message."""
    return f"{size / (1 << 20):.1f} MiB"


class Budget:
    """What one run may still spend (``Limits``: time, bytes, manifests); the git and the
    OCI readers count into it alike."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.deadline = time.monotonic() + limits.max_seconds
        self.bytes = 0
        self.manifests = 0

    def exhausted(self) -> str | None:
        """Which budget is spent, in words (with the setting that raises it), or None."""
        limits = self.limits
        if self.manifests >= limits.max_manifests:
            return f"{limits.max_manifests} manifests (PORT_INDEX_MAX_MANIFESTS)"
        if self.bytes >= limits.max_read_bytes:
            return f"{describe_size(limits.max_read_bytes)} read (PORT_INDEX_MAX_READ_MB)"
        if time.monotonic() >= self.deadline:
            return f"{limits.max_seconds:g} s (PORT_INDEX_SECONDS)"
        return None
