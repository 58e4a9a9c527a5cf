"""The caller of a request, whatever credential it showed."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class Principal:
    """Who is calling.

    ``user_id`` is the local ``users`` row, or None for a JWT subject with no local user
    (it may read, but owns nothing until an admin adds a user of that name). ``via`` says
    which credential proved it: an API token, a JWT, a page session (a signed-in
    browser), an app origin's entry cookie (``"app"``), or ``"cli"`` for the command
    line, which runs on the server with database access and acts as an admin.
    """

    user_id: int | None
    name: str
    is_admin: bool
    via: Literal["token", "jwt", "session", "app", "cli"]

    def owns(self, user_id: int) -> bool:
        """True when this principal is the local user ``user_id``."""
        return self.user_id is not None and self.user_id == user_id


# What `port user ...` / `port token ...` act as.
CLI = Principal(user_id=None, name="cli", is_admin=True, via="cli")
