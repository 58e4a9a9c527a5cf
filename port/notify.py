"""Notices out: a signed JSON POST to ``PORT_NOTIFY_URL`` on new releases and on the
result of every update, delivered as a durable job (kind ``notify``) with retries.

The body is ``{"kind": ..., "at": ..., "data": {...}}``; ``X-Port-Signature-256`` is
``sha256=`` + the hex HMAC-SHA256 of the raw body with ``PORT_NOTIFY_SECRET`` (as
GitHub signs its webhooks), so the receiver can check it came from this Port. The URL is
an admin's setting, not user input; the secret is never logged.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import urllib.error
import urllib.request
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from port.jobs.models import Job
from port.jobs.queue import enqueue
from port.orm import utcnow
from port.settings import Settings

log = logging.getLogger(__name__)

TIMEOUT_SECONDS = 10


def signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class Notifier:
    """Queues notices when ``PORT_NOTIFY_URL`` is set; does nothing otherwise."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], settings: Settings) -> None:
        self.sessions = sessions
        self.settings = settings

    async def announce(self, kind: str, data: dict[str, Any]) -> None:
        if not self.settings.notify_url:
            return
        notice = {"kind": kind, "at": utcnow().isoformat(), "data": data}
        async with self.sessions() as session, session.begin():
            await enqueue(session, "notify", notice, max_attempts=8)

    async def deliver(self, job: Job) -> int:
        """The ``notify`` job: POST the notice; an error or a non-2xx answer retries."""
        url = self.settings.notify_url
        if not url:
            return 0  # turned off since it was queued
        body = json.dumps(job.payload, sort_keys=True).encode()
        headers = {"Content-Type": "application/json", "User-Agent": "port"}
        if self.settings.notify_secret:
            headers["X-Port-Signature-256"] = signature(self.settings.notify_secret, body)
        request = urllib.request.Request(url, data=body, headers=headers, method="POST")  # noqa: S310 - the admin's URL

        def post() -> int:
            with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as answer:  # noqa: S310
                status: int = answer.status
                return status

        try:
            status = await asyncio.to_thread(post)
        except urllib.error.HTTPError as exc:
            raise RuntimeError(
                f"notice {job.payload.get('kind')} refused: HTTP {exc.code}"
            ) from exc
        except (urllib.error.URLError, OSError) as exc:
            raise RuntimeError(f"notice {job.payload.get('kind')} not delivered: {exc}") from exc
        log.info("notice %s delivered (HTTP %s)", job.payload.get("kind"), status)
        return status
