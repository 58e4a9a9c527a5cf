"""Cursor pagination for Relay connections: opaque offset cursors, capped page sizes.

Offsets over a stable order (identifier, semver, id) are enough for a catalogue that
changes only when an index run commits; the cursor stays opaque, so keyset cursors can
replace it without a schema change.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeVar

from port.errors import InvalidInput

T = TypeVar("T")
_PREFIX = "offset:"


def encode_cursor(offset: int) -> str:
    return base64.urlsafe_b64encode(f"{_PREFIX}{offset}".encode()).decode()


def decode_cursor(cursor: str) -> int:
    try:
        text = base64.urlsafe_b64decode(cursor.encode()).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        text = ""
    if not text.startswith(_PREFIX) or not text[len(_PREFIX) :].isdigit():
        raise InvalidInput(f"cursor {cursor[:40]!r} is not one this API gave out")
    return int(text[len(_PREFIX) :])


@dataclass(frozen=True, slots=True)
class Window:
    """Which slice of an ordered list a page shows: ``offset`` and ``limit``."""

    offset: int
    limit: int

    @classmethod
    def of(cls, first: int | None, after: str | None, *, max_size: int) -> Window:
        if first is not None and first < 0:
            raise InvalidInput("first must not be negative")
        if first is not None and first > max_size:
            raise InvalidInput(f"first may be at most {max_size}")
        offset = decode_cursor(after) + 1 if after else 0
        return cls(offset=offset, limit=max_size if first is None else first)

    def cut(self, items: Sequence[T]) -> list[T]:
        return list(items[self.offset : self.offset + self.limit])
