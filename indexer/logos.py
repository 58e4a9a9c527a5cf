"""App logos that live in the repository: read at the newest release that names one.

A manifest's ``logo`` is a path in the repository or an https URL. A path is read from
the mirror at the commit of the app's newest release (semver) that names it, through
the same ``cat-file`` as manifests, bounded by ``LOGO_MAX_BYTES``, and kept only when
its first bytes say it is a PNG, JPEG, GIF or WebP image: Port serves logos from its
own origin, so it never serves what a browser might run (SVG, HTML). Anything else is a
located error of the logo's file; the app is indexed all the same.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import semver

from indexer.catfile import CatFileBatch
from indexer.limits import Limits
from indexer.result import FoundRelease
from manifests.errors import ManifestError

LOGO_MAX_BYTES = 256 * 1024
# The magic numbers of the image types a logo may be.
_TYPES = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
)


@dataclass(frozen=True, slots=True)
class Logo:
    content_type: str
    data: bytes
    version: str  # the release whose manifest named it: a newer release's logo wins

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


def image_type(data: bytes) -> str | None:
    """The content type of ``data`` if it is an image a logo may be, else None."""
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return next((kind for magic, kind in _TYPES if data.startswith(magic)), None)


def newest_with_logo(
    releases: Sequence[FoundRelease], *, urls: bool = False
) -> dict[str, FoundRelease]:
    """Per app identifier, its newest release whose logo is a path in the repository
    (``urls``: an https URL instead)."""
    chosen: dict[str, FoundRelease] = {}
    for found in releases:
        logo = found.spec.app.logo
        if not logo or logo.startswith("https://") != urls:
            continue
        identifier = found.spec.app.identifier
        kept = chosen.get(identifier)
        if kept is None or semver.Version.parse(found.spec.version) > semver.Version.parse(
            kept.spec.version
        ):
            chosen[identifier] = found
    return chosen


def read_logos(
    git_dir: Path, releases: Sequence[FoundRelease], limits: Limits
) -> tuple[dict[str, Logo], list[ManifestError]]:
    """The logos of the apps of ``releases`` that name a repository path, by identifier,
    and the errors of those that could not be used."""
    chosen = newest_with_logo(releases)
    logos: dict[str, Logo] = {}
    errors: list[ManifestError] = []
    if not chosen:
        return logos, errors
    items = sorted(chosen.items())
    with CatFileBatch(git_dir, limits, max_bytes=LOGO_MAX_BYTES) as batch:
        revs = [f"{found.commit}:{found.spec.app.logo}" for _, found in items]
        for (identifier, found), obj in zip(items, batch.read_many(revs), strict=True):
            path = found.spec.app.logo or ""

            def refuse(message: str, found: FoundRelease = found, path: str = path) -> None:
                errors.append(ManifestError(file=path, ref=found.ref, message=message))

            if obj is None:
                refuse("the logo is not in the repository at this release")
            elif obj.type != "blob":
                refuse("the logo is not a file")
            elif obj.data is None:
                refuse(f"the logo is over the limit of {LOGO_MAX_BYTES // 1024} KB; not read")
            elif (kind := image_type(obj.data)) is None:
                refuse("the logo is not a PNG, JPEG, GIF or WebP image")
            else:
                logos[identifier] = Logo(kind, obj.data, found.spec.version)
    return logos, errors
