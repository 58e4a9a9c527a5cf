"""In-process publish/subscribe: wakes this process's subscriptions (index runs, pod
events) at once. What they send comes from the database, which they also poll, so the
work of other Port processes reaches them too, a poll later.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any


class Broker:
    """Fan-out of events to every subscriber of a topic; slow subscribers drop old events."""

    def __init__(self, queue_size: int = 100) -> None:
        self._topics: dict[str, set[asyncio.Queue[Any]]] = {}
        self._queue_size = queue_size

    def publish(self, topic: str, event: Any) -> None:
        for queue in self._topics.get(topic, ()):
            if queue.full():
                with suppress(asyncio.QueueEmpty):
                    queue.get_nowait()
            queue.put_nowait(event)

    @contextmanager
    def listen(self, topic: str) -> Iterator[asyncio.Queue[Any]]:
        """A queue that receives ``topic``'s events while the ``with`` block lasts."""
        queue: asyncio.Queue[Any] = asyncio.Queue(self._queue_size)
        self._topics.setdefault(topic, set()).add(queue)
        try:
            yield queue
        finally:
            subscribers = self._topics.get(topic, set())
            subscribers.discard(queue)
            if not subscribers:
                self._topics.pop(topic, None)
