"""One index run: mirror and read the remote (indexer), then ingest (one transaction)."""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import selectinload

from indexer.errors import IndexerError
from indexer.result import Previous, RepoSpec
from indexer.scan import Limits, index_repo
from indexer.urls import redact
from port.catalogue.ingest import Changes, error_rows, ingest
from port.catalogue.models import IndexRun, Repo, utcnow
from port.settings import Settings

log = logging.getLogger(__name__)

Progress = Callable[[str, int, int], None]


@dataclass(slots=True)
class ScanOutcome:
    """A finished run and what it changed (``changes`` is None when the run failed)."""

    run: IndexRun
    changes: Changes | None


def mirror_path(settings: Settings, repo: Repo) -> Path:
    """One mirror per registration; the URL hash keeps a re-registered id from reusing it."""
    digest = hashlib.sha256(repo.url.encode()).hexdigest()[:16]
    return settings.mirrors_dir / f"{repo.id}-{digest}"


def limits(settings: Settings) -> Limits:
    return Limits(
        allow_local=settings.allow_local_repos,
        timeout_seconds=settings.git_timeout_seconds,
        max_repo_bytes=settings.max_repo_mb << 20,
        max_manifest_bytes=settings.max_manifest_kb << 10,
    )


async def scan_repo(
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    repo_id: int,
    progress: Progress | None = None,
) -> ScanOutcome:
    """Scan one repository and record the run. Remote failures end in a failed run."""
    async with sessions() as session:
        repo = await session.get(Repo, repo_id)
        if repo is None:
            raise LookupError(f"repository {repo_id} vanished before its scan")
        spec = RepoSpec(
            url=repo.url,
            branch=repo.branch,
            manifest_path=repo.manifest_path,
            tag_prefix=repo.tag_prefix,
        )
        previous = Previous(refs=dict(repo.refs or {}), head=repo.head)
        run = IndexRun(repo_id=repo.id, status="running", started_at=utcnow())
        session.add(run)
        await session.commit()
        mirror = mirror_path(settings, repo)

    try:
        result = await asyncio.to_thread(
            index_repo, spec, mirror, previous, limits(settings), progress
        )
    except IndexerError as exc:
        log.warning("index run %s of %s failed: %s", run.id, redact(spec.url), exc)
        async with sessions() as session, session.begin():
            failed = await session.get(IndexRun, run.id)
            if failed is None:
                raise LookupError(f"repository {repo_id} was deleted during its scan") from exc
            failed.status = "failed"
            failed.message = str(exc)
            failed.finished_at = utcnow()
        return ScanOutcome(run=await _load_run(sessions, run.id), changes=None)

    async with sessions() as session, session.begin():
        repo = await session.get(Repo, repo_id)
        done = await session.get(IndexRun, run.id)
        if repo is None or done is None:
            raise LookupError(f"repository {repo_id} was deleted during its scan")
        changes = await ingest(session, repo, result)
        done.status = "unchanged" if result.unchanged else "succeeded"
        done.finished_at = utcnow()
        done.branch = result.branch
        done.commit = result.head
        done.blobs_read = result.blobs_read
        done.added, done.changed, done.withdrawn = (
            changes.added,
            changes.changed,
            changes.withdrawn,
        )
        session.add_all(error_rows(done.id, changes.errors))
    log.info(
        "index run %s of %s: %s, %d added, %d changed, %d withdrawn, %d errors",
        done.id,
        redact(spec.url),
        done.status,
        len(changes.added),
        len(changes.changed),
        len(changes.withdrawn),
        len(changes.errors),
    )
    return ScanOutcome(run=await _load_run(sessions, run.id), changes=changes)


async def _load_run(sessions: async_sessionmaker[AsyncSession], run_id: int) -> IndexRun:
    """The finished run with its errors loaded, usable after the session closes."""
    async with sessions() as session:
        run = await session.scalar(
            select(IndexRun).where(IndexRun.id == run_id).options(selectinload(IndexRun.errors))
        )
    if run is None:
        raise LookupError(f"index run {run_id} vanished")
    return run
