"""Users, their passwords and API tokens: create, list, sign in, authenticate, revoke.

Every function takes an ``AsyncSession`` and leaves the transaction to the caller: it
adds and flushes, the caller commits (or rolls back). That includes
``authenticate_token``, which may move ``last_used_at``: a request that wants the
timestamp kept must commit, one that does not loses only that timestamp.

Secrets: a token is ``port_`` followed by 43 URL-safe characters (32 random bytes). It
is returned once by ``create_token``/``bootstrap_admin`` and never stored, logged or
put into an exception; the database keeps its SHA-256 and its first eight characters.
Passwords are kept as argon2id hashes (``port.accounts.passwords``) and never logged.
"""

from __future__ import annotations

import hashlib
import logging
import re
import secrets
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import contains_eager

from port.accounts.jwt import JwtClaims
from port.accounts.models import (
    TOKEN_NAME_MAX,
    TOKEN_PREFIX_LENGTH,
    USER_NAME_MAX,
    Token,
    User,
    WebSession,
)
from port.accounts.passwords import check_new_password, hash_password, password_matches
from port.errors import Conflict, Forbidden, InvalidInput, NotFound
from port.orm import utcnow
from port.principal import Principal

log = logging.getLogger(__name__)

TOKEN_PREFIX = "port_"  # noqa: S105 (the public marker of a Port token, not a secret)
BOOTSTRAP_ADMIN = "admin"
# Writing last_used_at on every request would turn every read into a write; a minute's
# precision is plenty to tell a live token from a forgotten one.
LAST_USED_PRECISION = timedelta(minutes=1)
# Longer than any token we issue (5 + 43 characters): refuse before hashing megabytes.
_SECRET_MAX = 128
_USER_NAME = re.compile(r"[a-z0-9][a-z0-9._-]*")


def hash_secret(secret: str) -> str:
    """The stored form of a token secret: SHA-256, hex.

    A fast hash is right here, unlike for passwords: the secret carries 256 random bits,
    so there is nothing to brute-force and no need for a slow, salted KDF. Looking the
    hash up in a unique index also makes the check safe against timing: what a lookup's
    timing could reveal is how much of the *hash* matched, which says nothing usable
    about a secret that would produce it.
    """
    return hashlib.sha256(secret.encode()).hexdigest()


def _check_user_name(name: str) -> None:
    if not (1 <= len(name) <= USER_NAME_MAX and _USER_NAME.fullmatch(name)):
        raise InvalidInput(
            f"invalid user name {name[: USER_NAME_MAX + 1]!r}: 1 to {USER_NAME_MAX} characters "
            "of a-z, 0-9, '.', '_' and '-', starting with a letter or digit"
        )


def _check_token_name(name: str) -> str:
    cleaned = name.strip()
    if not (1 <= len(cleaned) <= TOKEN_NAME_MAX) or not cleaned.isprintable():
        raise InvalidInput(
            f"a token name is 1 to {TOKEN_NAME_MAX} printable characters, to tell your tokens apart"
        )
    return cleaned


# --- users -----------------------------------------------------------------------------


async def create_user(session: AsyncSession, name: str, *, is_admin: bool = False) -> User:
    """Add a user. InvalidInput for a bad name, Conflict when the name is taken.

    A Conflict found by the unique constraint (another transaction won a race) leaves
    the session needing a rollback, as any failed flush does.
    """
    _check_user_name(name)
    if await session.scalar(select(User.id).where(User.name == name)) is not None:
        raise Conflict(f"user {name!r} already exists")
    user = User(name=name, is_admin=is_admin)
    session.add(user)
    try:
        await session.flush()
    except IntegrityError as exc:
        raise Conflict(f"user {name!r} already exists") from exc
    log.info("created user %s (id %s, admin: %s)", name, user.id, is_admin)
    return user


async def list_users(session: AsyncSession) -> list[User]:
    """Every user, by name."""
    return list(await session.scalars(select(User).order_by(User.name)))


async def get_user(session: AsyncSession, name: str) -> User:
    """The user called ``name``; NotFound otherwise."""
    user = await session.scalar(select(User).where(User.name == name))
    if user is None:
        raise NotFound(f"no user {name[: USER_NAME_MAX + 1]!r}")
    return user


async def set_password(session: AsyncSession, user: User, password: str, *, by: Principal) -> None:
    """Give ``user`` a new password; the user or an admin may. Every page session of the
    user ends (whoever knew the old password is signed out); tokens keep working."""
    if not (by.is_admin or by.owns(user.id)):
        raise Forbidden("only the user or an admin may set a password")
    user.password_hash = await hash_password(check_new_password(password))
    await _end_sessions(session, user.id)
    log.info("password of user %s set by %s", user.name, by.name)


async def set_active(session: AsyncSession, user: User, active: bool, *, by: Principal) -> None:
    """Deactivate (or reactivate) a user; admins only, and never oneself. A deactivated
    user's sessions end and its tokens stop working; its Setups stay as they are."""
    if not by.is_admin:
        raise Forbidden("only admins may deactivate users")
    if not active and by.owns(user.id):
        raise InvalidInput("you cannot deactivate yourself (another admin can)")
    user.active = active
    await session.flush()
    if not active:
        await _end_sessions(session, user.id)
    log.info("user %s %s by %s", user.name, "activated" if active else "deactivated", by.name)


async def set_admin(session: AsyncSession, user: User, is_admin: bool, *, by: Principal) -> None:
    """Make ``user`` an admin, or not; admins only, and no admin unmakes themselves (so
    a store always keeps one)."""
    if not by.is_admin:
        raise Forbidden("only admins may make admins")
    if not is_admin and by.owns(user.id):
        raise InvalidInput("you cannot take away your own admin rights (another admin can)")
    user.is_admin = is_admin
    await session.flush()
    log.info("user %s %s an admin by %s", user.name, "made" if is_admin else "no longer", by.name)


async def _end_sessions(session: AsyncSession, user_id: int) -> None:
    """Every page session of a user ends (``port.accounts.websessions`` starts them)."""
    await session.execute(delete(WebSession).where(WebSession.user_id == user_id))


async def sign_in(session: AsyncSession, name: str, password: str) -> User | None:
    """The active user ``name`` if ``password`` is theirs; None otherwise, after the same
    work whatever was wrong (unknown name, no password, wrong password, deactivated)."""
    user = None
    if len(name) <= USER_NAME_MAX:
        user = await session.scalar(select(User).where(User.name == name))
    stored = user.password_hash if user is not None else None
    if not await password_matches(stored, password) or user is None or not user.active:
        return None
    return user


# --- tokens ----------------------------------------------------------------------------


async def create_token(session: AsyncSession, user: User, name: str) -> tuple[Token, str]:
    """A new token of ``user``: its row, and its secret, which nobody can see again."""
    label = _check_token_name(name)
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = Token(
        user_id=user.id,
        name=label,
        prefix=secret[:TOKEN_PREFIX_LENGTH],
        secret_hash=hash_secret(secret),
    )
    session.add(token)
    await session.flush()
    log.info("created token %s (%r) of user %s", token.id, label, user.name)
    return token, secret


async def list_tokens(session: AsyncSession, user_id: int) -> list[Token]:
    """Every token of a user, revoked ones included (``revoked_at`` says), oldest first."""
    return list(
        await session.scalars(select(Token).where(Token.user_id == user_id).order_by(Token.id))
    )


async def revoke_token(session: AsyncSession, token_id: int, *, by: Principal) -> Token:
    """Revoke a token; its owner or an admin may. Revoking twice keeps the first time."""
    token = await session.get(Token, token_id)
    # Someone else's token is "not found" too: which token ids exist is nobody's business.
    if token is None or not (by.is_admin or by.owns(token.user_id)):
        raise NotFound(f"you have no token {token_id}")
    if token.revoked_at is None:
        token.revoked_at = utcnow()
        await session.flush()
        log.info("token %s revoked by %s", token_id, by.name)
    return token


async def authenticate_token(session: AsyncSession, secret: str) -> Principal | None:
    """The owner of a live token with this secret, or None (unknown or revoked)."""
    if not secret.startswith(TOKEN_PREFIX) or len(secret) > _SECRET_MAX:
        return None
    token = await session.scalar(
        select(Token)
        .join(Token.user)
        .options(contains_eager(Token.user))
        .where(Token.secret_hash == hash_secret(secret))
    )
    if token is None or token.revoked_at is not None or not token.user.active:
        return None
    user = token.user
    now = utcnow()
    if token.last_used_at is None or now - token.last_used_at >= LAST_USED_PRECISION:
        token.last_used_at = now
    return Principal(user_id=user.id, name=user.name, is_admin=user.is_admin, via="token")


async def principal_from_jwt(session: AsyncSession, claims: JwtClaims) -> Principal:
    """The principal of verified JWT claims. It is never a local user, not even one of
    the same name: otherwise an identity-provider account named like the bootstrap
    ``admin`` could mint Port tokens for that user and through them become an admin.
    Admin rights come from the JWT's roles only. (Linking provider identities to local
    users needs an explicit link, which Port does not have yet.)
    """
    del session  # kept in the signature: a future identity link is looked up here
    return Principal(user_id=None, name=claims.name, is_admin=claims.is_admin, via="jwt")


@dataclass(frozen=True, slots=True)
class FirstAdmin:
    """What the first start hands to the operator, once: never stored in clear, never logged."""

    token: str
    password: str


async def bootstrap_admin(session: AsyncSession) -> FirstAdmin | None:
    """On a database without users: create ``admin`` with a random password and a token.

    None when any user exists, or when another process created the admin at the same
    time (the unique name makes one of them fail; that one rolls back and gets None).
    Call it in a session of its own, and commit: the secrets are only good once committed.
    """
    if await session.scalar(select(User.id).limit(1)) is not None:
        return None
    password = secrets.token_urlsafe(12)  # 16 characters, 96 random bits
    try:
        admin = await create_user(session, BOOTSTRAP_ADMIN, is_admin=True)
        admin.password_hash = await hash_password(password)
        _token, secret = await create_token(session, admin, "bootstrap")
    except (Conflict, IntegrityError):
        await session.rollback()
        log.info("another process created the first admin")
        return None
    return FirstAdmin(token=secret, password=password)
