"""Letting a Setup's owner into its origin: JupyterHub's per-server OAuth, in small.

1. On Port's origin, a signed-in visitor who may enter a Setup gets a single-use code
   (``issue_code``), valid ``CODE_SECONDS``, and is sent to the app's origin with it.
2. The app's origin redeems it (``redeem``): the code is gone, and the origin sets a
   cookie of its own (``port_app``; ``__Host-port_app`` over https), host-only,
   ``HttpOnly``, ``SameSite=Lax``, holding a new secret. Only its SHA-256 is kept.
3. Every request to the origin shows that cookie (``entered``): valid while the Port
   session it was issued under lasts, for that one Setup and user, while the user may
   still enter (the owner; an admin only with ``PORT_ADMINS_ENTER_APPS``).

Port's own session cookie is never sent to an app origin (it is host-only on Port's
host), and the proxy strips it, ``Authorization`` and this cookie before a request
reaches the app.
"""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from port.accounts.models import User, WebSession
from port.accounts.service import LAST_USED_PRECISION, hash_secret
from port.accounts.websessions import Lifetime
from port.apps.models import AppSession
from port.deploy.models import Setup
from port.orm import utcnow
from port.principal import Principal
from port.settings import Settings

CODE_SECONDS = 60  # from Port's origin to the app's: one redirect, so a minute is ample
COOKIE = "port_app"
_SECRET_MAX = 64  # 43 characters are issued


def cookie_name(secure: bool) -> str:
    return f"__Host-{COOKIE}" if secure else COOKIE


def may_enter(user_id: int, is_admin: bool, owner_id: int, settings: Settings) -> bool:
    """The owner enters their Setup; an admin only where the settings allow it."""
    return user_id == owner_id or (is_admin and settings.admins_enter_apps)


async def issue_code(
    session: AsyncSession, *, web_secret: str, user_id: int, setup_id: int
) -> str | None:
    """A code for the browser of page session ``web_secret`` to enter ``setup_id``; None
    when that session is gone. The browser's earlier entry into the Setup ends: one
    entry per browser and Setup, however often "Open" is clicked."""
    web_session_id = await session.scalar(
        select(WebSession.id).where(WebSession.secret_hash == hash_secret(web_secret))
    )
    if web_session_id is None:
        return None
    await session.execute(
        delete(AppSession).where(
            AppSession.web_session_id == web_session_id, AppSession.setup_id == setup_id
        )
    )
    code = secrets.token_urlsafe(32)
    session.add(
        AppSession(
            web_session_id=web_session_id,
            setup_id=setup_id,
            user_id=user_id,
            code_hash=hash_secret(code),
            code_expires_at=utcnow() + timedelta(seconds=CODE_SECONDS),
        )
    )
    await session.flush()
    return code


async def redeem(
    session: AsyncSession, code: str, setup_id: int, *, now: datetime | None = None
) -> str | None:
    """The cookie secret of a valid ``code`` for ``setup_id``, once; None after that, for
    an expired code, or for a code of another Setup."""
    if not code or len(code) > _SECRET_MAX:
        return None
    secret = secrets.token_urlsafe(32)
    done = await session.execute(
        update(AppSession)
        .where(
            AppSession.code_hash == hash_secret(code),
            AppSession.setup_id == setup_id,
            AppSession.code_expires_at > (now or utcnow()),
        )
        .values(code_hash=None, code_expires_at=None, secret_hash=hash_secret(secret))
    )
    return secret if getattr(done, "rowcount", 0) == 1 else None


async def entered(
    session: AsyncSession,
    secret: str,
    setup_id: int,
    settings: Settings,
    *,
    now: datetime | None = None,
) -> Principal | None:
    """Who the cookie ``secret`` lets into ``setup_id``, or None. Using an app keeps the
    Port session alive, as using Port's pages does (``last_seen_at``, once a minute)."""
    if not secret or len(secret) > _SECRET_MAX:
        return None
    row = (
        await session.execute(
            select(
                WebSession.id,
                WebSession.created_at,
                WebSession.last_seen_at,
                User.id.label("user_id"),
                User.name,
                User.is_admin,
                User.active,
                Setup.owner_id,
            )
            .select_from(AppSession)
            .join(WebSession, WebSession.id == AppSession.web_session_id)
            .join(User, User.id == AppSession.user_id)
            .join(Setup, Setup.id == AppSession.setup_id)
            .where(AppSession.secret_hash == hash_secret(secret), AppSession.setup_id == setup_id)
        )
    ).first()
    if row is None:
        return None
    moment = now or utcnow()
    if Lifetime.of(settings).ended(row.created_at, row.last_seen_at, moment) or not row.active:
        return None
    if not may_enter(row.user_id, row.is_admin, row.owner_id, settings):
        return None
    if moment - row.last_seen_at >= LAST_USED_PRECISION:
        await session.execute(
            update(WebSession).where(WebSession.id == row.id).values(last_seen_at=moment)
        )
    return Principal(user_id=row.user_id, name=row.name, is_admin=row.is_admin, via="app")


async def sweep_codes(session: AsyncSession, *, now: datetime | None = None) -> int:
    """Delete the entries whose code expired unredeemed; how many."""
    gone = await session.execute(
        delete(AppSession).where(
            AppSession.secret_hash.is_(None), AppSession.code_expires_at <= (now or utcnow())
        )
    )
    return int(getattr(gone, "rowcount", 0) or 0)
