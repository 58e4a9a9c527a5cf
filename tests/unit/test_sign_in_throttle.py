"""How failed sign-ins slow further tries down (port.accounts.throttle), on a fake clock."""

from __future__ import annotations

import pytest

from port.accounts import throttle as throttling
from port.accounts.throttle import SignInThrottle


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_free_failures_then_a_doubling_wait_up_to_the_longest() -> None:
    clock = Clock()
    gate = SignInThrottle(free=3, longest=8, longest_name=8, clock=clock)
    waits = []
    for _ in range(8):
        waits.append(gate.wait("alice", "10.0.0.1"))
        gate.failed("alice", "10.0.0.1")
    assert waits[:3] == [0, 0, 0]
    assert gate.wait("alice", "10.0.0.1") == 8  # capped
    clock.now += 8
    assert gate.wait("alice", "10.0.0.1") == 0
    fresh = SignInThrottle(free=3, longest_name=60, clock=clock)
    for expected in (1, 2, 4, 8, 16):
        for _ in range(1 if expected > 1 else 3):
            fresh.failed("bob", "10.0.0.2")
        assert fresh.wait("bob", "10.0.0.2") == expected


def test_unknown_names_are_counted_like_real_ones_and_names_ignore_case() -> None:
    gate = SignInThrottle(free=2, clock=Clock())
    for name in ("nobody", "NoBody"):
        gate.failed(name, "10.0.0.1")
    assert gate.wait("nobody", "10.0.0.9") > 0  # the name, from any address


def test_an_address_is_slowed_for_every_name_it_tries() -> None:
    gate = SignInThrottle(free=2, clock=Clock())
    gate.failed("a", "10.0.0.1")
    gate.failed("b", "10.0.0.1")
    assert gate.wait("c", "10.0.0.1") > 0
    assert gate.wait("c", "10.0.0.2") == 0


def test_a_success_clears_the_name_not_the_address() -> None:
    gate = SignInThrottle(free=1, clock=Clock())
    gate.failed("alice", "10.0.0.1")
    gate.succeeded("alice")
    assert gate.wait("alice", "10.0.0.2") == 0
    assert gate.wait("other", "10.0.0.1") > 0


def test_failures_are_forgotten_after_the_window() -> None:
    clock = Clock()
    gate = SignInThrottle(free=1, window=60, clock=clock)
    gate.failed("alice", "10.0.0.1")
    clock.now += 60
    assert gate.wait("alice", "10.0.0.1") == 0


def test_memory_is_bounded_and_keeps_what_holds_a_guesser_back(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(throttling, "KEYS_MAX", 10)
    gate = SignInThrottle(free=3, clock=Clock())
    for _ in range(5):
        gate.failed("admin", "10.0.0.1")  # throttled now
    for number in range(100):  # a spray of names meant to push admin's count out
        gate.failed(f"user{number}", f"10.1.0.{number}")
    assert len(gate._failures) == 10
    assert gate.wait("admin", "10.9.9.9") > 0  # still held back
    assert gate.wait("user99", "10.9.9.9") == 0  # one failure: not throttled anyway


def test_a_name_waits_less_than_an_address() -> None:
    """Anyone can make a name's count grow: its wait is capped low, so nobody can keep
    its owner out for long; the guessing address waits the long cap."""
    clock = Clock()
    gate = SignInThrottle(free=1, longest=300, longest_name=30, clock=clock)
    for _ in range(20):
        gate.failed("admin", "10.6.6.6")
    assert gate.wait("admin", "10.0.0.1") == 30  # the owner, from elsewhere
    assert gate.wait("other", "10.6.6.6") == 300  # the guesser


def test_one_attempt_at_a_time_per_name_and_address() -> None:
    gate = SignInThrottle(clock=Clock())
    with gate.attempt("admin", "10.0.0.1"):
        assert gate.wait("admin", "10.0.0.2") > 0  # a parallel try of the name waits
        assert gate.wait("bob", "10.0.0.1") > 0  # and of the address
        assert gate.wait("bob", "10.0.0.2") == 0
    assert gate.wait("admin", "10.0.0.1") == 0
