"""In-process publish/subscribe for subscriptions (index runs, pod events).

One process serves one broker; several Port processes would need the database's
notifications (PostgreSQL LISTEN/NOTIFY), which the jobs work will bring.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
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

    async def subscribe(self, topic: str) -> AsyncIterator[Any]:
        with self.listen(topic) as queue:
            while True:
                yield await queue.get()
