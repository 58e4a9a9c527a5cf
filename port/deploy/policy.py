"""Update policies: which newer release a Setup may move to.

``NONE`` never moves; ``PATCH`` stays on major.minor (1.2.x); ``MINOR`` on the major
(1.x); ``MAJOR`` takes any newer version; ``RANGE`` any version matching every clause
of a semver range such as ``>=1.2.0 <2.0.0``. For all of them: never a downgrade (nor
the same version), pre-releases only with ``include_prereleases``, never a withdrawn
release nor an entry that is only historical (``current`` false: an Arkitekt entry cut
from the file at the branch head), and never a version whose update to this Setup was
rolled back (``skipped``), though a newer one is tried.

A Setup on a channel follows the channel instead: it moves to the build the channel
points at whenever that is another one (the versions of a channel's builds are not an
order), but not to a build rolled back before. Channels' builds are never a candidate
of any other Setup.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable
from typing import Protocol, TypeVar

import semver
from semver import Version

from port.deploy.models import UpdatePolicy
from port.errors import InvalidInput


def range_clauses(text: str | None) -> list[str]:
    """The clauses of a semver range such as ``>=1.2.0 <2.0.0`` (space- or comma-separated)."""
    return [c for c in re.split(r"[\s,]+", (text or "").strip()) if c]


def check_range(text: str | None) -> str:
    """A semver range such as ``>=1.2.0 <2.0.0``, normalised; INVALID_INPUT otherwise."""
    clauses = range_clauses(text)
    if not clauses:
        raise InvalidInput("updatePolicy RANGE needs a versionRange such as '>=1.2.0 <2.0.0'")
    for clause in clauses:
        try:
            semver.Version.parse("0.0.0").match(clause)
        except ValueError as exc:
            raise InvalidInput(
                f"versionRange: {clause!r} is not a comparison like >=1.2.0"
            ) from exc
    return " ".join(clauses)


class ReleaseLike(Protocol):
    version: str
    withdrawn: bool
    current: bool
    channel: str | None


R = TypeVar("R", bound=ReleaseLike)


def allows(
    policy: UpdatePolicy,
    current: Version,
    candidate: Version,
    *,
    version_range: str | None = None,
    include_prereleases: bool = False,
) -> bool:
    """May a Setup on ``current`` move to ``candidate`` under ``policy``?"""
    if candidate <= current:
        return False
    if candidate.prerelease and not include_prereleases:
        return False
    match policy:
        case UpdatePolicy.NONE:
            return False
        case UpdatePolicy.PATCH:
            return (candidate.major, candidate.minor) == (current.major, current.minor)
        case UpdatePolicy.MINOR:
            return candidate.major == current.major
        case UpdatePolicy.MAJOR:
            return True
        case UpdatePolicy.RANGE:
            clauses = range_clauses(version_range)
            return bool(clauses) and all(candidate.match(c) for c in clauses)
    return False  # pragma: no cover - the enum is closed


def newest_allowed(
    releases: Iterable[R],
    current: str,
    policy: UpdatePolicy,
    *,
    version_range: str | None = None,
    include_prereleases: bool = False,
    skipped: Collection[str] = (),
    channel: str | None = None,
) -> R | None:
    """The release of ``releases`` a Setup on ``current`` should move to, if any: the
    newest its policy allows, or on ``channel`` the build the channel points at."""
    if channel is not None:
        build = channel_build(releases, channel)
        if build is None or build.version == current or build.version in skipped:
            return None
        return build
    now = Version.parse(current)
    best: tuple[Version, R] | None = None
    for release in releases:
        if release.withdrawn or not release.current or release.version in skipped:
            continue
        if release.channel is not None:
            continue  # a channel's build: only for Setups on the channel
        version = Version.parse(release.version)
        if not allows(
            policy,
            now,
            version,
            version_range=version_range,
            include_prereleases=include_prereleases,
        ):
            continue
        if best is None or version > best[0]:
            best = (version, release)
    return best[1] if best else None


def channel_build(releases: Iterable[R], channel: str) -> R | None:
    """The build ``channel`` points at now (current, not withdrawn), if any."""
    return next(
        (r for r in releases if r.channel == channel and r.current and not r.withdrawn), None
    )


def follows(channel: str | None, release: ReleaseLike) -> bool:
    """Is ``release`` what a Setup on ``channel`` (None: none) may be moved to on its
    own: a release proper for a Setup on none, the channel's build for one on it?"""
    if release.channel != channel:
        return False
    return channel is None or (release.current and not release.withdrawn)
