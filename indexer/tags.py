"""Which git tags are releases, and which version each one names.

A release tag is ``<prefix>v<semver>`` or ``<prefix><semver>``: ``v1.2.3``, ``1.2.3``,
``v1.3.0-rc.1``, or ``stardist-v1.2.3`` for a repository whose tag prefix is
``stardist-`` (monorepos tag each app with its own prefix). Everything else (``latest``,
``v1.2``, ``release-2024``) is ignored: many tags in real repositories are not releases.
"""

from __future__ import annotations

import functools
import re

# semver.org's grammar (the one python-semver implements), ASCII digits only. A string
# it matches is already in normal form: no leading zeros, nothing to reorder.
_SEMVER = re.compile(
    r"(?:0|[1-9][0-9]*)\.(?:0|[1-9][0-9]*)\.(?:0|[1-9][0-9]*)"
    r"(?:-(?:0|[1-9][0-9]*|[0-9]*[a-zA-Z-][0-9a-zA-Z-]*)"
    r"(?:\.(?:0|[1-9][0-9]*|[0-9]*[a-zA-Z-][0-9a-zA-Z-]*))*)?"
    r"(?:\+[0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*)?",
    re.ASCII,
)


@functools.lru_cache(maxsize=1 << 16)  # polls see the same tag names again and again
def parse_tag(name: str, prefix: str = "") -> str | None:
    """The normalised semver version a tag names, or None if it is not a release tag.

    Pure string work (no semver objects): a rescan calls it for every tag of the remote.

    >>> parse_tag("v1.2.3"), parse_tag("stardist-1.2.3", "stardist-"), parse_tag("v1.2")
    ('1.2.3', '1.2.3', None)
    """
    if not name.startswith(prefix):
        return None
    text = name[len(prefix) :]
    if text.startswith("v"):
        text = text[1:]
    return text if _SEMVER.fullmatch(text) else None
