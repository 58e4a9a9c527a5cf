"""Users and API tokens over GraphQL: `me`, own tokens, and admin-only user management."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Annotated, Any, Self

import strawberry
from sqlalchemy import Select, select
from strawberry import relay
from strawberry.field_extensions import InputMutationExtension

from port.accounts import service
from port.accounts.models import Token, User
from port.api import permissions
from port.api.context import Info
from port.api.pagination import in_order, row_id
from port.errors import Forbidden, NotFound
from port.notify import set_notify_url


async def _visible(info: Info, model: type[User] | type[Token], ids: Iterable[str]) -> Any:
    """Rows of users or tokens the caller may see: an admin all, a user their own."""
    principal = info.context.principal
    wanted = [int(i) for i in ids if i.isdigit()]
    if principal is None or not wanted:
        return {}
    query: Select[Any]
    if model is User:
        query = select(User).where(User.id.in_(wanted))
        mine = User.id == principal.user_id
    else:
        query = select(Token).where(Token.id.in_(wanted))
        mine = Token.user_id == principal.user_id
    if not principal.is_admin:
        query = query.where(mine)
    async with info.context.state.sessions() as session:
        return {row.id: row for row in await session.scalars(query)}


@strawberry.type(name="Token", description="An API token; its secret is shown only once.")
class TokenType(relay.Node):
    id: relay.NodeID[int]
    name: str
    prefix: str = strawberry.field(description="The secret's first characters, to recognise it.")
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None

    @classmethod
    def from_row(cls, row: Token) -> Self:
        return cls(
            id=row.id,
            name=row.name,
            prefix=row.prefix,
            created_at=row.created_at,
            last_used_at=row.last_used_at,
            revoked_at=row.revoked_at,
        )

    @classmethod
    async def resolve_nodes(
        cls, *, info: Info, node_ids: Iterable[str], required: bool = False
    ) -> list[Any]:
        ids = list(node_ids)
        return in_order(ids, await _visible(info, Token, ids), cls.from_row)


@strawberry.type(name="User", description="A person (or robot) with an account on Port.")
class UserType(relay.Node):
    id: relay.NodeID[int]
    name: str
    is_admin: bool
    created_at: datetime
    user_id: strawberry.Private[int]
    url: strawberry.Private[str | None]
    signed: strawberry.Private[bool]

    @classmethod
    def from_row(cls, row: User) -> Self:
        return cls(
            id=row.id,
            name=row.name,
            is_admin=row.is_admin,
            created_at=row.created_at,
            user_id=row.id,
            url=row.notify_url,
            signed=row.notify_secret is not None,
        )

    @classmethod
    async def resolve_nodes(
        cls, *, info: Info, node_ids: Iterable[str], required: bool = False
    ) -> list[Any]:
        ids = list(node_ids)
        return in_order(ids, await _visible(info, User, ids), cls.from_row)

    @strawberry.field(
        description="Where this user's notices go (the user and admins only; "
        "its secret is never shown)."
    )
    def notify_url(self, info: Info) -> str | None:
        principal = permissions.caller(info)
        return self.url if principal.is_admin or principal.owns(self.user_id) else None

    @strawberry.field(description="Whether this user's notices are signed (the user and admins).")
    def notify_signed(self, info: Info) -> bool | None:
        principal = permissions.caller(info)
        return self.signed if principal.is_admin or principal.owns(self.user_id) else None

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


@strawberry.type
class CreateTokenPayload:
    token: TokenType
    secret: str = strawberry.field(
        description="Send as `Authorization: Bearer <secret>`. "
        "Shown only now; Port keeps only its hash."
    )


@strawberry.type
class RevokeTokenPayload:
    token: TokenType


@strawberry.type
class SetNotifyUrlPayload:
    user: UserType


@strawberry.type
class CreateUserPayload:
    user: UserType


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
    @strawberry.mutation(
        description="A new token for the caller; its secret is shown once.",
        extensions=[InputMutationExtension()],
    )
    async def create_token(self, info: Info, name: str) -> CreateTokenPayload:
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
        return CreateTokenPayload(token=TokenType.from_row(token), secret=secret)

    @strawberry.mutation(
        description="Revoke a token (its owner or an admin).",
        extensions=[InputMutationExtension()],
    )
    async def revoke_token(self, info: Info, id: relay.GlobalID) -> RevokeTokenPayload:
        principal = permissions.caller(info)
        async with info.context.state.sessions() as session, session.begin():
            token = await service.revoke_token(session, _token_pk(id), by=principal)
        info.context.state.callers.forget(user_id=token.user_id)  # refused at once
        return RevokeTokenPayload(token=TokenType.from_row(token))

    @strawberry.mutation(
        description="Where your notices go: a signed POST for each new release of an app "
        "you run and each update of your Setups (docs/updates.md). The URL must reach a "
        "public address; `url: null` stops them. Admins may set another user's (`user`).",
        extensions=[InputMutationExtension()],
    )
    async def set_notify_url(
        self,
        info: Info,
        url: str | None,
        secret: Annotated[
            str | None,
            strawberry.argument(
                description="Signs each notice (X-Port-Signature-256); never shown."
            ),
        ] = None,
        user: relay.GlobalID | None = None,
    ) -> SetNotifyUrlPayload:
        principal = permissions.caller(info)
        target = row_id(user, "User") if user is not None else principal.user_id
        if target is None:
            raise Forbidden(f"{principal.name} has no local user to receive notices")
        if not (principal.is_admin or principal.owns(target)):
            raise Forbidden("only admins may set another user's notice URL")
        state = info.context.state
        async with state.sessions() as session, session.begin():
            row = await session.get(User, target)
            if row is None:
                raise NotFound(f"no user {user}")
            await set_notify_url(session, row, url, secret, state.settings)
        return SetNotifyUrlPayload(user=UserType.from_row(row))

    @strawberry.mutation(
        description="Add a user (admins only); give them a token with the CLI "
        "or let them log in through the identity provider.",
        extensions=[InputMutationExtension()],
    )
    async def create_user(self, info: Info, name: str, is_admin: bool = False) -> CreateUserPayload:
        permissions.admin(info)
        async with info.context.state.sessions() as session, session.begin():
            user = await service.create_user(session, name, is_admin=is_admin)
        return CreateUserPayload(user=UserType.from_row(user))


__all__ = ["AccountsMutation", "AccountsQuery"]
