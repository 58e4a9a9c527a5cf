"""The schema: queries, mutations and subscriptions, with limits and error masking."""

from __future__ import annotations

import logging
import pathlib
from typing import Any

import strawberry
from graphql import GraphQLError
from strawberry import relay
from strawberry.extensions import MaskErrors, MaxAliasesLimiter, MaxTokensLimiter, QueryDepthLimiter
from strawberry.relay.types import GlobalIDValueError
from strawberry.schema.config import StrawberryConfig
from strawberry.types import ExecutionContext

from port.api import permissions
from port.api.accounts import AccountsMutation, AccountsQuery
from port.api.catalogue import CatalogueMutation, CatalogueQuery, CatalogueSubscription
from port.api.context import Info
from port.api.cost import cost_limiter
from port.api.deploy import DeployMutation, DeployQuery, DeploySubscription
from port.api.pagination import row_id
from port.api.scalars import SCALARS
from port.errors import ClientError
from port.settings import Settings

log = logging.getLogger(__name__)

# What node(id:) answers for; Setups, Pods, Users and Tokens only to who may see them
# (their types' resolve_nodes check).
NODE_TYPES = frozenset(
    {"Repo", "App", "Release", "Flavour", "IndexRun", "Setup", "Pod", "User", "Token"}
)


@strawberry.type
class Query(CatalogueQuery, AccountsQuery, DeployQuery):
    @strawberry.field(description="Any object by its global id.")
    async def node(self, info: Info, id: relay.GlobalID) -> relay.Node | None:
        permissions.catalogue_reader(info)
        if id.type_name not in NODE_TYPES:
            return None
        row_id(id, id.type_name)  # INVALID_INPUT unless a plain row number
        # Not required: an unknown id, or one the caller may not see, is null (never an
        # "Unexpected error." with a traceback per call, which anyone could flood).
        node = await id.resolve_node(info, required=False)
        return node if isinstance(node, relay.Node) else None


@strawberry.type
class Mutation(CatalogueMutation, AccountsMutation, DeployMutation):
    """Repository, account and deployment mutations, each defined beside its queries."""


@strawberry.type
class Subscription(CatalogueSubscription, DeploySubscription):
    """Index runs and deployment events, each defined beside its queries."""


def _client_facing(error: GraphQLError) -> bool:
    """Errors a client can act on keep their message and code: GraphQL's own (syntax,
    validation, limits), Port's client errors, malformed global ids. Anything else is a
    bug or an outage: masked for the client, logged with its traceback."""
    original = error.original_error
    return original is None or isinstance(original, ClientError | GlobalIDValueError)


class PortSchema(strawberry.Schema):
    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        for error in errors:
            if not _client_facing(error):
                log.error("unexpected error in %s", error.path, exc_info=error.original_error)


def build_schema(settings: Settings) -> strawberry.Schema:
    max_depth = settings.max_query_depth
    extensions: list[Any] = [  # factories: each request gets fresh extension state
        cost_limiter(settings.max_query_cost, settings.max_page_size),
        lambda: QueryDepthLimiter(max_depth=max_depth),
        lambda: MaxAliasesLimiter(max_alias_count=30),
        lambda: MaxTokensLimiter(max_token_count=2000),
        lambda: MaskErrors(should_mask_error=lambda e: not _client_facing(e)),
    ]
    return PortSchema(
        query=Query,
        mutation=Mutation,
        subscription=Subscription,
        extensions=extensions,
        config=StrawberryConfig(scalar_map=SCALARS),
    )


SDL_PATH = pathlib.Path(__file__).with_name("schema.graphql")


def sdl() -> str:
    """The schema in GraphQL's own language: what is committed as schema.graphql."""
    return build_schema(Settings()).as_str() + "\n"


if __name__ == "__main__":  # python -m port.api.schema: rewrite schema.graphql
    SDL_PATH.write_text(sdl(), encoding="utf-8")
    print(f"wrote {SDL_PATH}")
