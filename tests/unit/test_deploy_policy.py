"""Update policies: which newer release a Setup may move to."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from semver import Version

from port.deploy.models import UpdatePolicy as P
from port.deploy.policy import allows, newest_allowed


@dataclass
class R:
    version: str
    withdrawn: bool = False
    current: bool = True
    channel: str | None = None


@pytest.mark.parametrize(
    ("policy", "current", "candidate", "expected"),
    [
        (P.NONE, "1.0.0", "1.0.1", False),
        (P.PATCH, "1.0.0", "1.0.1", True),
        (P.PATCH, "1.0.0", "1.1.0", False),
        (P.MINOR, "1.0.0", "1.1.0", True),
        (P.MINOR, "1.0.0", "2.0.0", False),
        (P.MAJOR, "1.0.0", "2.0.0", True),
        (P.MAJOR, "1.2.0", "1.1.9", False),  # never a downgrade
        (P.MAJOR, "1.2.0", "1.2.0", False),  # nor the same
        (P.MINOR, "1.0.0", "1.1.0-rc.1", False),  # pre-releases only on request
        (P.MINOR, "1.0.0", "1.0.0+build.2", False),  # build metadata: the same version
    ],
)
def test_policies(policy: P, current: str, candidate: str, expected: bool) -> None:
    assert allows(policy, Version.parse(current), Version.parse(candidate)) is expected


def test_prereleases_when_asked() -> None:
    assert allows(
        P.MINOR, Version.parse("1.0.0"), Version.parse("1.1.0-rc.1"), include_prereleases=True
    )
    assert allows(
        P.PATCH, Version.parse("1.1.0-rc.1"), Version.parse("1.1.0"), include_prereleases=False
    )  # a pre-release Setup moves on to the final release


@pytest.mark.parametrize(
    ("candidate", "expected"),
    [("1.2.0", True), ("1.9.3", True), ("2.0.0", False), ("1.1.9", False)],
)
def test_range(candidate: str, expected: bool) -> None:
    assert (
        allows(
            P.RANGE,
            Version.parse("1.1.0"),
            Version.parse(candidate),
            version_range=">=1.2.0 <2.0.0",
        )
        is expected
    )


def test_newest_allowed_skips_withdrawn_historical_and_rolled_back_releases() -> None:
    releases = [
        R("1.0.0"),
        R("1.1.0"),
        R("1.2.0", withdrawn=True),
        R("1.3.0", current=False),  # only in the history of an Arkitekt file
        R("1.4.0"),
        R("1.5.0"),
        R("2.0.0"),
    ]
    chosen = newest_allowed(releases, "1.0.0", P.MINOR, skipped={"1.5.0"})
    assert chosen is not None
    assert chosen.version == "1.4.0"
    assert newest_allowed(releases, "1.0.0", P.NONE) is None
    assert newest_allowed(releases, "2.0.0", P.MAJOR) is None
    latest = newest_allowed(releases, "1.0.0", P.MAJOR, skipped={"1.5.0"})
    assert latest is not None
    assert latest.version == "2.0.0"  # a newer release than the skipped one is tried


def test_a_setup_on_a_channel_moves_to_the_build_the_channel_points_at() -> None:
    releases = [
        R("1.0.0"),
        R("1.1.0-dev.aaaaaaa", current=False, channel="main"),  # superseded
        R("1.1.0-dev.0bbbbbb", channel="main"),  # the channel's build: "lower" by semver
        R("1.1.0-dev.ccccccc", channel="next"),
    ]
    chosen = newest_allowed(releases, "1.1.0-dev.aaaaaaa", P.NONE, channel="main")
    assert chosen is not None
    assert chosen.version == "1.1.0-dev.0bbbbbb"
    assert newest_allowed(releases, "1.1.0-dev.0bbbbbb", P.NONE, channel="main") is None
    skipped = {"1.1.0-dev.0bbbbbb"}  # rolled back: not tried again
    assert (
        newest_allowed(releases, "1.1.0-dev.aaaaaaa", P.NONE, channel="main", skipped=skipped)
        is None
    )
    # Nobody else is ever moved to a channel's build, pre-releases asked for or not.
    plain = newest_allowed(releases, "0.9.0", P.MAJOR, include_prereleases=True)
    assert plain is not None
    assert plain.version == "1.0.0"
