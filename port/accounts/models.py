"""SQLAlchemy models of accounts: a User owns API Tokens and page Sessions, and may have
a password and a notice URL.

No row holds a secret: a token keeps the SHA-256 of its secret (``secret_hash``) and the
first eight characters (``prefix``), so a listing can say which token is which; a
session keeps the SHA-256 of its cookie; a password is an argon2id hash.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Integer, String, true
from sqlalchemy.orm import Mapped, mapped_column, relationship

from port.orm import Base, UTCDateTime, utcnow

USER_NAME_MAX = 64
TOKEN_NAME_MAX = 100
TOKEN_PREFIX_LENGTH = 8
NOTIFY_URL_MAX = 2048
NOTIFY_SECRET_MAX = 255
PASSWORD_HASH_MAX = 255


class User(Base):
    """A person or a client library. ``name`` matches ``[a-z0-9][a-z0-9._-]*``."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(USER_NAME_MAX), unique=True)
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    # A deactivated user keeps its rows (Setups, history) but can neither sign in nor
    # use its tokens.
    active: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    # argon2id (port/accounts/passwords.py); None: this user cannot sign in to the pages.
    password_hash: Mapped[str | None] = mapped_column(String(PASSWORD_HASH_MAX))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    # Where this user's notices go (port/notify.py), and the key that signs them: kept
    # to sign with, so never returned by the API or logged.
    notify_url: Mapped[str | None] = mapped_column(String(NOTIFY_URL_MAX))
    notify_secret: Mapped[str | None] = mapped_column(String(NOTIFY_SECRET_MAX))

    tokens: Mapped[list[Token]] = relationship(
        back_populates="user",
        cascade="all, delete-orphan",
        passive_deletes=True,
        order_by="Token.id",
    )
    web_sessions: Mapped[list[WebSession]] = relationship(
        back_populates="user", cascade="all, delete-orphan", passive_deletes=True
    )


class Token(Base):
    """An API token of a user: shown once at creation, then known by id, name and prefix."""

    __tablename__ = "tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(TOKEN_NAME_MAX))
    prefix: Mapped[str] = mapped_column(String(TOKEN_PREFIX_LENGTH))
    secret_hash: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    user: Mapped[User] = relationship(back_populates="tokens")


class WebSession(Base):
    """A signed-in browser: the cookie's SHA-256, and when it began and was last seen.

    It ends by sign-out, by its user's password change or deactivation (rows deleted),
    or by expiry (``PORT_SESSION_IDLE_MINUTES`` after ``last_seen_at``,
    ``PORT_SESSION_MAX_HOURS`` after ``created_at``), checked at each use.
    """

    __tablename__ = "web_sessions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    secret_hash: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    user: Mapped[User] = relationship(back_populates="web_sessions")
