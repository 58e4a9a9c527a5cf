"""From an ``Authorization`` header to the Principal calling.

No header means an anonymous caller (None); the API decides what anonymous may do.
A header that is there but wrong is an error, never a silent downgrade to anonymous:
a client with a mistyped or revoked token must hear about it, not see less data.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from port.accounts.jwt import JwtVerifier
from port.accounts.service import TOKEN_PREFIX, authenticate_token, principal_from_jwt
from port.errors import Unauthenticated
from port.principal import Principal

SCHEME = "bearer"  # compared case-insensitively (RFC 9110: auth schemes are)


def bearer_credential(header: str) -> str:
    """The credential of ``Bearer <credential>``; Unauthenticated for any other shape."""
    parts = header.split()
    if len(parts) != 2 or parts[0].lower() != SCHEME:
        raise Unauthenticated("the Authorization header must be `Bearer <token>`")
    return parts[1]


async def principal_for(
    session: AsyncSession, header: str | None, verifier: JwtVerifier | None
) -> Principal | None:
    """Who sends ``header``: None without a header, Unauthenticated for a bad credential.

    ``port_...`` is a Port API token; anything else is tried as a JWT when a verifier is
    configured. Like ``authenticate_token`` it may touch ``last_used_at`` (commit to keep).
    Error messages never contain the credential.
    """
    if header is None:
        return None
    credential = bearer_credential(header)
    if credential.startswith(TOKEN_PREFIX):
        principal = await authenticate_token(session, credential)
        if principal is None:
            raise Unauthenticated("the token is unknown or revoked")
        return principal
    if verifier is None:
        raise Unauthenticated("not a Port token (they start with `port_`)")
    claims = verifier.verify(credential)
    if claims is None:
        raise Unauthenticated("the JWT is invalid, expired or not meant for Port")
    return await principal_from_jwt(session, claims)
