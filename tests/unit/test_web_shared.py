"""What pages share between viewers is kept a few seconds, and only so much of it."""

from __future__ import annotations

import pytest

from port.web import shared as sharing
from port.web.shared import Shared


class Clock:
    now = 0.0

    def __call__(self) -> float:
        return self.now


def test_kept_for_its_time_only() -> None:
    clock = Clock()
    kept = Shared(ttl=5, clock=clock)
    kept.put("page 1", ["cards"])
    clock.now = 4.9
    assert kept.get("page 1") == ["cards"]
    clock.now = 5.0
    assert kept.get("page 1") is None


def test_nothing_is_kept_without_a_lifetime() -> None:
    kept = Shared(ttl=0)
    kept.put("page 1", ["cards"])
    assert kept.get("page 1") is None


def test_visitors_searches_cannot_grow_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sharing, "SIZE", 3)
    kept = Shared(ttl=60, clock=Clock())
    for search in range(10):
        kept.put(search, search)
    assert [kept.get(n) for n in range(10)] == [None] * 7 + [7, 8, 9]
