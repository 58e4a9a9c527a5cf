"""Signed-in browsers: a session begins at sign-in and is known by its cookie.

The cookie holds 32 random bytes (URL-safe); the database keeps only their SHA-256, so a
copy of the database signs no one in. Like the rest of the accounts service, functions
add and flush and leave the commit to the caller.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import contains_eager

from port.accounts.models import User, WebSession
from port.accounts.service import LAST_USED_PRECISION, hash_secret
from port.orm import utcnow
from port.principal import Principal
from port.settings import Settings

log = logging.getLogger(__name__)

_SECRET_MAX = 64  # 43 characters are issued; anything much longer is not ours


@dataclass(frozen=True, slots=True)
class Lifetime:
    """How long a session lasts: ``idle`` after its last use, ``absolute`` after sign-in."""

    idle: timedelta
    absolute: timedelta

    @classmethod
    def of(cls, settings: Settings) -> Lifetime:
        return cls(
            idle=timedelta(minutes=settings.session_idle_minutes),
            absolute=timedelta(hours=settings.session_max_hours),
        )

    def ended(self, created_at: datetime, last_seen_at: datetime, now: datetime) -> bool:
        return now - last_seen_at >= self.idle or now - created_at >= self.absolute


async def start_session(session: AsyncSession, user: User) -> str:
    """A new session of ``user``; its cookie value, which is not stored."""
    secret = secrets.token_urlsafe(32)
    session.add(WebSession(user_id=user.id, secret_hash=hash_secret(secret)))
    await session.flush()
    log.info("user %s signed in", user.name)
    return secret


async def session_principal(
    session: AsyncSession, secret: str, lifetime: Lifetime, *, now: datetime | None = None
) -> Principal | None:
    """The signed-in user of the cookie ``secret``, or None (unknown, ended or inactive).

    An ended session is deleted on sight. ``last_seen_at`` moves at most once a minute
    (commit to keep it), like a token's ``last_used_at``.
    """
    if not secret or len(secret) > _SECRET_MAX:
        return None
    row = await session.scalar(
        select(WebSession)
        .join(WebSession.user)
        .options(contains_eager(WebSession.user))
        .where(WebSession.secret_hash == hash_secret(secret))
    )
    if row is None:
        return None
    moment = now or utcnow()
    if lifetime.ended(row.created_at, row.last_seen_at, moment) or not row.user.active:
        await session.delete(row)
        await session.flush()
        return None
    if moment - row.last_seen_at >= LAST_USED_PRECISION:
        row.last_seen_at = moment
    user = row.user
    return Principal(user_id=user.id, name=user.name, is_admin=user.is_admin, via="session")


async def end_session(session: AsyncSession, secret: str) -> None:
    """Sign-out: the session of this cookie ends (nothing happens for an unknown one)."""
    await session.execute(delete(WebSession).where(WebSession.secret_hash == hash_secret(secret)))


async def sweep_sessions(
    session: AsyncSession, lifetime: Lifetime, *, now: datetime | None = None
) -> int:
    """Delete every ended session (one whose cookie never came back); how many."""
    moment = now or utcnow()
    gone = await session.execute(
        delete(WebSession).where(
            (WebSession.last_seen_at <= moment - lifetime.idle)
            | (WebSession.created_at <= moment - lifetime.absolute)
        )
    )
    return int(getattr(gone, "rowcount", 0) or 0)


def form_token(secret: str) -> str:
    """The anti-forgery token of forms shown to the holder of cookie ``secret``.

    Derived from the cookie, so nothing more is stored, and another site (which cannot
    read the cookie) cannot make it.
    """
    return hmac.new(secret.encode(), b"port form", hashlib.sha256).hexdigest()


def form_token_matches(secret: str, token: str) -> bool:
    return hmac.compare_digest(form_token(secret), token)
