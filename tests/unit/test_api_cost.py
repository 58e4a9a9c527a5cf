"""The cost model reads the schema's types: connections by `first`, lists by their cap."""

from __future__ import annotations

from graphql import parse

from manifests.fields import MAX_FLAVOURS
from port.api.cost import LIST_ESTIMATE, operation_cost
from port.api.loaders import EVENTS_SHOWN
from port.api.schema import build_schema
from port.settings import Settings

SCHEMA = build_schema(Settings())._schema


def cost(query: str, **variables: object) -> int:
    return operation_cost(SCHEMA, parse(query), None, variables, max_page=100)


def test_a_connection_counts_its_page_and_a_list_what_it_can_hold() -> None:
    """Repro (issue 16, 3): `flavours` was counted as 10 whatever a release held, so a
    page of releases of 5,000 flavours passed the limit. A list counts its cap now."""
    assert cost("{ apps(first: 7) { edges { node { identifier } } } }") == 7 * (1 + 1 * (1 + 1))
    flavours = (
        '{ app(identifier: "x") { releases(first: 3) { edges { node { flavours { name } } } } } }'
    )
    per_release = 1 + 1 * (1 + MAX_FLAVOURS * 1)  # edge, node, its flavours
    assert cost(flavours) == 1 * (1 + 3 * (1 + per_release))
    bomb = (
        '{ app(identifier: "flavbomb") { releases(first: 100) { edges { node { version '
        "flavours { name image selectors ports { name } env { name } } } } } } }"
    )
    assert cost(bomb) > 20_000  # refused by the default limit, before it runs


def test_a_list_bounded_by_its_argument_counts_that_and_logs_count_their_lines() -> None:
    assert cost("{ setups { events(limit: 3) { kind } } }") == LIST_ESTIMATE * (1 + 3)
    assert cost("{ setups { events { kind } } }") == LIST_ESTIMATE * (1 + EVENTS_SHOWN)
    assert cost("{ setups { events(limit: 5000) { kind } } }") == LIST_ESTIMATE * (1 + 50)
    one = cost("{ setups { pods { logs(tail: 10000) } } }")
    assert one == LIST_ESTIMATE * (1 + LIST_ESTIMATE * (1 + 100))
    aliased = "{ setups { pods { " + " ".join(f"l{n}: logs(tail: 10000)" for n in range(15))
    assert cost(aliased + " } } }") == LIST_ESTIMATE * (1 + LIST_ESTIMATE * (1 + 1500))


def test_any_list_field_counts_whatever_its_name() -> None:
    """A list of no known bound costs its estimate, whatever its name (users, tokens)."""
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
