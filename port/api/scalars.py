"""Custom scalars: sizes beyond GraphQL's 32-bit Int, and free-form JSON."""

from __future__ import annotations

from typing import NewType

import strawberry
from strawberry.scalars import JSON
from strawberry.types.scalar import ScalarDefinition

Long = NewType("Long", int)

SCALARS: dict[object, ScalarDefinition] = {
    Long: strawberry.scalar(
        name="Long",
        serialize=int,
        parse_value=int,
        description="A 64-bit integer (GraphQL's Int has 32 bits; byte sizes need more).",
    )
}

__all__ = ["JSON", "SCALARS", "Long"]
