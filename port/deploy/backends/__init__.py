"""Container backends, found by name through the ``port.backends`` entry point group.

A package adds a backend by declaring, in its own pyproject::

    [project.entry-points."port.backends"]
    swarm = "port_swarm:SwarmBackend"

The entry point names a ``Backend`` subclass with a ``from_settings(settings)`` factory.
Port's own Docker backend is registered the same way, so it gets no special treatment.
"""

from __future__ import annotations

from importlib.metadata import entry_points

from port.deploy.backends.base import Backend
from port.errors import InvalidInput
from port.settings import Settings

GROUP = "port.backends"


def available() -> list[str]:
    """Names of the installed backends, sorted."""
    return sorted(ep.name for ep in entry_points(group=GROUP))


def load_backend(settings: Settings) -> Backend:
    """The backend ``settings.backend`` names; INVALID_INPUT lists the installed ones."""
    found = entry_points(group=GROUP, name=settings.backend)
    if not found:
        raise InvalidInput(
            f"no backend named {settings.backend!r}; installed: {', '.join(available())}"
        )
    cls = next(iter(found)).load()
    if not (isinstance(cls, type) and issubclass(cls, Backend)):
        raise InvalidInput(f"backend {settings.backend!r} is not a port Backend subclass")
    backend: Backend = cls.from_settings(settings)
    return backend
