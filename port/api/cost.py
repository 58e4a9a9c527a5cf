"""Refuse queries that could return too many objects, before they run.

Depth, alias and token limits do not bound work: one alias can ask for every release of
every app of every repo. The cost of an operation is the number of objects it can return,
read off the schema's types: a field of a connection type (one with ``edges`` and
``pageInfo``) multiplies its children by ``first`` (or the default page size), a plain
list by the most it can hold (``LIST_SIZES``: the caps the indexer and the API keep, or
an argument that bounds it) and else by ``LIST_ESTIMATE``, any other object field by
one. Container output counts too: ``logs(tail:)`` costs one object per
``LOG_LINES_PER_OBJECT`` lines asked for.
Fragments are expanded, inline fragments switch to their type; variables are read. The
estimate runs on the parsed document before validation, so a refused document costs
nothing more (an unknown field costs nothing: validation refuses it next).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from graphql import (
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLInterfaceType,
    GraphQLList,
    GraphQLNamedType,
    GraphQLObjectType,
    GraphQLSchema,
    InlineFragmentNode,
    IntValueNode,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
    VariableNode,
    get_named_type,
    get_nullable_type,
)
from strawberry.extensions import SchemaExtension

from manifests.fields import MAX_ENV, MAX_FLAVOURS, MAX_PORTS
from port.api.loaders import EVENTS_SHOWN
from port.api.pagination import DEFAULT_PAGE_SIZE

LIST_ESTIMATE = 10  # objects a list of no known bound is taken to hold (tokens, ...)
# The most a plain list holds, by (type, field): what the index or the API caps it at.
# The server replaces caps by the catalogue's real largest sizes (ApiState.list_sizes).
LIST_SIZES: Mapping[tuple[str, str], int] = {
    ("Release", "flavours"): MAX_FLAVOURS,
    ("Flavour", "ports"): MAX_PORTS,
    ("Flavour", "env"): MAX_ENV,
    ("Setup", "events"): EVENTS_SHOWN,
}
# Lists bounded by one of their arguments (at most their LIST_SIZES entry).
LIST_ARGUMENTS: Mapping[tuple[str, str], str] = {("Setup", "events"): "limit"}
# Scalar fields whose size an argument sets: (type, field) -> (argument, its default).
SIZED_SCALARS: Mapping[tuple[str, str], tuple[str, int]] = {("Pod", "logs"): ("tail", 100)}
LOG_LINES_PER_OBJECT = 100


class _Walk:
    def __init__(
        self,
        schema: GraphQLSchema,
        fragments: Mapping[str, FragmentDefinitionNode],
        variables: Mapping[str, Any],
        max_page: int,
        sizes: Mapping[tuple[str, str], int],
    ) -> None:
        self.schema = schema
        self.fragments = fragments
        self.variables = variables
        self.max_page = max_page
        self.sizes = sizes

    def fields(
        self, selections: SelectionSetNode, parent: GraphQLNamedType, seen: frozenset[str]
    ) -> Iterator[tuple[FieldNode, GraphQLNamedType]]:
        """Each field with the type it is selected on, fragments expanded (a cycle once)."""
        for selection in selections.selections:
            if isinstance(selection, FieldNode):
                yield selection, parent
            elif isinstance(selection, InlineFragmentNode):
                condition = selection.type_condition
                on = self.schema.get_type(condition.name.value) if condition else parent
                yield from self.fields(selection.selection_set, on or parent, seen)
            elif isinstance(selection, FragmentSpreadNode):
                name = selection.name.value
                fragment = self.fragments.get(name)
                if fragment is not None and name not in seen:
                    on = self.schema.get_type(fragment.type_condition.name.value)
                    yield from self.fields(fragment.selection_set, on or parent, seen | {name})

    def argument(self, field: FieldNode, name: str) -> int | None:
        """The integer value of ``field``'s argument ``name``, if given (or a variable)."""
        for argument in field.arguments or ():
            if argument.name.value != name:
                continue
            value = argument.value
            if isinstance(value, IntValueNode):
                return int(value.value)
            if isinstance(value, VariableNode):
                given = self.variables.get(value.name.value)
                if isinstance(given, int):
                    return given
        return None

    def page(self, field: FieldNode) -> int:
        given = self.argument(field, "first")
        return min(DEFAULT_PAGE_SIZE if given is None else given, self.max_page)

    def list_size(self, field: FieldNode, on: GraphQLNamedType) -> int:
        key = (on.name, field.name.value)
        most = self.sizes.get(key, LIST_ESTIMATE)
        bound = LIST_ARGUMENTS.get(key)
        given = self.argument(field, bound) if bound is not None else None
        return most if given is None else max(0, min(given, most))

    def scalar_cost(self, field: FieldNode, on: GraphQLNamedType) -> int:
        sized = SIZED_SCALARS.get((on.name, field.name.value))
        if sized is None:
            return 0  # a scalar costs nothing beyond its object
        name, default = sized
        given = self.argument(field, name)
        lines = max(0, default if given is None else given)
        return -(-lines // LOG_LINES_PER_OBJECT)

    def cost(
        self, selections: SelectionSetNode, parent: GraphQLNamedType, seen: frozenset[str]
    ) -> int:
        total = 0
        for field, on in self.fields(selections, parent, seen):
            if not isinstance(on, GraphQLObjectType | GraphQLInterfaceType):
                continue
            if field.selection_set is None:
                total += self.scalar_cost(field, on)
                continue
            definition = on.fields.get(field.name.value)
            if definition is None:
                continue
            returned = get_named_type(definition.type)
            if _is_connection(returned):
                count = self.page(field)
            elif isinstance(get_nullable_type(definition.type), GraphQLList):
                # A connection's own edges are its page, counted above.
                count = 1 if _is_connection(on) else self.list_size(field, on)
            else:
                count = 1
            total += count * (1 + self.cost(field.selection_set, returned, seen))
        return total


def _is_connection(kind: GraphQLNamedType) -> bool:
    return isinstance(kind, GraphQLObjectType) and {"edges", "pageInfo"} <= kind.fields.keys()


def operation_cost(
    schema: GraphQLSchema,
    document: Any,
    operation_name: str | None,
    variables: Mapping[str, Any],
    max_page: int,
    sizes: Mapping[tuple[str, str], int] = LIST_SIZES,
) -> int:
    """The most objects the chosen operation of ``document`` can return; ``sizes``: the
    most each plain list holds (default: its cap)."""
    fragments = {
        d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
    }
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    chosen = [o for o in operations if operation_name in (None, o.name and o.name.value)]
    if not chosen:
        return 0
    root = {
        OperationType.QUERY: schema.query_type,
        OperationType.MUTATION: schema.mutation_type,
        OperationType.SUBSCRIPTION: schema.subscription_type,
    }[chosen[0].operation]
    if root is None:
        return 0
    walk = _Walk(schema, fragments, variables, max_page, sizes)
    return walk.cost(chosen[0].selection_set, root, frozenset())


def cost_limiter(max_cost: int, max_page: int) -> type[SchemaExtension]:
    """A Strawberry extension refusing operations over ``max_cost`` objects."""

    class CostLimiter(SchemaExtension):
        def on_validate(self) -> Iterator[None]:
            context = self.execution_context
            document = context.graphql_document
            if document is not None and context.pre_execution_errors is None:
                state = getattr(context.context, "state", None)
                cost = operation_cost(
                    context.schema._schema,
                    document,
                    context.operation_name,
                    context.variables or {},
                    max_page,
                    getattr(state, "list_sizes", LIST_SIZES),
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
