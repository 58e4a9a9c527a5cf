"""Which registries Port lets the container engine pull from: public ones, and those an
admin allows.

An image reference in a manifest is a URL an app author chose, and the engine fetches it
from the host's own network: ``127.0.0.1:8000/x`` makes it send requests to Port's
loopback API, ``169.254.169.254/x`` to a cloud's metadata service (server-side request
forgery through the engine). So a registry is checked like the target of any outbound
request (``port.outbound``): every address of its host must be public, unless an admin
lists the registry in ``PORT_ALLOWED_REGISTRIES`` (a lab's own registry; the local test
registry).

The check runs when a repository is indexed (a refused flavour is a located error the
author sees) and again before each start (the policy or the name's answer may have
changed). The engine looks the name up again itself, so a name whose answer changes
between the two lookups is not caught here; ``docs/deploy.md`` says what closes that.
"""

from __future__ import annotations

import ipaddress
import re
import socket
import threading
from collections.abc import Iterable

from port.outbound import Guard

DOCKER_HUB = "docker.io"
RESOLVE_SECONDS = 2.0  # a registry's name lookup; slower ones count as unresolved
# host[:port] as the engine reads the first part of a reference: a DNS name, an IPv4
# address or a bracketed IPv6 address, and a port.
_REGISTRY = re.compile(
    r"(?P<host>\[[0-9a-f:.]+\]|[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)*)"
    r"(?::(?P<port>[0-9]{1,5}))?"
)


def registry_of(image: str) -> str:
    """The registry an image reference names, as the engine reads it: the part before
    the first ``/`` when it has a ``.`` or ``:`` or is ``localhost``, else Docker Hub."""
    first, slash, _rest = image.partition("/")
    if slash and ("." in first or ":" in first or first == "localhost"):
        return first.lower()
    return DOCKER_HUB


def normalise(entry: str) -> str:
    """An admin's ``host[:port]`` entry, lowercased; ValueError names a bad one."""
    value = entry.strip().lower()
    match = _REGISTRY.fullmatch(value)
    if match is None or (match["port"] is not None and not 0 < int(match["port"]) < 65536):
        raise ValueError(
            f"not a registry: {entry!r} (expected host[:port], e.g. 'registry.lab:5000')"
        )
    return value


class Registries:
    """Decides which registries may be pulled from. Entries match exactly: an allowed
    ``registry.lab`` is not ``registry.lab:5000``. Name lookups are cached per instance,
    so one index run resolves each registry once."""

    def __init__(self, allowed: Iterable[str] = (), guard: Guard | None = None) -> None:
        self.allowed = frozenset(normalise(entry) for entry in allowed)
        self.guard = guard or Guard()
        self._answers: dict[str, str | None] = {}

    def refusal(self, image: str) -> str | None:
        """Why ``image`` may not be pulled, in words for its user; None if it may.

        Blocks for up to RESOLVE_SECONDS on a name lookup: call it from a thread in
        async code."""
        registry = registry_of(image)
        if registry == DOCKER_HUB or registry in self.allowed:
            return None
        if registry not in self._answers:
            self._answers[registry] = self._check(registry)
        return self._answers[registry]

    def _check(self, registry: str) -> str | None:
        match = _REGISTRY.fullmatch(registry)
        if match is None:
            return f"the registry {registry!r} is not a host[:port]"
        host = match["host"].strip("[]")
        if host == "localhost" or host.endswith(".localhost"):
            addresses = ["127.0.0.1"]  # what every resolver answers for it (RFC 6761)
        else:
            addresses = resolve(host)
        for address in addresses:
            if not self.guard.permits(address):
                where = host if host == address else f"{host} ({address})"
                return (
                    f"the registry {registry} is on this server's own network: {where} is "
                    "not a public address. Port pulls images only from public registries "
                    "and those an admin allows (PORT_ALLOWED_REGISTRIES)"
                )
        return None


def _is_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def resolve(host: str) -> list[str]:
    """The addresses ``host`` resolves to within RESOLVE_SECONDS; none if it does not.

    Callers let a name that does not resolve pass: the engine (or git) cannot reach it
    either, and its own attempt fails on its own."""
    if _is_address(host):
        return [host]
    found: list[str] = []

    def lookup() -> None:
        try:
            infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
        except (OSError, UnicodeError):
            return
        found.extend(str(info[4][0]) for info in infos)

    worker = threading.Thread(target=lookup, name=f"resolve {host}", daemon=True)
    worker.start()
    worker.join(RESOLVE_SECONDS)
    return list(found) if not worker.is_alive() else []
