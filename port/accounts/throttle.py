"""Failed sign-ins slow further tries down, per account name and per client address.

After ``free`` failures of one key, each further try of that key must wait: 1 s after
the last failure, doubling with every failure, up to ``longest`` for an address and
``longest_name`` for a name. A name's wait is capped lower because anyone can make it
grow (one wrong password now and then would otherwise keep its owner out for good);
an address's count is what holds a guesser back. A key is forgotten ``window`` after
its last failure, or at a success (of that name; an address keeps its count, so one
good account does not launder a guessing client). Names are counted whether or not
such a user exists: the answer never tells which names are real.

One attempt per name and per address is checked at a time (``attempt``): a burst of
parallel tries waits like a run of failures would, instead of all passing the check
before the first failure is counted.

Counts live in this process (at most ``KEYS_MAX`` keys; when full, keys that are not
holding anyone back go first): several Port processes each slow a guesser down on
their own.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from port.accounts.models import USER_NAME_MAX

KEYS_MAX = 100_000
EVICTION_SCAN = 100  # keys looked at for one that holds nobody back, before the oldest goes
BUSY_SECONDS = 1.0  # the wait while another attempt of the same name or address runs


@dataclass(slots=True)
class _Failures:
    count: int
    last: float


class SignInThrottle:
    def __init__(
        self,
        *,
        free: int = 5,
        window: float = 15 * 60,
        longest: float = 5 * 60,
        longest_name: float = 30,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.free = free
        self.window = window
        self.longest = longest
        self.longest_name = longest_name
        self.clock = clock
        self._failures: OrderedDict[str, _Failures] = OrderedDict()
        self._running: set[str] = set()

    @staticmethod
    def _keys(name: str, address: str) -> tuple[str, str]:
        return "name:" + name[: USER_NAME_MAX + 1].lower(), "address:" + address

    def wait(self, name: str, address: str) -> float:
        """Seconds until ``name`` may be tried from ``address``; 0: now."""
        now = self.clock()
        longest = 0.0
        for key in self._keys(name, address):
            if key in self._running:
                longest = max(longest, BUSY_SECONDS)
            failures = self._failures.get(key)
            if failures is None:
                continue
            if now - failures.last >= self.window:
                del self._failures[key]
                continue
            beyond = failures.count - self.free
            if beyond >= 0:
                cap = self.longest_name if key.startswith("name:") else self.longest
                delay = min(cap, 2.0**beyond)
                longest = max(longest, failures.last + delay - now)
        return max(0.0, longest)

    @contextmanager
    def attempt(self, name: str, address: str) -> Iterator[None]:
        """Hold the name and the address while one attempt is checked."""
        keys = set(self._keys(name, address))
        self._running |= keys
        try:
            yield
        finally:
            self._running -= keys

    def failed(self, name: str, address: str) -> None:
        now = self.clock()
        for key in self._keys(name, address):
            failures = self._failures.pop(key, None) or _Failures(0, now)
            failures.count += 1
            failures.last = now
            self._failures[key] = failures  # to the end: the most recently failed
        while len(self._failures) > KEYS_MAX:
            self._evict()

    def succeeded(self, name: str) -> None:
        self._failures.pop(self._keys(name, "")[0], None)

    def _evict(self) -> None:
        """Drop the oldest key that holds nobody back, or else the oldest."""
        for number, (key, failures) in enumerate(self._failures.items()):
            if number >= EVICTION_SCAN:
                break
            if failures.count < self.free:
                del self._failures[key]
                return
        self._failures.popitem(last=False)
