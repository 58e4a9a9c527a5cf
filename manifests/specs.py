"""Validated release specs: what every manifest format is turned into.

These are plain, frozen values. The parsers in this package produce them, the indexer
attaches git facts to them, and the catalogue stores them. Nothing here knows YAML, git
or SQL.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from manifests.capabilities import AnyCapability
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
class ServedPort:
    """A port the app serves in its container. ``http`` ports get an address of their
    own behind Port's sign-in; ``path`` is where the app's start page is."""

    name: str
    port: int
    protocol: str = "http"  # http | tcp
    path: str = "/"


@dataclass(frozen=True, slots=True)
class EnvVar:
    """An environment variable the app reads: a default ``value``, or ``required`` of
    whoever installs it. ``secret`` ones are never shown back."""

    name: str
    value: str | None = None
    description: str = ""
    required: bool = False
    secret: bool = False


@dataclass(frozen=True, slots=True)
class Run:
    """How the image is run: the ports it serves, its command and arguments (None: the
    image's own) and the environment it reads."""

    ports: tuple[ServedPort, ...] = ()
    command: tuple[str, ...] | None = None
    args: tuple[str, ...] | None = None
    env: tuple[EnvVar, ...] = ()

    def as_json(self) -> dict[str, Any]:
        """The stored form (the catalogue's ``Flavour.run``, copied onto each Pod)."""
        return {
            "ports": [asdict(p) for p in self.ports],
            "command": list(self.command) if self.command is not None else None,
            "args": list(self.args) if self.args is not None else None,
            "env": [asdict(e) for e in self.env],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> Run:
        """The inverse of :meth:`as_json`; ``None`` or ``{}`` (rows from before) is the
        image's defaults."""
        data = data or {}
        command, args = data.get("command"), data.get("args")
        return cls(
            ports=tuple(ServedPort(**p) for p in data.get("ports") or ()),
            command=tuple(command) if command is not None else None,
            args=tuple(args) if args is not None else None,
            env=tuple(EnvVar(**e) for e in data.get("env") or ()),
        )

    @property
    def http(self) -> ServedPort | None:
        """The port an address leads to: the first ``http`` one."""
        return next((p for p in self.ports if p.protocol == "http"), None)


@dataclass(frozen=True, slots=True)
class FlavourSpec:
    """One build of a release: an image and the hardware it needs or prefers."""

    name: str
    image: str
    selectors: tuple[Selector, ...] = ()
    resources: Resources = field(default_factory=Resources)
    sandbox: Sandbox = field(default_factory=Sandbox)
    run: Run = field(default_factory=Run)
    capabilities: tuple[AnyCapability, ...] = ()  # what it must be granted where it runs


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
