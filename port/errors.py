"""Port's errors. Translated to exit codes, HTTP statuses or GraphQL codes at the edge."""

from __future__ import annotations


class PortError(Exception):
    """Base of every error Port raises on purpose; ``str()`` is safe to show a user."""

    code = "INTERNAL"

    @property
    def extensions(self) -> dict[str, object]:
        """GraphQL error extensions; graphql-core copies them from the original error."""
        return {"code": self.code}


class ClientError(PortError):
    """The caller can fix it: bad input, unknown thing, conflict."""

    code = "BAD_REQUEST"


class InvalidInput(ClientError):
    """Bad input; ``field`` names the input it is about when there is one (a page shows
    the error next to that field; the API puts it in the error's extensions)."""

    code = "INVALID_INPUT"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field

    @property
    def extensions(self) -> dict[str, object]:
        found: dict[str, object] = {"code": self.code}
        if self.field:
            found["field"] = self.field
        return found


class NotFound(ClientError):
    code = "NOT_FOUND"


class Conflict(ClientError):
    code = "CONFLICT"


class Forbidden(ClientError):
    """The caller is known but may not do this."""

    code = "FORBIDDEN"


class Unauthenticated(ClientError):
    """The credential is missing where one is needed, malformed, unknown, revoked or expired."""

    code = "UNAUTHENTICATED"


class QuotaExceeded(ClientError):
    """The owner's running Pods would exceed their quota (count, CPUs or memory)."""

    code = "QUOTA_EXCEEDED"


class Busy(ClientError):
    """The server is at a limit (open subscriptions, ...); the same request may work later."""

    code = "BUSY"


class Permanent(PortError):
    """A job's failure that retrying cannot fix: the job fails for good at once."""

    code = "PERMANENT"


class TimedOut(PortError):
    """Work ran longer than its time budget and was cut short."""


class RepoUnreachable(ClientError):
    """The remote could not be read: network, credentials, timeout or size limit."""

    code = "REPO_UNREACHABLE"
