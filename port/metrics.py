"""Prometheus metrics of one Port process (served at /metrics)."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

REGISTRY = CollectorRegistry()

HTTP_REQUESTS = Counter(
    "port_http_requests_total",
    "HTTP requests answered, by method, route and status.",
    ["method", "route", "status"],
    registry=REGISTRY,
)
HTTP_LATENCY = Histogram(
    "port_http_request_duration_seconds",
    "Time to answer an HTTP request, by method and route.",
    ["method", "route"],
    registry=REGISTRY,
)
INDEX_RUNS = Counter(
    "port_index_runs_total", "Index runs finished, by status.", ["status"], registry=REGISTRY
)
INDEX_RUN_SECONDS = Histogram(
    "port_index_run_duration_seconds",
    "Duration of index runs.",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
    registry=REGISTRY,
)
SQL_STATEMENTS = Counter(
    "port_sql_statements_total", "SQL statements sent to the database.", registry=REGISTRY
)


def count_statements(engine: AsyncEngine) -> None:
    """Count every statement ``engine`` executes in ``port_sql_statements_total``."""

    @event.listens_for(engine.sync_engine, "before_cursor_execute")
    def _count(*_args: Any) -> None:
        SQL_STATEMENTS.inc()


def observe_index_run(status: str, seconds: float) -> None:
    INDEX_RUNS.labels(status=status).inc()
    INDEX_RUN_SECONDS.observe(seconds)


def exposition() -> bytes:
    """The text format Prometheus scrapes."""
    return generate_latest(REGISTRY)
