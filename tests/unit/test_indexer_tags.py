"""Which tag names are releases, and the version each one names."""

from __future__ import annotations

import pytest
import semver
from hypothesis import given
from hypothesis import strategies as st

from indexer.tags import parse_tag


@pytest.mark.parametrize(
    ("name", "prefix", "version"),
    [
        ("v1.2.3", "", "1.2.3"),
        ("1.2.3", "", "1.2.3"),
        ("v0.0.0", "", "0.0.0"),
        ("v1.3.0-rc.1", "", "1.3.0-rc.1"),
        ("1.0.0-alpha-beta.0.x", "", "1.0.0-alpha-beta.0.x"),
        ("v1.2.3+build.5", "", "1.2.3+build.5"),
        ("v1.2.3-rc.1+exp.sha.5114f85", "", "1.2.3-rc.1+exp.sha.5114f85"),
        ("v10.20.30", "", "10.20.30"),
        ("stardist-v1.2.3", "stardist-", "1.2.3"),
        ("stardist-1.2.3", "stardist-", "1.2.3"),
        ("apps/seg/v2.0.0", "apps/seg/", "2.0.0"),
    ],
)
def test_release_tags(name: str, prefix: str, version: str) -> None:
    assert parse_tag(name, prefix) == version


@pytest.mark.parametrize(
    ("name", "prefix"),
    [
        ("latest", ""),
        ("v1.2", ""),
        ("1", ""),
        ("v1.2.3.4", ""),
        ("v01.2.3", ""),  # leading zero
        ("1.02.3", ""),
        ("v1.2.3-01", ""),  # numeric pre-release with leading zero
        ("vv1.2.3", ""),
        ("V1.2.3", ""),
        ("release-1.2.3", ""),
        ("v1.2.3 ", ""),
        ("v1.2.3-", ""),
        ("v1.2.3+", ""),
        ("\u0661.\u0662.\u0663", ""),  # Arabic-Indic digits are not semver in a tag
        ("stardist-v1.2.3", ""),  # a prefixed tag without the prefix configured
        ("v1.2.3", "stardist-"),  # an unprefixed tag when a prefix is configured
        ("napari-v1.2.3", "stardist-"),
        ("", ""),
    ],
)
def test_other_tags_are_ignored(name: str, prefix: str) -> None:
    assert parse_tag(name, prefix) is None


@given(
    st.integers(0, 10**6),
    st.integers(0, 10**6),
    st.integers(0, 10**6),
    st.sampled_from(["", "-rc.1", "-alpha", "-0.3.7", "-x.7.z.92", "+build.1", "-beta+exp.1"]),
)
def test_agrees_with_python_semver(major: int, minor: int, patch: int, suffix: str) -> None:
    text = f"{major}.{minor}.{patch}{suffix}"
    assert parse_tag(f"v{text}") == str(semver.Version.parse(text))


@given(st.text(max_size=30))
def test_never_accepts_what_semver_rejects(text: str) -> None:
    version = parse_tag(text)
    if version is not None:
        assert str(semver.Version.parse(version)) == version
