"""Cursor pagination for Relay connections: opaque offset cursors, capped page sizes.

Offsets over a stable order (identifier, semver, id) are enough for a catalogue that
changes only when an index run commits; the cursor stays opaque, so keyset cursors can
replace it without a schema change.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

from strawberry.relay import GlobalID

from port.errors import InvalidInput

T = TypeVar("T")
_PREFIX = "offset:"
_NUMBER = re.compile(r"[0-9]{1,9}")  # ASCII digits only ("²".isdigit() is true), < 10**9
DEFAULT_PAGE_SIZE = 20  # when `first` is not given


def in_order(
    node_ids: Sequence[str], rows: Mapping[int, T], make: Callable[[T], object]
) -> list[object]:
    """``resolve_nodes``' answer: a node per id, in order; None where ``rows`` (what the
    caller may see) lacks it."""
    wanted = [int(i) if _NUMBER.fullmatch(i) else None for i in node_ids]
    return [make(rows[i]) if i is not None and i in rows else None for i in wanted]


def row_id(gid: GlobalID, type_name: str) -> int:
    """The row id behind a global id of ``type_name``; anything else is INVALID_INPUT."""
    if gid.type_name != type_name or not _NUMBER.fullmatch(gid.node_id):
        raise InvalidInput(f"{str(gid)[:60]!r} is not the id of a {type_name}")
    return int(gid.node_id)


def encode_cursor(offset: int) -> str:
    return base64.urlsafe_b64encode(f"{_PREFIX}{offset}".encode()).decode()


def decode_cursor(cursor: str) -> int:
    try:
        text = base64.urlsafe_b64decode(cursor.encode()).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        text = ""
    if not text.startswith(_PREFIX) or not _NUMBER.fullmatch(text[len(_PREFIX) :]):
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
        return cls(
            offset=offset, limit=min(DEFAULT_PAGE_SIZE, max_size) if first is None else first
        )

    def cut(self, items: Sequence[T]) -> list[T]:
        return list(items[self.offset : self.offset + self.limit])
