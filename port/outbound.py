"""HTTP requests Port makes to URLs that users chose: only to public addresses.

A user's notice URL is a way into the server's network (server-side request forgery):
``http://169.254.169.254/`` is a cloud's metadata service, ``http://localhost:5432``
Port's own database. So a user's URL must be ``http(s)://`` without credentials, and
every address its host has must be public (``ipaddress``'s ``is_global``, not
multicast, and for IPv6 forms that carry an IPv4 address, such as NAT64 or 6to4, that
address public too), unless an admin allows a network (``PORT_NOTIFY_ALLOWED_NETWORKS``,
for receivers on a lab's own network).

The check runs twice: when the URL is set (a clear error for the user) and when each
request connects, on the very address it connects to, so a name that resolves to a
public address when set and to an internal one later (DNS rebinding) is still refused.
Redirects are never followed: a public receiver could otherwise point Port anywhere.
A request has one deadline for everything (connecting, sending, the answer), so a
receiver that answers a byte at a time cannot hold a worker.
"""

from __future__ import annotations

import http.client
import ipaddress
import socket
import threading
import time
from collections.abc import Sequence
from contextlib import suppress
from dataclasses import dataclass
from urllib.parse import urlsplit

from port.errors import InvalidInput

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
URL_MAX = 2048
MAX_ADDRESSES = 4  # of a host's addresses tried, so that dead ones cannot add up
# IPv6 prefixes whose last 32 bits are an IPv4 address that a gateway reaches: NAT64
# (RFC 6052), IPv4-compatible and SIIT (RFC 2765). 6to4 is ipaddress's ``sixtofour``.
_EMBEDDING = tuple(ipaddress.ip_network(n) for n in ("64:ff9b::/96", "::/96", "::ffff:0:0:0/96"))
# Never public, though ``is_global`` may say so: local-use NAT64, deprecated site-local.
_NEVER = tuple(ipaddress.ip_network(n) for n in ("64:ff9b:1::/48", "fec0::/10"))


class UrlRefused(InvalidInput):
    """A URL Port will not send requests to; the message says why."""


def networks(specs: Sequence[str]) -> list[IPNetwork]:
    """Parse CIDR blocks (``10.1.0.0/16``, ``fd00::/8``); ValueError names a bad one."""
    parsed = []
    for spec in specs:
        try:
            parsed.append(ipaddress.ip_network(spec.strip(), strict=False))
        except ValueError as exc:
            raise ValueError(f"not a network: {spec!r} ({exc})") from exc
    return parsed


class Guard:
    """Decides which addresses requests to users' URLs may reach."""

    def __init__(self, allowed: Sequence[IPNetwork] = ()) -> None:
        self.allowed = list(allowed)

    def permits(self, address: str) -> bool:
        return self._permits(ipaddress.ip_address(address.split("%", 1)[0]))  # no zone

    def _permits(self, ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
        if any(ip in network for network in self.allowed):
            return True
        if isinstance(ip, ipaddress.IPv6Address):
            if any(ip in network for network in _NEVER):
                return False
            inner = ip.ipv4_mapped or ip.sixtofour  # ::ffff:127.0.0.1 is 127.0.0.1
            if inner is None and any(ip in network for network in _EMBEDDING):
                inner = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
            if inner is not None:
                return self._permits(inner)
        return ip.is_global and not ip.is_multicast

    def check_url(self, url: str) -> str:
        """``url`` if requests may go there, else UrlRefused saying why. Resolves the host
        (blocking: call it from a thread in async code)."""
        host, port = _target(url)
        for address in _resolve(url, host, port):
            self._check(url, host, address)
        return url

    def connect(
        self,
        address: tuple[str, int],
        timeout: float | None = None,
        source_address: tuple[str, int] | None = None,
    ) -> socket.socket:
        """``socket.create_connection`` that refuses hosts with any forbidden address;
        ``timeout`` bounds the whole attempt, over all of the host's addresses."""
        host, port = address
        limit = timeout if timeout is not None else 30.0
        end = time.monotonic() + limit
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        for info in infos:
            self._check(f"{host}:{port}", host, str(info[4][0]))
        error: OSError = OSError(f"{host}:{port} has no address")
        for family, kind, proto, _name, sockaddr in infos[:MAX_ADDRESSES]:
            left = end - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"{host}:{port}: no connection within {limit:g} s")
            sock = socket.socket(family, kind, proto)
            try:
                sock.settimeout(left)
                if source_address is not None:
                    sock.bind(source_address)
                sock.connect(sockaddr)
            except OSError as exc:
                sock.close()
                error = exc
                continue
            return sock
        raise error

    def _check(self, url: str, host: str, address: str) -> None:
        if not self.permits(address):
            where = host if host == address else f"{host} ({address})"
            raise UrlRefused(
                f"{url}: {where} is not a public address; Port sends requests to "
                "users' URLs only on the internet (an admin may allow a network)"
            )


def _target(url: str) -> tuple[str, int]:
    """The host and port of an ``http(s)://`` URL without credentials, or UrlRefused."""
    if len(url) > URL_MAX or not (url.isascii() and url.isprintable()) or " " in url:
        raise UrlRefused(
            f"a URL is up to {URL_MAX} printable ASCII characters without spaces "
            "(percent-encode others)"
        )
    try:
        parts = urlsplit(url)
    except ValueError as exc:  # an unclosed "[" of an IPv6 host, say
        raise UrlRefused(f"{url}: {exc}") from exc
    if parts.scheme not in {"http", "https"}:
        raise UrlRefused(f"{url[:100]}: only http:// and https:// URLs are allowed")
    if "@" in parts.netloc:
        raise UrlRefused(
            f"{parts.scheme}://{parts.netloc.rsplit('@', 1)[1]}...: no credentials in "
            "the URL; the notice secret proves a notice came from Port"
        )
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as exc:
        raise UrlRefused(f"{url}: {exc}") from exc
    if not parts.hostname:
        raise UrlRefused(f"{url}: no host")
    return parts.hostname, port


def _resolve(url: str, host: str, port: int) -> list[str]:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise UrlRefused(f"{url}: the host {host} does not resolve from this server") from exc
    return [str(info[4][0]) for info in infos]


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    content_type: str
    body: bytes


class TooLarge(OSError):
    """The answer's body is over the caller's bound; it was not read whole."""


def post(
    url: str, body: bytes, headers: dict[str, str], *, timeout: float, guard: Guard | None
) -> int:
    """POST ``body``; the answer's status, within ``timeout`` seconds in all. No
    redirects; ``guard`` None trusts the URL (an admin's). Raises UrlRefused, OSError
    (TimeoutError past the deadline) or http.client errors."""
    return _exchange("POST", url, body, headers, timeout=timeout, guard=guard, max_bytes=0).status


def get(url: str, *, timeout: float, guard: Guard, max_bytes: int) -> Answer:
    """GET ``url``: its status, content type and body (at most ``max_bytes``, else
    TooLarge), within ``timeout`` seconds in all, from permitted addresses only, no
    redirects. Raises as ``post`` does."""
    return _exchange("GET", url, None, {}, timeout=timeout, guard=guard, max_bytes=max_bytes)


def _exchange(
    method: str,
    url: str,
    body: bytes | None,
    headers: dict[str, str],
    *,
    timeout: float,
    guard: Guard | None,
    max_bytes: int,
) -> Answer:
    parts = urlsplit(url)
    host, port = _target(url) if guard is not None else (parts.hostname or "", parts.port)
    connection_class = (
        http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    )
    connection = connection_class(host, port, timeout=timeout)
    if guard is not None:
        # HTTPConnection.connect, and HTTPSConnection's before TLS, open the socket here.
        connection._create_connection = guard.connect  # type: ignore[attr-defined]
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    expired = threading.Event()

    def cut() -> None:  # unblocks whatever the request waits for
        expired.set()
        sock = connection.sock
        if sock is not None:
            with suppress(OSError):
                # The plain socket's shutdown: SSLSocket's would unwrap TLS first, and a
                # send racing it could go out in the clear.
                socket.socket.shutdown(sock, socket.SHUT_RDWR)

    deadline = threading.Timer(timeout, cut)
    deadline.start()
    try:
        connection.request(method, path, body=body, headers=headers)
        response = connection.getresponse()
        data = response.read(max_bytes + 1) if max_bytes else b""
        if max_bytes and len(data) > max_bytes:
            raise TooLarge(f"the answer is over {max_bytes // 1024} KB")
        return Answer(response.status, response.getheader("Content-Type") or "", data)
    except TooLarge:
        raise
    except (OSError, http.client.HTTPException, ValueError) as exc:
        if expired.is_set():  # whatever the cut made the read or write raise
            raise TimeoutError(f"no answer within {timeout:g} s") from exc
        raise
    finally:
        deadline.cancel()
        deadline.join()  # a cut under way ends before the socket is closed
        connection.close()
