"""The Job table: one row per unit of background work, claimed by one worker at a time.

``key`` coalesces: at most one *queued* job per key (a partial unique index), so a burst
of fifty pushes to one repository leaves one queued index job, plus at most the one
already running. A running job holds a lease (``locked_until``); a worker that dies
loses it, and the job is claimed again when it expires.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError
from sqlalchemy import Index, Integer, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from port.errors import Permanent
from port.orm import Base, JSONType, Named, UTCDateTime, utcnow


class JobStatus(enum.StrEnum):
    """queued -> running -> succeeded | failed (a failed attempt goes back to queued)."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


FINISHED = (JobStatus.SUCCEEDED, JobStatus.FAILED)


class Job(Base):
    __tablename__ = "jobs"
    __table_args__ = (
        Index(
            "uq_jobs_queued_key",
            "key",
            unique=True,
            sqlite_where=text("status = 'queued'"),
            postgresql_where=text("status = 'queued'"),
        ),
        Index("ix_jobs_status_run_after", "status", "run_after"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    key: Mapped[str | None] = mapped_column(String(255))
    payload: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    status: Mapped[JobStatus] = mapped_column(Named(JobStatus, 16), default=JobStatus.QUEUED)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer, default=5)
    run_after: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    locked_by: Mapped[str | None] = mapped_column(String(128))
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class Payload(BaseModel):
    """The arguments of one kind of job, as its domain declares them (JSON in the row)."""

    model_config = ConfigDict(extra="forbid", frozen=True)


P = TypeVar("P", bound=Payload)


def payload_of(job: Job, kind: type[P]) -> P:
    """``job``'s payload as ``kind``; one that does not fit fails the job for good (a
    retry would read the same row)."""
    try:
        return kind.model_validate(job.payload)
    except ValidationError as exc:
        raise Permanent(
            f"job {job.id} ({job.kind}): its payload is not a {kind.__name__}: "
            f"{exc.errors()[0]['msg']} at {'.'.join(map(str, exc.errors()[0]['loc']))}"
        ) from exc
