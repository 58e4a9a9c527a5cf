"""Validated release specs: what every manifest format is turned into.

These are plain, frozen values. The parsers in this package produce them, the indexer
attaches git facts to them, and the catalogue stores them. Nothing here knows YAML, git
or SQL.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from manifests.errors import ManifestError
    from manifests.selectors import Selector


@dataclass(frozen=True, slots=True)
class Requirement:
    """A service the app needs from the platform (Arkitekt's ``requirements``)."""

    key: str
    service: str
    optional: bool = False
    description: str | None = None


@dataclass(frozen=True, slots=True)
class AppSpec:
    """What a release says about its app. The newest release's copy describes the app."""

    identifier: str
    name: str
    description: str = ""
    logo: str | None = None
    homepage: str | None = None
    license: str | None = None
    author: str | None = None
    categories: tuple[str, ...] = ()
    scopes: tuple[str, ...] = ()
    requirements: tuple[Requirement, ...] = ()


@dataclass(frozen=True, slots=True)
class Resources:
    """Default resources of a flavour: CPUs (fractional allowed) and memory in bytes."""

    cpus: float | None = None
    memory: int | None = None


@dataclass(frozen=True, slots=True)
class Sandbox:
    """What an image says it runs under: a read-only root filesystem (it writes only to
    ``/tmp``) and any unprivileged user. Port then runs it so by default."""

    read_only: bool = False
    non_root: bool = False


@dataclass(frozen=True, slots=True)
class FlavourSpec:
    """One build of a release: an image and the hardware it needs or prefers."""

    name: str
    image: str
    selectors: tuple[Selector, ...] = ()
    resources: Resources = field(default_factory=Resources)
    sandbox: Sandbox = field(default_factory=Sandbox)


@dataclass(frozen=True, slots=True)
class ReleaseSpec:
    """One semver version of one app, with its flavours in manifest order."""

    app: AppSpec
    version: str  # normalised semver text, e.g. "1.2.3" or "1.3.0-rc.1"
    flavours: tuple[FlavourSpec, ...]
    entrypoint: str | None = None


@dataclass(slots=True)
class Parsed:
    """The outcome of parsing one file: the releases it yields and every error in it.

    A file with errors may still yield releases (Arkitekt files: a bad entry does not
    spoil its neighbours).
    """

    releases: list[ReleaseSpec] = field(default_factory=list)
    errors: list[ManifestError] = field(default_factory=list)
