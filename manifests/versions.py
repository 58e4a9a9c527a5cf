"""Semver normalisation shared by every format (and usable by the indexer for tags)."""

from __future__ import annotations

import semver


def normalise_version(value: object) -> str:
    """Return the canonical semver text of ``value`` or raise ``ValueError``.

    A leading ``v`` is allowed (``v1.2.3`` -> ``1.2.3``); numbers are refused with a
    hint, because YAML reads ``version: 1.0`` as the float 1.0.
    """
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ValueError(f"a version must be a string like '1.2.3', got {type(value).__name__}")
    text = str(value).strip()
    candidate = text[1:] if text[:1] in ("v", "V") else text
    try:
        return str(semver.Version.parse(candidate))
    except (ValueError, TypeError):
        hint = " (quote it in YAML)" if not isinstance(value, str) else ""
        raise ValueError(
            f"version {text!r} is not semver: expected MAJOR.MINOR.PATCH such as "
            f"'1.2.3' or '1.3.0-rc.1'{hint}"
        ) from None
