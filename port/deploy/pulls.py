"""Image pulls in the background: one task per image, each within a deadline.

A pull can take minutes (a big image, a slow or hostile registry). The reconciler must
not wait for it: a pass that finds a Pod's image missing starts its pull here and moves
on to the other Pods, and the pull's end wakes the reconciler, whose next pass starts
the Pod (or fails it with the pull's error). While a pull runs, its progress is saved
on every Pod still pulling that image, about once a second.

Pulls live in this process only. After a restart of Port, a Pod left PULLING simply
starts its pull again; two Port processes may pull one image at once, which the engine
serves as one.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from port.deploy.backends.base import Backend, BackendError, BackendUnavailable, PullProgress

log = logging.getLogger(__name__)

SAVE_INTERVAL_SECONDS = 1.0  # between two saves of one pull's progress
CLOSE_SECONDS = 5.0  # `close`: how long cancelled pulls may take to end

SaveProgress = Callable[[str, PullProgress], Awaitable[None]]
"""Saves ``image``'s progress on the Pods pulling it."""


@dataclass(eq=False)
class Pull:
    """One image's pull: its task, and the last progress the backend reported."""

    image: str
    task: asyncio.Task[None] = field(init=False)
    latest: PullProgress | None = None
    error: BackendError | BackendUnavailable | None = None  # why the ended pull failed


class Pulls:
    """The pulls of one backend. ``ended(image)`` is called when a pull ends, however."""

    def __init__(
        self,
        backend: Backend,
        deadline_seconds: float,
        save: SaveProgress,
        ended: Callable[[str], None],
    ) -> None:
        self.backend = backend
        self.deadline = deadline_seconds
        self._save = save
        self._ended = ended
        self._pulls: dict[str, Pull] = {}

    def running(self, image: str) -> Pull | None:
        """The pull of ``image`` if one is under way."""
        pull = self._pulls.get(image)
        return pull if pull is not None and not pull.task.done() else None

    def under_way(self) -> list[Pull]:
        """Every pull that has not ended."""
        return [pull for pull in self._pulls.values() if not pull.task.done()]

    def start(self, image: str) -> Pull:
        """The pull of ``image``: the one under way, or a new one."""
        pull = self._pulls.get(image)
        if pull is None or pull.task.done():
            pull = Pull(image)
            pull.task = asyncio.create_task(self._run(pull), name=f"pull {image}")
            self._pulls[image] = pull
        return pull

    def take(self, image: str) -> Pull | None:
        """The ended pull of ``image``, handed over once (its result is then used)."""
        pull = self._pulls.get(image)
        if pull is None or not pull.task.done():
            return None
        del self._pulls[image]
        return pull

    async def _run(self, pull: Pull) -> None:
        def progress(update: PullProgress) -> None:  # may run on the backend's thread
            pull.latest = update

        work = asyncio.ensure_future(self.backend.pull(pull.image, progress))
        saved: PullProgress | None = None
        try:
            async with asyncio.timeout(self.deadline):
                while not work.done():
                    await asyncio.wait({work}, timeout=SAVE_INTERVAL_SECONDS)
                    if pull.latest is not None and pull.latest != saved:
                        saved = pull.latest
                        await self._save_quietly(pull.image, saved)
                await work  # its error, if any
        except asyncio.CancelledError:
            work.cancel()  # Port stops: the pull goes with it
            raise
        except TimeoutError:
            work.cancel()
            pull.error = BackendError(
                f"pulling {pull.image} took longer than {self.deadline:g} s "
                "(PORT_PULL_TIMEOUT_SECONDS)"
            )
        except (BackendError, BackendUnavailable) as exc:  # raised by the pass that takes it
            pull.error = exc
        except Exception as exc:  # kept for the Pod's message, not raised
            log.exception("pulling %s failed", pull.image)
            pull.error = BackendError(f"pulling {pull.image} failed: {exc!r}")
        finally:
            if pull.latest is not None and pull.latest != saved:
                await self._save_quietly(pull.image, pull.latest)
            self._ended(pull.image)

    async def _save_quietly(self, image: str, update: PullProgress) -> None:
        try:
            await self._save(image, update)
        except Exception:  # progress is a courtesy: never the reason a pull fails
            log.warning("could not save the progress of pulling %s", image, exc_info=True)

    async def close(self) -> None:
        """Cancel every pull under way (Port stops)."""
        tasks = [pull.task for pull in self.under_way()]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=CLOSE_SECONDS)
        self._pulls.clear()
