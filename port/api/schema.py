"""The schema: queries, mutations and subscriptions, with limits and error masking."""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator
from typing import Any

import strawberry
from graphql import GraphQLError
from strawberry import relay
from strawberry.extensions import MaskErrors, MaxAliasesLimiter, MaxTokensLimiter, QueryDepthLimiter
from strawberry.schema.config import StrawberryConfig
from strawberry.types import ExecutionContext

from port.api import permissions
from port.api.accounts import AccountsMutation, AccountsQuery
from port.api.catalogue import CatalogueMutation, CatalogueQuery, repo_pk
from port.api.context import Info
from port.api.scalars import SCALARS
from port.api.types import IndexRunType
from port.errors import PortError

log = logging.getLogger(__name__)


@strawberry.type
class Query(CatalogueQuery, AccountsQuery):
    @strawberry.field(description="Any object by its global id.")
    async def node(self, info: Info, id: relay.GlobalID) -> relay.Node | None:
        permissions.catalogue_reader(info)
        if id.type_name not in {"Repo", "App", "Release", "Flavour", "IndexRun"}:
            return None
        if not id.node_id.isdigit() or len(id.node_id) > 9:
            return None
        node: relay.Node | None = await id.resolve_node(info, ensure_type=relay.Node)
        return node


@strawberry.type
class Mutation(CatalogueMutation, AccountsMutation):
    pass


@strawberry.type
class Subscription:
    @strawberry.subscription(description="Index runs of a repository as they finish.")
    async def index_runs(
        self, info: Info, repo_id: relay.GlobalID
    ) -> AsyncGenerator[IndexRunType, None]:
        permissions.catalogue_reader(info)
        topic = f"index-runs:{repo_pk(repo_id)}"
        async for run in info.context.state.broker.subscribe(topic):
            yield run


def _client_facing(error: GraphQLError) -> bool:
    """Port's own errors (and GraphQL's validation errors) keep their message and code;
    anything else is a bug or an outage, masked for the client and logged."""
    original = error.original_error
    return original is None or isinstance(original, PortError)


class PortSchema(strawberry.Schema):
    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        for error in errors:
            original = error.original_error
            if original is not None and not isinstance(original, PortError):
                log.error("unexpected error in %s", error.path, exc_info=original)


def build_schema(max_depth: int) -> strawberry.Schema:
    extensions: list[Any] = [  # factories: each request gets fresh extension state
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
