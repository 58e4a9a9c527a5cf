"""Refuse queries that could return too many objects, before they run.

Depth, alias and token limits do not bound work: one alias can ask for every release of
every app of every repo. The cost of an operation is the number of objects it can return:
a connection multiplies its children by ``first`` (or the default page size), a plain
list by a fixed estimate. Fragments are expanded; variables are read. The estimate runs
on the parsed document before validation, so a refused document costs nothing more.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from graphql import (
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    InlineFragmentNode,
    IntValueNode,
    OperationDefinitionNode,
    SelectionSetNode,
    VariableNode,
)
from strawberry.extensions import SchemaExtension

from port.api.pagination import DEFAULT_PAGE_SIZE

CONNECTIONS = frozenset({"apps", "repos", "releases"})  # paginated: `first` counts
LISTS = {"flavours": 10, "errors": 20, "users": 100, "tokens": 20}  # plain lists: a guess


def operation_cost(
    document: Any, operation_name: str | None, variables: Mapping[str, Any], max_page: int
) -> int:
    """The most objects the chosen operation of ``document`` can return."""
    fragments = {
        d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
    }
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    chosen = [o for o in operations if operation_name in (None, o.name and o.name.value)]
    if not chosen:
        return 0
    return _cost(chosen[0].selection_set, fragments, variables, max_page, frozenset())


def _fields(
    selections: SelectionSetNode,
    fragments: Mapping[str, FragmentDefinitionNode],
    seen: frozenset[str],
) -> Iterator[FieldNode]:
    """The fields of a selection set, fragments expanded (a cycle is expanded once)."""
    for selection in selections.selections:
        if isinstance(selection, FieldNode):
            yield selection
        elif isinstance(selection, InlineFragmentNode):
            yield from _fields(selection.selection_set, fragments, seen)
        elif isinstance(selection, FragmentSpreadNode):
            name = selection.name.value
            if name in fragments and name not in seen:
                yield from _fields(fragments[name].selection_set, fragments, seen | {name})


def _page(field: FieldNode, variables: Mapping[str, Any], max_page: int) -> int:
    for argument in field.arguments or ():
        if argument.name.value != "first":
            continue
        value = argument.value
        if isinstance(value, IntValueNode):
            return min(int(value.value), max_page)
        if isinstance(value, VariableNode):
            given = variables.get(value.name.value)
            if isinstance(given, int):
                return min(given, max_page)
    return min(DEFAULT_PAGE_SIZE, max_page)


def _cost(
    selections: SelectionSetNode,
    fragments: Mapping[str, FragmentDefinitionNode],
    variables: Mapping[str, Any],
    max_page: int,
    seen: frozenset[str],
) -> int:
    total = 0
    for field in _fields(selections, fragments, seen):
        if field.selection_set is None:
            continue  # a scalar costs nothing beyond its object
        name = field.name.value
        count = _page(field, variables, max_page) if name in CONNECTIONS else LISTS.get(name, 1)
        total += count * (1 + _cost(field.selection_set, fragments, variables, max_page, seen))
    return total


def cost_limiter(max_cost: int, max_page: int) -> type[SchemaExtension]:
    """A Strawberry extension refusing operations over ``max_cost`` objects."""

    class CostLimiter(SchemaExtension):
        def on_validate(self) -> Iterator[None]:
            context = self.execution_context
            document = context.graphql_document
            if document is not None and context.pre_execution_errors is None:
                cost = operation_cost(
                    document, context.operation_name, context.variables or {}, max_page
                )
                if cost > max_cost:
                    context.pre_execution_errors = [
                        GraphQLError(
                            f"this query could return about {cost} objects, more than the "
                            f"limit of {max_cost}: ask for smaller pages (`first`)",
                            extensions={"code": "QUERY_TOO_COSTLY"},
                        )
                    ]
            yield

    return CostLimiter
