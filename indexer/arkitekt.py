"""How Arkitekt deployment files read at the head and through history become releases.

Each entry of ``.arkitekt/deployments.yaml`` / ``.arkitekt_next/deployments.yaml`` is one
(identifier, version, flavour) with its image. Real repositories rewrite and cut back the
file, so the same triple can appear in many versions of it, and entries vanish from the
head while their images stay published. The rules:

- files are fed in order: the head first (``.arkitekt_next`` before ``.arkitekt``), then
  the history, newest commit first; the first (identifier, version, flavour) seen wins,
  so the newest description of a build is the one kept;
- a release (identifier, version) with an entry at the head is current; one found only
  in history stays in the catalogue with ``current=False``;
- errors repeat across the versions of a file (a bad entry lives on for many commits),
  so each (file, field path, message) is reported once, at its newest occurrence.

A native ``port.yaml`` release of the same (identifier, version) beats all of this: the
scan drops the Arkitekt release (``releases(excluding=...)``), because a port.yaml at a
tag describes its release completely.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection

from indexer.result import FoundRelease
from manifests.errors import ManifestError
from manifests.specs import Parsed

# Read in this order at each commit: the newer format first.
ARKITEKT_FILES = (".arkitekt_next/deployments.yaml", ".arkitekt/deployments.yaml")

ReleaseKey = tuple[str, str]  # (identifier, version)


class ArkitektMerge:
    """Collects parsed Arkitekt files in reading order and applies the rules above."""

    def __init__(self) -> None:
        self.head_keys: set[ReleaseKey] = set()
        self.errors: list[ManifestError] = []
        self._found: list[FoundRelease] = []
        self._flavours_seen: set[tuple[str, str, str]] = set()
        self._errors_seen: set[tuple[str, str, str]] = set()

    def add(self, parsed: Parsed, *, file: str, ref: str, commit: str, at_head: bool) -> None:
        """Take one parsed file. Every head file must come before any history file."""
        for error in parsed.errors:
            key = (error.file, error.path, error.message)
            if key not in self._errors_seen:
                self._errors_seen.add(key)
                self.errors.append(error)
        for spec in parsed.releases:
            release = (spec.app.identifier, spec.version)
            if at_head:
                self.head_keys.add(release)
            fresh = tuple(f for f in spec.flavours if (*release, f.name) not in self._flavours_seen)
            if not fresh:
                continue
            self._flavours_seen.update((*release, f.name) for f in fresh)
            if len(fresh) != len(spec.flavours):
                spec = dataclasses.replace(spec, flavours=fresh)
            self._found.append(
                FoundRelease(
                    spec=spec,
                    source="arkitekt",
                    file=file,
                    ref=ref,
                    commit=commit,
                    current=release in self.head_keys,
                )
            )

    def releases(self, excluding: Collection[ReleaseKey] = ()) -> list[FoundRelease]:
        """What was found, minus releases a native port.yaml already provides."""
        return [
            found
            for found in self._found
            if (found.spec.app.identifier, found.spec.version) not in excluding
        ]
