"""A process remembers a checked session for RECHECK_SECONDS, and forgets on request."""

from __future__ import annotations

import pytest

from port.accounts import known as known_module
from port.accounts.known import RECHECK_SECONDS, KnownSessions
from port.principal import Principal

ALICE = Principal(user_id=1, name="alice", is_admin=False, via="session")
BOB = Principal(user_id=2, name="bob", is_admin=False, via="session")


class Clock:
    now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_session_is_checked_again_after_the_recheck_time() -> None:
    clock = Clock()
    known = KnownSessions(clock)
    known.put("s1", ALICE)
    clock.now = RECHECK_SECONDS - 0.01
    assert known.get("s1") == ALICE
    clock.now = RECHECK_SECONDS
    assert known.get("s1") is None


def test_forgetting_one_session_or_every_session_of_a_user() -> None:
    known = KnownSessions(Clock())
    for secret, who in (("a1", ALICE), ("a2", ALICE), ("b1", BOB)):
        known.put(secret, who)
    known.forget("a1")
    assert known.get("a1") is None
    assert known.get("a2") == ALICE
    known.forget(user_id=ALICE.user_id)
    assert known.get("a2") is None
    assert known.get("b1") == BOB


def test_memory_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(known_module, "KNOWN_MAX", 3)
    known = KnownSessions(Clock())
    for number in range(10):
        known.put(f"s{number}", ALICE)
    assert [known.get(f"s{n}") is not None for n in range(10)] == [False] * 7 + [True] * 3
