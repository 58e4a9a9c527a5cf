"""Update policies: which newer release a Setup may move to.

``NONE`` never moves; ``PATCH`` stays on major.minor (1.2.x); ``MINOR`` on the major
(1.x); ``MAJOR`` takes any newer version; ``RANGE`` any version matching every clause
of a semver range such as ``>=1.2.0 <2.0.0``. For all of them: never a downgrade (nor
the same version), pre-releases only with ``include_prereleases``, never a withdrawn
release nor an entry that is only historical (``current`` false: an Arkitekt entry cut
from the file at the branch head), and never a version whose update to this Setup was
rolled back (``skipped``), though a newer one is tried.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from typing import Protocol, TypeVar

from semver import Version

from port.deploy.models import UpdatePolicy
from port.deploy.setups import range_clauses


class ReleaseLike(Protocol):
    version: str
    withdrawn: bool
    current: bool


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
) -> R | None:
    """The newest release of ``releases`` a Setup on ``current`` should move to, if any."""
    now = Version.parse(current)
    best: tuple[Version, R] | None = None
    for release in releases:
        if release.withdrawn or not release.current or release.version in skipped:
            continue
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
