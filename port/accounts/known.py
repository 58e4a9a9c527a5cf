"""Credentials this process checked a moment ago, so a request costs no database round
trip for who is asking: page sessions (``port.web.visitor``), app entries
(``port.apps.entry``) and the API's bearer credentials for shared answers
(``port.api.app``) alike."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable

from port.principal import Principal

RECHECK_SECONDS = 2.0  # how stale this process's view of a session may be
KNOWN_MAX = 10_000


class KnownSessions:
    """Sessions this process checked in the last ``RECHECK_SECONDS``, so a page costs
    no database round trip for who is looking. Sign-out, a new password and a
    deactivation made here forget the user's sessions at once; made elsewhere (another
    process, the CLI) they take effect within ``RECHECK_SECONDS``, as for streams."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._seen: OrderedDict[str, tuple[float, Principal]] = OrderedDict()

    def get(self, secret: str) -> Principal | None:
        found = self._seen.get(secret)
        if found is None or self.clock() - found[0] >= RECHECK_SECONDS:
            return None
        return found[1]

    def put(self, secret: str, principal: Principal) -> None:
        self._seen[secret] = (self.clock(), principal)
        self._seen.move_to_end(secret)
        while len(self._seen) > KNOWN_MAX:
            self._seen.popitem(last=False)

    def forget(self, secret: str | None = None, *, user_id: int | None = None) -> None:
        """Forget one session, or every session of ``user_id``."""
        if secret is not None:
            self._seen.pop(secret, None)
        if user_id is not None:
            for kept in [k for k, (_, p) in self._seen.items() if p.user_id == user_id]:
                del self._seen[kept]
