"""Checks of single values shared by the native and the Arkitekt readers.

Each check returns the accepted value or raises ``ValueError`` with a sentence a repo
author can act on; pydantic turns those into located errors, and the Arkitekt reader
calls them directly.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

IDENTIFIER = re.compile(r"[a-z0-9][a-z0-9._-]{0,99}")
FLAVOUR_NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,62}")

# docker/distribution's reference grammar: [host[:port]/]path[:tag][@digest]
_PATH_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
# No IPv6 literal hosts: Docker 20.10 (Debian's) refuses them as "invalid reference".
_HOST = rf"{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*"
_NAME = rf"(?:{_HOST}(?::(?P<port>[0-9]+))?/)?{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*"
_TAG = r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}"  # ASCII: the grammar's \w is not Unicode's
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"
IMAGE_REFERENCE = re.compile(rf"(?P<name>{_NAME})(?::{_TAG})?(?:@{_DIGEST})?")
MAX_IMAGE_LENGTH = 512
MAX_NAME_LENGTH = 255

MAX_FLAVOURS = 64  # builds of one release: more is a mistake, or a query amplifier
MAX_PORTS = 20  # ports one flavour serves
MAX_ENV = 200  # variables one flavour declares
MIN_MEMORY = 6 << 20  # Docker's minimum ("Minimum memory limit allowed is 6MB")
MAX_MEMORY = 1 << 50  # 1 PiB: beyond it a number is a mistake (or an attack on storage)
_MEMORY = re.compile(r"(?P<number>[0-9]+(?:\.[0-9]+)?)\s*(?P<unit>[bkmgt]?)(?:i?b)?", re.I)
_UNITS = {"": 1, "b": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}


def check_identifier(value: str) -> str:
    """An app identifier: stable forever, so strict."""
    if not IDENTIFIER.fullmatch(value):
        raise ValueError(
            f"identifier {value!r} must be 1-100 characters of lowercase letters, digits, "
            "'.', '_' or '-', starting with a letter or digit"
        )
    return value


def check_flavour_name(value: str) -> str:
    """A flavour name: it ends up in container labels and URLs."""
    if not FLAVOUR_NAME.fullmatch(value):
        raise ValueError(
            f"flavour name {value!r} must be 1-63 characters of lowercase letters, digits, "
            "'.', '_' or '-', starting with a letter or digit"
        )
    return value


def check_image(value: str) -> str:
    """A docker image reference such as ``ghcr.io/acme/stardist:0.4.10-cuda``."""
    match = IMAGE_REFERENCE.fullmatch(value) if len(value) <= MAX_IMAGE_LENGTH else None
    if match is not None and match["port"] is not None and not 0 < int(match["port"]) < 65536:
        raise ValueError(f"image {_short(value)}: the registry's port must be 1 to 65535")
    if match is None or len(match["name"]) > MAX_NAME_LENGTH:
        raise ValueError(
            f"image {_short(value)} is not a valid image reference: expected "
            "[registry[:port]/]name[:tag][@sha256:digest] with a lowercase name, "
            "no spaces, at most 512 characters"
        )
    return value


def check_http_url(value: str) -> str:
    """A homepage: an absolute http(s) URL."""
    parts = urlsplit(value) if _printable(value) else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"{_short(value)} is not an http:// or https:// URL")
    return value


def check_logo(value: str) -> str:
    """A logo: an https URL, or a relative path inside the repository."""
    if not value.isprintable() or not value or len(value) > 1000:
        raise ValueError(f"logo {_short(value)} must be a repository path or an https URL")
    if "://" in value or value.lower().startswith(("http:", "https:")):
        parts = urlsplit(value)
        if parts.scheme != "https" or not parts.netloc or not _printable(value):
            raise ValueError(f"logo URL {_short(value)} must be an https:// URL")
        return value
    segments = value.split("/")
    if value.startswith("/") or "\\" in value or ".." in segments or value.strip() != value:
        raise ValueError(
            f"logo {_short(value)} must be a path relative to the repository root "
            "(no leading '/', no '..') or an https URL"
        )
    return value


ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,99}")


def check_env_name(value: str) -> str:
    """An environment variable's name; ``PORT_*`` are the ones Port sets itself."""
    if not ENV_NAME.fullmatch(value):
        raise ValueError(
            f"{_short(value)} is not a variable name: 1-100 letters, digits or '_', "
            "not starting with a digit"
        )
    if value.upper().startswith("PORT_"):
        raise ValueError(f"{value!r}: PORT_* variables are set by Port itself")
    return value


def check_text(value: str) -> str:
    """A value handed to the container (an argument, a variable): no NUL, which no
    process can receive."""
    if "\x00" in value:
        raise ValueError("a NUL character cannot be passed to a process")
    return value


# C0/C1 controls (ESC drives terminals) and bidirectional controls (they reorder what a
# reader sees: "Trojan Source"). Text people read may hold none of them.
UNSHOWABLE = "\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069"
_UNSHOWABLE = re.compile(f"[{UNSHOWABLE}]")  # a character class: tabs and lines allowed


def check_shown_line(value: str) -> str:
    """A name people read (an app's name, its author): one line of plain characters."""
    if "\n" in value or "\t" in value:
        raise ValueError("must be one line, without tabs")
    return check_shown_text(value)


def check_shown_text(value: str) -> str:
    """Text people read (a description): lines and tabs, no control characters."""
    if (found := _UNSHOWABLE.search(value)) is not None:
        raise ValueError(
            f"holds the control character U+{ord(found[0]):04X}, which text shown to "
            "people may not hold"
        )
    return value


def check_path(value: str) -> str:
    """A URL path of the app: absolute, printable, no spaces."""
    if not value.startswith("/") or not _printable(value) or value.startswith("//"):
        raise ValueError(f"path {_short(value)} must start with a single '/', without spaces")
    return value


def parse_memory(value: object) -> int:
    """Bytes from ``8g``, ``512m``, ``1.5GiB`` or a plain number of bytes (binary units)."""
    if isinstance(value, bool):
        raise ValueError("memory must be a size like '8g', '512m' or a number of bytes")
    if isinstance(value, int):
        amount = value
    elif isinstance(value, str) and (match := _MEMORY.fullmatch(value.strip())):
        amount = int(float(match["number"]) * _UNITS[match["unit"].lower()])
    else:
        raise ValueError(
            f"memory {_short(value)} must be a size like '8g', '512m' or a number of bytes"
        )
    if amount < MIN_MEMORY:
        raise ValueError(
            f"memory {_short(value)} is less than 6 MiB, the least the engine gives a container"
        )
    if amount > MAX_MEMORY:
        raise ValueError(f"memory {_short(value)} is more than 1 PiB: no machine has that")
    return amount


def _printable(value: str) -> bool:
    return value.isprintable() and not any(c.isspace() for c in value)


def _short(value: object, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
