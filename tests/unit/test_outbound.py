"""Users' URLs reach only public addresses: what port.outbound refuses, and why."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest
from pydantic import ValidationError

from port.outbound import Guard, UrlRefused, networks, post
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
    # IPv6 forms that carry an internal IPv4 address to a gateway:
    "http://[64:ff9b::a00:1]/",  # NAT64 of 10.0.0.1
    "http://[2002:a9fe:a9fe::]/",  # 6to4 of 169.254.169.254
    "http://[::127.0.0.1]/",  # IPv4-compatible
    "http://[::ffff:0:7f00:1]/",  # SIIT
    "http://[64:ff9b:1::808:808]/",  # local-use NAT64
    "http://[fec0::1]/",  # site-local
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
        ("http://8.8.8.8/\u00e9", "ASCII"),
        ("http://[::1/", "Invalid IPv6 URL"),
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
        "http://[64:ff9b::808:808]/",  # NAT64 of a public address
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


@pytest.fixture
def dripping() -> Iterator[str]:
    """A receiver on 127.0.0.1 that answers one byte every 0.2 s, for up to a minute."""
    server = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve() -> None:
        conn, _ = server.accept()
        with conn:
            conn.recv(65536)
            for byte in b"HTTP/1.1 200 OK\r\n" + b"X: " + b"y" * 300:
                if stop.wait(0.2):
                    return
                conn.sendall(bytes([byte]))

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}/"
    stop.set()
    server.close()


def test_a_slow_receiver_cannot_hold_a_request_past_its_deadline(dripping: str) -> None:
    lab = Guard(networks(["127.0.0.1/32"]))
    with pytest.raises(TimeoutError, match="no answer within 1 s"):
        post(dripping, b"{}", {}, timeout=1, guard=lab)
