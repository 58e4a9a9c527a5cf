"""Single-value checks shared by both formats, and semver normalisation."""

from __future__ import annotations

import datetime

import pytest

from manifests.fields import (
    check_flavour_name,
    check_http_url,
    check_identifier,
    check_image,
    check_logo,
    parse_memory,
)
from manifests.versions import normalise_version


@pytest.mark.parametrize(
    ("given", "normal"),
    [
        ("1.2.3", "1.2.3"),
        ("v1.2.3", "1.2.3"),
        ("V0.0.1", "0.0.1"),
        (" 1.3.0-rc.1 ", "1.3.0-rc.1"),
        ("1.0.0+build.7", "1.0.0+build.7"),
        ("v2.0.0-alpha.1+sha.5114f85", "2.0.0-alpha.1+sha.5114f85"),
    ],
)
def test_normalise_version(given: str, normal: str) -> None:
    assert normalise_version(given) == normal


@pytest.mark.parametrize("given", ["dev", "latest", "beta2", "3", "1.0", "", "vv1.0.0", "1.2.3.4"])
def test_not_semver(given: str) -> None:
    with pytest.raises(ValueError, match="is not semver"):
        normalise_version(given)


@pytest.mark.parametrize("given", [None, True, [1], datetime.date(2024, 1, 1)])
def test_not_a_version_at_all(given: object) -> None:
    with pytest.raises(ValueError, match="a version must be a string"):
        normalise_version(given)


def test_numbers_get_a_quoting_hint() -> None:
    with pytest.raises(ValueError, match=r"'1\.0' is not semver.*\(quote it in YAML\)"):
        normalise_version(1.0)


def test_identifiers_and_flavour_names() -> None:
    assert check_identifier("a") == "a"
    assert check_identifier("0" + "a" * 99) == "0" + "a" * 99
    assert check_flavour_name("cuda-12.1_x") == "cuda-12.1_x"
    for bad in ("", ".a", "_a", "A", "a/b", "a" * 101):
        with pytest.raises(ValueError, match="identifier"):
            check_identifier(bad)
    with pytest.raises(ValueError, match="flavour name"):
        check_flavour_name("a" * 64)


def test_image_length_caps() -> None:
    tag = "x" * 128
    assert check_image(f"a/b:{tag}") == f"a/b:{tag}"
    with pytest.raises(ValueError, match="not a valid image reference"):
        check_image(f"a/b:{tag}y")
    with pytest.raises(ValueError, match="not a valid image reference"):
        check_image("a/" + "b" * 254)


def test_urls_and_logos() -> None:
    assert check_http_url("http://localhost:8080/x") == "http://localhost:8080/x"
    for bad in ("https://", "https://a b", "mailto:x@y", "//example.org"):
        with pytest.raises(ValueError, match="is not an http"):
            check_http_url(bad)
    for bad in ("", "a\nb", "C:\\logo.png", " logo.png", "https://"):
        with pytest.raises(ValueError, match="logo"):
            check_logo(bad)


def test_memory() -> None:
    assert parse_memory(6 << 20) == 6 << 20
    assert parse_memory("2 GB") == 2 * 1024**3
    assert parse_memory("6m") == 6 << 20
    for bad in ("-1g", "1x", "", "g", 1.5, None, -5, 1, "100b"):
        with pytest.raises(ValueError, match="memory"):
            parse_memory(bad)
