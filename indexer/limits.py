"""The bounds every index run works within: what it may fetch, for how long, how much."""

from __future__ import annotations

from dataclasses import dataclass

from manifests.yamlload import MAX_BYTES


@dataclass(frozen=True, slots=True)
class Limits:
    """Bounds for one index run.

    ``allow_local`` admits ``file://`` URLs and plain paths (tests, demos; never on a
    server). ``timeout_seconds`` bounds every single git call, ``max_repo_bytes`` the
    mirror on disk (checked while it downloads and after), ``max_manifest_bytes`` each
    manifest blob (a larger one is an error on the run, not read).
    """

    allow_local: bool = False
    timeout_seconds: float = 300
    max_repo_bytes: int = 1 << 30
    max_manifest_bytes: int = MAX_BYTES
