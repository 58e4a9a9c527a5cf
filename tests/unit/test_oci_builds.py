"""The version of a channel's build: marked with what it was built from, valid semver."""

from __future__ import annotations

import pytest
from arkitekt_spec.release import channel_version
from semver import Version

from indexer.oci import build_version


@pytest.mark.parametrize(
    ("version", "revision", "expected"),
    [
        (channel_version("1.4.1", "3f2a9c1" * 5), "3f2a9c1" * 5, "1.4.1-dev.3f2a9c1"),  # as written
        ("1.4.1", "a" * 40, "1.4.1-dev.aaaaaaa"),  # arkitekt-spec's channel_version
        ("2.0.0-dev", None, "2.0.0-dev.abcdef0"),  # no revision: the digest marks it
        ("1.4.1", "0123456789", "1.4.1-dev.g0123456"),  # no leading-zero number
        ("1.4.1", "main@12/x", "1.4.1-dev.main12x"),  # only what semver allows
    ],
)
def test_a_build_version_is_marked_and_valid(
    version: str, revision: str | None, expected: str
) -> None:
    made = build_version(version, revision, "abcdef0123456789")
    assert made == expected
    assert Version.is_valid(made)
