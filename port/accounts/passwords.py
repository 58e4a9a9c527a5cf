"""Passwords: argon2id hashes (argon2-cffi), computed off the event loop, a few at a time.

argon2-cffi's defaults are RFC 9106's low-memory profile (64 MiB, 3 passes, 4 lanes):
about 50 ms of one core per hash. Anyone can make Port hash (a sign-in attempt costs
one), so at most ``HASHING_AT_ONCE`` hashes run at any moment and the rest queue:
sign-in floods cost memory and CPU in a fixed amount, never in proportion.
"""

from __future__ import annotations

import asyncio

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from port.errors import InvalidInput

PASSWORD_MIN = 10
# Argon2 reads the whole password; a bound keeps a megabyte "password" from being hashed.
PASSWORD_MAX = 256
HASHING_AT_ONCE = 2

_hasher = PasswordHasher()
_slots = asyncio.Semaphore(HASHING_AT_ONCE)
# Checked against when a name has no password (or no user), so that an answer takes as
# long for an unknown name as for a wrong password.
_NO_PASSWORD = _hasher.hash("no password is set for this name")


def check_new_password(password: str) -> str:
    """``password`` if it may become one; InvalidInput saying why otherwise."""
    if not PASSWORD_MIN <= len(password) <= PASSWORD_MAX:
        raise InvalidInput(
            f"a password has {PASSWORD_MIN} to {PASSWORD_MAX} characters "
            f"(this one has {len(password)})"
        )
    if password.strip() != password:
        raise InvalidInput("a password does not begin or end with spaces (easy to mistype)")
    return password


async def hash_password(password: str) -> str:
    """The argon2id hash of an already checked password."""
    async with _slots:
        return await asyncio.to_thread(_hasher.hash, password)


async def password_matches(stored: str | None, password: str) -> bool:
    """Whether ``password`` is the one ``stored`` was made from; False for no hash.

    Takes one hash's time whatever the answer, so timing tells no one whether a name
    has a password.
    """
    # A longer one was never set; it is not hashed whole, but it costs the same time.
    fits = len(password) <= PASSWORD_MAX
    against = stored if stored is not None and fits else _NO_PASSWORD
    candidate = password if fits else password[:PASSWORD_MAX]

    def verify() -> bool:
        try:
            return _hasher.verify(against, candidate) and against is stored
        except (VerificationError, InvalidHashError):
            return False

    async with _slots:
        return await asyncio.to_thread(verify)
