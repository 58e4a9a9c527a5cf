"""The ORM base shared by every table of Port, and the column types they use."""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy import JSON, DateTime, Dialect, MetaData, String, TypeDecorator
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import DeclarativeBase

# Stable constraint names, so Alembic migrations name things the same on every database.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

JSONType = JSON().with_variant(JSONB(), "postgresql")


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every database (SQLite keeps no zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


E = TypeVar("E", bound=enum.StrEnum)


class Named(TypeDecorator[E]):
    """A column of one StrEnum: stored as its value in a VARCHAR, read back as the
    member. Writing a value the enum does not name raises, so a typo never lands."""

    impl = String
    cache_ok = True

    def __init__(self, kind: type[E], length: int = 32) -> None:
        super().__init__(length)
        self.kind = kind

    def process_bind_param(self, value: E | str | None, dialect: Dialect) -> str | None:
        return None if value is None else self.kind(value).value

    def process_result_value(self, value: str | None, dialect: Dialect) -> E | None:
        return None if value is None else self.kind(value)


def utcnow() -> datetime:
    return datetime.now(UTC)


def on_postgres(session: AsyncSession) -> bool:
    """PostgreSQL (row locks, advisory locks) rather than the embedded SQLite."""
    return session.get_bind().dialect.name == "postgresql"


def insert(session: AsyncSession, table: type[Any]) -> postgresql.Insert | sqlite.Insert:
    """An INSERT that can say ``on_conflict_do_nothing``, in the session's dialect."""
    return postgresql.insert(table) if on_postgres(session) else sqlite.insert(table)


class Base(DeclarativeBase):
    """Every table: stable constraint names, and ids that are never handed out twice."""

    metadata = MetaData(naming_convention=NAMING)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # SQLite reuses the largest id after a delete unless a table says AUTOINCREMENT:
        # a new Setup would take a deleted one's id, and with it its containers' labels.
        # PostgreSQL's sequences never go back.
        table = cls.__dict__.get("__table__")
        if table is not None:
            table.dialect_options["sqlite"]["autoincrement"] = True
