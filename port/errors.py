"""Port's errors. Translated to exit codes, HTTP statuses or GraphQL codes at the edge."""

from __future__ import annotations


class PortError(Exception):
    """Base of every error Port raises on purpose; ``str()`` is safe to show a user."""

    code = "INTERNAL"


class ClientError(PortError):
    """The caller can fix it: bad input, unknown thing, conflict."""

    code = "BAD_REQUEST"


class InvalidInput(ClientError):
    code = "INVALID_INPUT"


class NotFound(ClientError):
    code = "NOT_FOUND"


class Conflict(ClientError):
    code = "CONFLICT"
