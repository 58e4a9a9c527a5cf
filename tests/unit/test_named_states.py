"""States have names: a column of a StrEnum reads back members and refuses typos."""

from __future__ import annotations

import pytest
from sqlalchemy import Column, Integer, MetaData, Table, create_engine, insert, select
from sqlalchemy.exc import StatementError

from port.deploy.backends.base import PodStatus
from port.deploy.models import EventKind, SetupEvent
from port.orm import Named
from port.tables import metadata


def test_a_named_column_stores_the_value_and_reads_back_the_member() -> None:
    table = Table(
        "t", MetaData(), Column("id", Integer, primary_key=True), Column("s", Named(PodStatus, 16))
    )
    engine = create_engine("sqlite://")
    table.metadata.create_all(engine)
    with engine.begin() as connection:
        connection.execute(insert(table).values(s=PodStatus.RUNNING))
        connection.execute(insert(table).values(s="FAILED"))  # a member's value is fine
        raw = connection.exec_driver_sql("SELECT s FROM t ORDER BY id").scalars().all()
        read = connection.execute(select(table.c.s).order_by(table.c.id)).scalars().all()
        with pytest.raises(StatementError, match="'RUNING' is not a valid PodStatus"):
            connection.execute(insert(table).values(s="RUNING"))
    assert raw == ["RUNNING", "FAILED"]
    assert read == [PodStatus.RUNNING, PodStatus.FAILED]
    assert all(type(value) is PodStatus for value in read)


def test_no_status_or_policy_column_is_a_bare_string() -> None:
    """Every ``status`` and ``update_policy`` column of every table, and the events'
    ``kind``, are Named. (A job's ``kind`` is open: each domain registers its own.)"""
    bare = [
        f"{table.name}.{column.name}"
        for table in metadata.sorted_tables
        for column in table.columns
        if column.name in ("status", "update_policy") and not isinstance(column.type, Named)
    ]
    assert bare == []
    kind = SetupEvent.__table__.c.kind.type
    assert isinstance(kind, Named)
    assert kind.kind is EventKind
    assert {t.name for t in metadata.sorted_tables} >= {"jobs", "pods", "setups", "index_runs"}
