"""Users and API tokens over GraphQL: `me`, own tokens, and admin-only user management."""

from __future__ import annotations

from datetime import datetime
from typing import Self

import strawberry
from strawberry import relay

from port.accounts import service
from port.accounts.models import Token, User
from port.api import permissions
from port.api.context import Info
from port.api.pagination import row_id
from port.errors import Forbidden, NotFound


@strawberry.type(name="Token", description="An API token; its secret is shown only once.")
class TokenType:
    id: relay.GlobalID
    name: str
    prefix: str = strawberry.field(description="The secret's first characters, to recognise it.")
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None

    @classmethod
    def from_row(cls, row: Token) -> Self:
        return cls(
            id=relay.GlobalID("Token", str(row.id)),
            name=row.name,
            prefix=row.prefix,
            created_at=row.created_at,
            last_used_at=row.last_used_at,
            revoked_at=row.revoked_at,
        )


@strawberry.type(name="User")
class UserType:
    id: relay.GlobalID
    name: str
    is_admin: bool
    created_at: datetime
    user_id: strawberry.Private[int]

    @classmethod
    def from_row(cls, row: User) -> Self:
        return cls(
            id=relay.GlobalID("User", str(row.id)),
            name=row.name,
            is_admin=row.is_admin,
            created_at=row.created_at,
            user_id=row.id,
        )

    @strawberry.field(description="This user's tokens (the user and admins only).")
    async def tokens(self, info: Info) -> list[TokenType]:
        principal = permissions.caller(info)
        if not (principal.is_admin or principal.owns(self.user_id)):
            return []
        rows = await info.context.loaders.tokens_of_user.load(self.user_id)
        return [TokenType.from_row(t) for t in rows]


@strawberry.type(name="Me", description="The caller, as the server sees them.")
class MeType:
    name: str
    is_admin: bool
    via: str = strawberry.field(description='"token" or "jwt".')
    user: UserType | None = strawberry.field(description="The local user, if there is one.")


@strawberry.type(name="CreatedToken")
class CreatedToken:
    token: TokenType
    secret: str = strawberry.field(
        description="Send as `Authorization: Bearer <secret>`. "
        "Shown only now; Port keeps only its hash."
    )


def _token_pk(gid: relay.GlobalID) -> int:
    return row_id(gid, "Token")


@strawberry.type
class AccountsQuery:
    @strawberry.field(description="Who is calling (needs a token).")
    async def me(self, info: Info) -> MeType:
        principal = permissions.caller(info)
        user = None
        if principal.user_id is not None:
            async with info.context.state.sessions() as session:
                row = await session.get(User, principal.user_id)
            user = UserType.from_row(row) if row is not None else None
        return MeType(
            name=principal.name, is_admin=principal.is_admin, via=principal.via, user=user
        )

    @strawberry.field(description="Every user (admins only).")
    async def users(self, info: Info) -> list[UserType]:
        permissions.admin(info)
        async with info.context.state.sessions() as session:
            return [UserType.from_row(u) for u in await service.list_users(session)]


@strawberry.type
class AccountsMutation:
    @strawberry.mutation(description="A new token for the caller; its secret is shown once.")
    async def create_token(self, info: Info, name: str) -> CreatedToken:
        principal = permissions.caller(info)
        if principal.user_id is None:
            raise Forbidden(
                f"{principal.name} signed in through the identity provider and owns no Port "
                "tokens; keep using the provider's tokens"
            )
        async with info.context.state.sessions() as session, session.begin():
            user = await session.get(User, principal.user_id)
            if user is None:
                raise NotFound("your user no longer exists")
            token, secret = await service.create_token(session, user, name)
        return CreatedToken(token=TokenType.from_row(token), secret=secret)

    @strawberry.mutation(description="Revoke a token (its owner or an admin).")
    async def revoke_token(self, info: Info, id: relay.GlobalID) -> TokenType:
        principal = permissions.caller(info)
        async with info.context.state.sessions() as session, session.begin():
            token = await service.revoke_token(session, _token_pk(id), by=principal)
        return TokenType.from_row(token)

    @strawberry.mutation(
        description="Add a user (admins only); give them a token with the CLI "
        "or let them log in through the identity provider."
    )
    async def create_user(self, info: Info, name: str, is_admin: bool = False) -> UserType:
        permissions.admin(info)
        async with info.context.state.sessions() as session, session.begin():
            user = await service.create_user(session, name, is_admin=is_admin)
        return UserType.from_row(user)


__all__ = ["AccountsMutation", "AccountsQuery"]
