"""Refuse queries that could return too many objects, before they run.

Depth, alias and token limits do not bound work: one alias can ask for every release of
every app of every repo. The cost of an operation is the number of objects it can return,
read off the schema's types, not field names: a field of a connection type (one with
``edges`` and ``pageInfo``) multiplies its children by ``first`` (or the default page
size), a field of a list type by ``LIST_ESTIMATE``, any other object field by one.
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

from port.api.pagination import DEFAULT_PAGE_SIZE

LIST_ESTIMATE = 10  # objects a plain list is taken to hold (flavours, errors, tokens...)


class _Walk:
    def __init__(
        self,
        schema: GraphQLSchema,
        fragments: Mapping[str, FragmentDefinitionNode],
        variables: Mapping[str, Any],
        max_page: int,
    ) -> None:
        self.schema = schema
        self.fragments = fragments
        self.variables = variables
        self.max_page = max_page

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

    def page(self, field: FieldNode) -> int:
        for argument in field.arguments or ():
            if argument.name.value != "first":
                continue
            value = argument.value
            if isinstance(value, IntValueNode):
                return min(int(value.value), self.max_page)
            if isinstance(value, VariableNode):
                given = self.variables.get(value.name.value)
                if isinstance(given, int):
                    return min(given, self.max_page)
        return min(DEFAULT_PAGE_SIZE, self.max_page)

    def cost(
        self, selections: SelectionSetNode, parent: GraphQLNamedType, seen: frozenset[str]
    ) -> int:
        total = 0
        for field, on in self.fields(selections, parent, seen):
            if field.selection_set is None or not isinstance(
                on, GraphQLObjectType | GraphQLInterfaceType
            ):
                continue  # a scalar costs nothing beyond its object
            definition = on.fields.get(field.name.value)
            if definition is None:
                continue
            returned = get_named_type(definition.type)
            if _is_connection(returned):
                count = self.page(field)
            elif isinstance(get_nullable_type(definition.type), GraphQLList):
                # A connection's own edges are its page, counted above.
                count = 1 if _is_connection(on) else LIST_ESTIMATE
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
) -> int:
    """The most objects the chosen operation of ``document`` can return."""
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
    walk = _Walk(schema, fragments, variables, max_page)
    return walk.cost(chosen[0].selection_set, root, frozenset())


def cost_limiter(max_cost: int, max_page: int) -> type[SchemaExtension]:
    """A Strawberry extension refusing operations over ``max_cost`` objects."""

    class CostLimiter(SchemaExtension):
        def on_validate(self) -> Iterator[None]:
            context = self.execution_context
            document = context.graphql_document
            if document is not None and context.pre_execution_errors is None:
                cost = operation_cost(
                    context.schema._schema,
                    document,
                    context.operation_name,
                    context.variables or {},
                    max_page,
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
