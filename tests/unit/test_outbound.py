"""Users' URLs reach only public addresses: what port.outbound refuses, and why."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from port.outbound import Guard, UrlRefused, networks
from port.settings import Settings

INTERNAL = [
    "http://127.0.0.1/hook",
    "http://localhost:5432/",
    "http://10.1.2.3/",
    "http://172.16.0.1/",
    "http://192.168.1.1/",
    "http://169.254.169.254/latest/meta-data/",  # a cloud's metadata service
    "http://100.64.0.1/",  # carrier-grade NAT
    "http://0.0.0.0:8000/",
    "http://[::1]/",
    "http://[fe80::1]/",
    "http://[fd00::1]/",
    "http://[::ffff:127.0.0.1]/",  # IPv4 in IPv6 clothing
    "http://224.0.0.1/",
    "http://2130706433/",  # 127.0.0.1 as one number: resolvers accept it
]


@pytest.mark.parametrize("url", INTERNAL)
def test_internal_addresses_are_refused(url: str) -> None:
    with pytest.raises(UrlRefused, match="not a public address"):
        Guard().check_url(url)


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("ftp://example.org/", "only http:// and https://"),
        ("file:///etc/passwd", "only http:// and https://"),
        ("gopher://8.8.8.8:6379/_", "only http:// and https://"),
        ("https://user:pw@8.8.8.8/", "no credentials"),
        ("http://8.8.8.8:99999/", "out of range"),
        ("http:///path", "no host"),
        ("http://no-such-host.invalid/", "does not resolve"),
        ("http://8.8.8.8/a b", "without spaces"),
        ("https://8.8.8.8/" + "a" * 3000, "2048"),
    ],
)
def test_malformed_urls_are_refused_with_the_reason(url: str, why: str) -> None:
    with pytest.raises(UrlRefused, match=why) as refused:
        Guard().check_url(url)
    assert "pw@" not in str(refused.value)  # credentials are not echoed


def test_public_addresses_pass() -> None:
    for url in (
        "https://8.8.8.8/hook?x=1",
        "http://[2606:4700:4700::1111]:8080/",
        "http://1.1.1.1",
    ):
        assert Guard().check_url(url) == url


def test_an_admin_may_allow_a_network() -> None:
    lab = Guard(networks(["10.20.0.0/16", "127.0.0.1/32"]))
    assert lab.check_url("http://10.20.3.4/hook")
    assert lab.check_url("http://127.0.0.1:8080/")
    assert lab.permits("::ffff:127.0.0.1")
    with pytest.raises(UrlRefused):
        lab.check_url("http://10.21.0.1/")  # only what was allowed


def test_a_bad_allowed_network_is_a_configuration_error() -> None:
    with pytest.raises(ValidationError, match="not a network: 'lab'"):
        Settings(notify_allowed_networks=["lab"])
    assert Settings(notify_allowed_networks=["10.0.0.1/8"]).notify_allowed_networks == [
        "10.0.0.0/8"
    ]


def test_the_connection_itself_is_checked() -> None:
    """The address connected to is checked, not only the one seen when the URL was set."""
    with pytest.raises(UrlRefused, match=r"127\.0\.0\.1"):
        Guard().connect(("127.0.0.1", 9), timeout=1)
    with pytest.raises(UrlRefused, match="localhost"):
        Guard().connect(("localhost", 9), timeout=1)
