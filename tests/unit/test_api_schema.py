"""The GraphQL schema is committed (port/api/schema.graphql) and speaks one dialect."""

from __future__ import annotations

from graphql import GraphQLNonNull, GraphQLObjectType, build_schema

from port.api.schema import SDL_PATH, sdl


def test_schema_graphql_is_current() -> None:
    assert SDL_PATH.read_text(encoding="utf-8") == sdl(), (
        "port/api/schema.graphql is stale: run `python -m port.api.schema`"
    )


def test_every_mutation_takes_one_input_and_returns_its_payload() -> None:
    schema = build_schema(sdl())
    mutation = schema.mutation_type
    assert mutation is not None
    wrong = {}
    for name, field in mutation.fields.items():
        title = name[0].upper() + name[1:]
        result = field.type.of_type if isinstance(field.type, GraphQLNonNull) else None
        if (
            list(field.args) != ["input"]
            or str(field.args["input"].type) != f"{title}Input!"
            or not isinstance(result, GraphQLObjectType)
            or result.name != f"{title}Payload"
        ):
            wrong[name] = f"({', '.join(field.args)}) -> {field.type}"
    assert wrong == {}


def test_lookups_by_id_answer_null_and_users_and_tokens_are_nodes() -> None:
    schema = build_schema(sdl())
    query = schema.query_type
    assert query is not None
    for lookup in ("setup", "pod", "app", "node"):
        assert not isinstance(query.fields[lookup].type, GraphQLNonNull), lookup
    for name in ("User", "Token", "Setup", "Pod", "Repo", "App", "Release"):
        kind = schema.get_type(name)
        assert isinstance(kind, GraphQLObjectType)
        assert "Node" in [i.name for i in kind.interfaces], name
