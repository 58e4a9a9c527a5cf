"""Notices out: signed JSON POSTs on new releases and on the result of every update, to
the admin's ``PORT_NOTIFY_URL`` (every notice) and to each user's own notice URL (the
notices about their Setups), delivered as durable jobs (kind ``notify``) with retries.

The body is ``{"kind": ..., "at": ..., "data": {...}}``; ``X-Port-Signature-256`` is
``sha256=`` + the hex HMAC-SHA256 of the raw body with the secret of that URL
(``PORT_NOTIFY_SECRET``, or the user's), as GitHub signs its webhooks, so the receiver
can check it came from this Port. A job holds the notice and the user's id, never the
URL or the secret: a user who changes or clears their URL is obeyed by queued notices.

The admin's URL is trusted; a user's is untrusted input and goes through
``port.outbound`` (public addresses only, no redirects). Neither URL is logged: many
receivers (chat webhooks) carry their own secret in the path.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import logging
from collections.abc import Iterable
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from port import outbound
from port.accounts.models import NOTIFY_SECRET_MAX, User
from port.errors import InvalidInput, Permanent
from port.jobs.models import Job, Payload, payload_of
from port.jobs.queue import enqueue
from port.orm import utcnow
from port.settings import Settings, secret_of
from port.signing import hmac_sha256

log = logging.getLogger(__name__)

NOTIFY = "notify"  # the job kind
TIMEOUT_SECONDS = 10
MAX_ATTEMPTS = 8


def signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac_sha256(secret, body)  # as GitHub signs its deliveries


def guard(settings: Settings) -> outbound.Guard:
    """Where users' notice URLs may point, as the admin allowed."""
    return outbound.Guard(outbound.networks(settings.notify_allowed_networks))


async def set_notify_url(
    session: AsyncSession, user: User, url: str | None, secret: str | None, settings: Settings
) -> User:
    """Set (or, with ``url`` None, clear) where ``user``'s notices go. UrlRefused for a
    URL Port will not send to; the caller commits."""
    if url is None:
        user.notify_url = user.notify_secret = None
        return user
    url = url.strip()
    await asyncio.to_thread(guard(settings).check_url, url)  # resolves: not on the loop
    if secret is not None and not 1 <= len(secret) <= NOTIFY_SECRET_MAX:
        raise InvalidInput(f"a notice secret is 1 to {NOTIFY_SECRET_MAX} characters")
    user.notify_url, user.notify_secret = url, secret
    return user


class Notice(Payload):
    kind: str  # "release.added", "update.succeeded", ...
    at: str  # ISO 8601, UTC
    data: dict[str, Any]


class NoticePayload(Payload):
    notice: Notice
    user: int | None = None  # None: the server's PORT_NOTIFY_URL


class Notifier:
    """Queues notices for the admin's URL and for the users concerned that have one."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], settings: Settings) -> None:
        self.sessions = sessions
        self.settings = settings
        self.guard = guard(settings)

    async def announce(self, kind: str, data: dict[str, Any], users: Iterable[int] = ()) -> None:
        """Queue ``kind`` for the admin's URL and for each of ``users`` with a URL."""
        wanted = set(users)
        if not (self.settings.notify_url or wanted):
            return  # nobody to tell: no transaction
        notice = Notice(kind=kind, at=utcnow().isoformat(), data=data)
        async with self.sessions() as session, session.begin():
            if self.settings.notify_url:
                payload = NoticePayload(notice=notice).model_dump(exclude_none=True)
                await enqueue(session, NOTIFY, payload, max_attempts=MAX_ATTEMPTS)
            if not wanted:
                return
            listening = await session.scalars(
                select(User.id)
                .where(User.id.in_(wanted), User.notify_url.is_not(None))
                .order_by(User.id)
            )
            for user_id in listening:
                payload = NoticePayload(notice=notice, user=user_id).model_dump()
                await enqueue(session, NOTIFY, payload, max_attempts=MAX_ATTEMPTS)

    async def deliver(self, job: Job) -> int:
        """The ``notify`` job: POST the notice; an error or a non-2xx answer retries, a
        URL that points where users' URLs may not is a failure for good."""
        payload = payload_of(job, NoticePayload)
        notice, user_id = payload.notice, payload.user
        kind = notice.kind
        if user_id is None:
            url, secret, check, whose = (
                self.settings.notify_url,
                secret_of(self.settings.notify_secret),
                None,
                "the server's",
            )
        else:
            async with self.sessions() as session:
                user = await session.get(User, user_id)
            if user is None:
                return 0  # deleted since
            url, secret = user.notify_url, user.notify_secret
            check, whose = self.guard, f"{user.name}'s"
        if not url:
            return 0  # turned off since it was queued
        body = json.dumps(notice.model_dump(), sort_keys=True).encode()
        headers = {"Content-Type": "application/json", "User-Agent": "port"}
        if secret:
            headers["X-Port-Signature-256"] = signature(secret, body)
        try:
            status = await asyncio.to_thread(
                outbound.post, url, body, headers, timeout=TIMEOUT_SECONDS, guard=check
            )
        except (outbound.UrlRefused, ValueError) as exc:  # ValueError: unsendable, say
            raise Permanent(f"notice {kind} to {whose} URL not sent: {exc}") from exc
        except (OSError, http.client.HTTPException) as exc:
            raise RuntimeError(f"notice {kind} to {whose} URL not delivered: {exc}") from exc
        if not 200 <= status < 300:
            raise RuntimeError(f"notice {kind} to {whose} URL refused: HTTP {status}")
        log.info("notice %s delivered to %s URL (HTTP %s)", kind, whose, status)
        return status
