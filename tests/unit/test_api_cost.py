"""The cost model reads the schema's types: connections by `first`, lists by estimate."""

from __future__ import annotations

from graphql import parse

from port.api.cost import LIST_ESTIMATE, operation_cost
from port.api.schema import build_schema
from port.settings import Settings

SCHEMA = build_schema(Settings())._schema


def cost(query: str, **variables: object) -> int:
    return operation_cost(SCHEMA, parse(query), None, variables, max_page=100)


def test_a_connection_counts_its_page_and_a_list_its_estimate() -> None:
    assert cost("{ apps(first: 7) { edges { node { identifier } } } }") == 7 * (1 + 1 * (1 + 1))
    flavours = (
        '{ app(identifier: "x") { releases(first: 3) { edges { node { flavours { name } } } } } }'
    )
    per_release = 1 + 1 * (1 + LIST_ESTIMATE * 1)  # edge, node, its flavours
    assert cost(flavours) == 1 * (1 + 3 * (1 + per_release))


def test_any_list_field_counts_whatever_its_name() -> None:
    """No name table: a list type costs its estimate (the deploy side, users, tokens)."""
    assert cost("{ setups { id } }") == LIST_ESTIMATE
    assert cost("{ setups { pods { id } } }") == LIST_ESTIMATE * (1 + LIST_ESTIMATE)
    assert cost("{ users { tokens { id } } }") == LIST_ESTIMATE * (1 + LIST_ESTIMATE)


def test_fragments_and_variables_count_like_literals() -> None:
    query = (
        "query($n: Int) { a: apps(first: $n) { ...f } } "
        "fragment f on AppConnection { edges { node { identifier } } }"
    )
    assert cost(query, n=5) == cost("{ apps(first: 5) { edges { node { identifier } } } }")


def test_mutations_and_subscriptions_are_counted_on_their_own_roots() -> None:
    created = cost('mutation { createSetup(input: {app: "x"}) { setup { pods { id } } } }')
    assert created == 1 * (1 + 1 * (1 + LIST_ESTIMATE))
    assert cost('subscription { setupEvents(setupId: "x") { kind } }') == 1  # one event
