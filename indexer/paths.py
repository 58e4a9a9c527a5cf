"""Paths inside a repository as users give them (a repo's manifest path): checked
without git or the manifest parsers, so registering a repo stays cheap to import."""

from __future__ import annotations

import unicodedata
from pathlib import PurePosixPath

from indexer.errors import SetupError


def check_manifest_path(path: str) -> str:
    """The manifest path as git names it inside a tree; refuse anything outside it."""
    pure = PurePosixPath(path)
    bad = (
        not path
        or pure.is_absolute()
        or ".." in pure.parts
        or not pure.parts
        or any(unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp") for c in path)
    )
    if bad:
        raise SetupError(f"manifest path {path!r} must be a relative path inside the repo")
    return str(pure)
