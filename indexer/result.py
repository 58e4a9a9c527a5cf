"""What one index run of one repository found: plain data, no SQL."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from manifests.errors import ManifestError
from manifests.specs import ReleaseSpec

if TYPE_CHECKING:
    from indexer.logos import Logo

Source = Literal["port", "arkitekt", "oci"]
# Sources whose release is complete as read (its flavours replace the stored ones, and a
# vanished tag withdraws it): a port.yaml at a tag, an OCI release descriptor.
WHOLE_RELEASES = ("port", "oci")
# Sources of Arkitekt apps: their Pods get FAKTS_URL and their owner's redeem token.
ARKITEKT_SOURCES = ("arkitekt", "oci")


@dataclass(frozen=True, slots=True)
class RepoSpec:
    """A registered git remote, as the indexer needs to know it."""

    url: str
    branch: str | None = None  # None: the remote's default branch (its HEAD)
    manifest_path: str = "port.yaml"
    tag_prefix: str = ""
    channels: tuple[str, ...] = ()  # followed channels of an OCI repository


@dataclass(frozen=True, slots=True)
class Previous:
    """What the last successful run saw; lets a rescan skip what did not move."""

    refs: dict[str, str] = field(default_factory=dict)  # full ref name -> object sha
    head: str | None = None  # commit of the indexed branch


@dataclass(frozen=True, slots=True)
class FoundRelease:
    """A release spec with the facts of where it was read.

    ``source`` tells how to merge it: a ``port`` release (one semver tag's port.yaml) and
    an ``oci`` one (a release descriptor under a tag, ``commit`` its manifest's digest)
    are complete, so their flavours replace the stored ones; ``arkitekt`` entries accumulate
    flavours across files and commits. ``current`` is False for Arkitekt entries that
    only survive in the history of the file. ``channel``: a channel's build (``ref`` its
    tag), never a release proper.
    """

    spec: ReleaseSpec
    source: Source
    file: str
    ref: str  # tag name (port) or branch name / commit sha (arkitekt)
    commit: str
    current: bool = True
    channel: str | None = None


@dataclass(frozen=True, slots=True)
class TagInfo:
    """A semver tag present on the remote."""

    name: str  # short tag name, e.g. "v1.2.3"
    version: str  # normalised semver text, e.g. "1.2.3"
    commit: str  # the commit the tag points at (peeled)


@dataclass(slots=True)
class IndexResult:
    """Everything one run found. ``unchanged`` runs fetched and parsed nothing."""

    repo: RepoSpec
    branch: str  # the branch actually indexed (resolved from HEAD when not given)
    head: str | None  # its commit, None for an empty remote
    refs: dict[str, str]  # every ref the remote advertised: full name -> sha
    unchanged: bool = False
    fetched: bool = False
    tags: dict[str, TagInfo] = field(default_factory=dict)  # every semver tag, by name
    releases: list[FoundRelease] = field(default_factory=list)  # parsed this run
    # (identifier, version) of Arkitekt entries at the branch head, when the head was
    # read this run; None means "not re-read, keep what the catalogue says".
    arkitekt_head: frozenset[tuple[str, str]] | None = None
    # Followed channels read this run: (identifier, version) of the build each points
    # at, or None for a channel whose tag is gone. A channel not here (unchanged, or its
    # new descriptor broken) keeps what the catalogue says.
    channels: dict[str, tuple[str, str] | None] = field(default_factory=dict)
    errors: list[ManifestError] = field(default_factory=list)
    # Tags whose manifest this run read and found absent or valid: what they released
    # before and did not release again is no longer theirs (a moved tag). Tags whose
    # manifest broke are not here: their last good release stands.
    tags_read: set[str] = field(default_factory=set)
    blobs_read: int = 0  # manifest blobs parsed this run, for progress and benchmarks
    # Logos read from the repository this run, by app identifier (indexer/logos.py);
    # apps without one here keep the logo the catalogue has.
    logos: dict[str, Logo] = field(default_factory=dict)
