"""What the pages show alike to every viewer, computed once and kept a few seconds.

The catalogue's cards depend on the catalogue and this machine, never on who looks,
so signed-in browsing costs what anonymous browsing does. Kept ``PORT_CACHE_SECONDS``,
like the API's cached answers (so a change made elsewhere shows that late at most), and
at most ``SIZE`` of them: the keys come from visitors' searches, so their number must
not be theirs to choose.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Hashable

SIZE = 512


class Shared:
    def __init__(self, ttl: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self.clock = clock
        self._kept: OrderedDict[Hashable, tuple[float, object]] = OrderedDict()

    def get(self, key: Hashable) -> object | None:
        found = self._kept.get(key)
        if found is None or self.clock() >= found[0]:
            return None
        self._kept.move_to_end(key)
        return found[1]

    def put(self, key: Hashable, value: object) -> None:
        if self.ttl <= 0:
            return
        self._kept[key] = (self.clock() + self.ttl, value)
        self._kept.move_to_end(key)
        while len(self._kept) > SIZE:
            self._kept.popitem(last=False)

    def clear(self) -> None:
        """The catalogue changed here: forget everything (as the API's cache does)."""
        self._kept.clear()
