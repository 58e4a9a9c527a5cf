"""Alembic migrations: they build the schema the models describe, on both databases."""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from port.tables import metadata
from tests.conftest import Catalogue


def _diff(connection: Any) -> list[Any]:
    return list(compare_metadata(MigrationContext.configure(connection), metadata))


async def test_migrations_match_the_models(catalogue: Catalogue) -> None:
    async with catalogue.engine.connect() as connection:
        diff = await connection.run_sync(_diff)
    assert diff == []
