"""The names of app origins: a Setup's slug, the origin it gives, the Setup a Host names.

A Setup's address is ``<scheme>://<app>-<setup id>.<PORT_APPS_DOMAIN>[:port]/<path>``,
on the scheme and port of Port's public URL. The app part only makes it readable: the
Setup id decides, and a slug whose app part is not the Setup's own leads nowhere.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from manifests.specs import Run
from port.settings import Settings

_NOT_IN_LABEL = re.compile(r"[^a-z0-9]+")
_SLUG = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,50}[a-z0-9])?-(?P<setup>[1-9][0-9]{0,17})")
ENTER_PATH = "/.port/enter"  # on an app origin: where an entry code is redeemed
PREFIX_MAX = 40  # a DNS label holds 63 characters: the app's part, '-', the id
DEFAULT_PORTS = {"http": 80, "https": 443}


def slug(identifier: str, setup_id: int) -> str:
    """``stardist-12``: the app identifier as a DNS label, and the Setup id."""
    prefix = _NOT_IN_LABEL.sub("-", identifier.lower()).strip("-")[:PREFIX_MAX].strip("-")
    return f"{prefix or 'app'}-{setup_id}"


@dataclass(frozen=True, slots=True)
class AppOrigins:
    """Where app origins are under one set of settings."""

    scheme: str
    domain: str
    port: str  # ":8080", or "" for the scheme's default port
    secure: bool

    @classmethod
    def of(cls, settings: Settings) -> AppOrigins:
        parts = urlsplit(settings.public_url)
        scheme = parts.scheme or "http"
        port = f":{parts.port}" if parts.port and parts.port != DEFAULT_PORTS.get(scheme) else ""
        return cls(scheme, settings.apps_domain, port, scheme == "https")

    def origin(self, setup_slug: str) -> str:
        return f"{self.scheme}://{setup_slug}.{self.domain}{self.port}"

    def address(self, setup_slug: str, run: Run) -> str | None:
        """The URL of the app's start page, if it serves http."""
        served = run.http
        return self.origin(setup_slug) + served.path if served is not None else None

    def label_of(self, host: str) -> str | None:
        """The first label of a ``Host`` under the apps domain (``stardist-12``), ``""``
        for a name under it that is no slug's, None for every other host (Port's own)."""
        name = host.lower()
        if not name.startswith("["):  # an IPv6 literal is never an app's name
            name = name.rpartition(":")[0] if ":" in name else name
        label, dot, rest = name.rstrip(".").partition(".")
        if not dot or (rest != self.domain and not rest.endswith(f".{self.domain}")):
            return None
        if rest != self.domain:
            return ""  # deeper names are no app's
        return label


def setup_id_of(label: str) -> int | None:
    """The Setup id in a slug, or None when it is not a slug."""
    match = _SLUG.fullmatch(label)
    return int(match["setup"]) if match else None
