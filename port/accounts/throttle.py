"""Failed sign-ins slow further tries down, per account name and per client address.

After ``free`` failures of one key, each further try of that key must wait: 1 s after
the last failure, doubling with every failure, up to ``longest``. A key is forgotten
``window`` after its last failure, or at a success (of that name; an address keeps its
count, so one good account does not launder a guessing client). Names are counted
whether or not such a user exists: the answer never tells which names are real.

Counts live in this process (a bounded number of keys, the least recently failed
forgotten first): several Port processes each slow a guesser down on their own.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from port.accounts.models import USER_NAME_MAX

KEYS_MAX = 10_000


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
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.free = free
        self.window = window
        self.longest = longest
        self.clock = clock
        self._failures: OrderedDict[str, _Failures] = OrderedDict()

    @staticmethod
    def _keys(name: str, address: str) -> tuple[str, str]:
        return "name:" + name[: USER_NAME_MAX + 1].lower(), "address:" + address

    def wait(self, name: str, address: str) -> float:
        """Seconds until ``name`` may be tried from ``address``; 0: now."""
        now = self.clock()
        longest = 0.0
        for key in self._keys(name, address):
            failures = self._failures.get(key)
            if failures is None:
                continue
            if now - failures.last >= self.window:
                del self._failures[key]
                continue
            beyond = failures.count - self.free
            if beyond >= 0:
                delay = min(self.longest, 2.0**beyond)
                longest = max(longest, failures.last + delay - now)
        return max(0.0, longest)

    def failed(self, name: str, address: str) -> None:
        now = self.clock()
        for key in self._keys(name, address):
            failures = self._failures.pop(key, None) or _Failures(0, now)
            failures.count += 1
            failures.last = now
            self._failures[key] = failures  # to the end: the most recently failed
        while len(self._failures) > KEYS_MAX:
            self._failures.popitem(last=False)

    def succeeded(self, name: str) -> None:
        self._failures.pop(self._keys(name, "")[0], None)
