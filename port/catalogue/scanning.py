"""One index run: mirror and read the remote (indexer), then ingest (one transaction)."""

from __future__ import annotations

import asyncio
import hashlib
import logging
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from indexer.errors import IndexerError, UnsafeUrlError
from indexer.oci import index_oci
from indexer.result import WHOLE_RELEASES, FoundRelease, IndexResult, Previous, RepoSpec
from indexer.scan import Limits, Progress, index_repo
from indexer.urls import is_oci, redact
from manifests.errors import ManifestError
from port import outbound
from port.catalogue.ingest import Changes, error_rows, ingest
from port.catalogue.logos import fetch_logos
from port.catalogue.models import IndexRun, IndexRunStatus, Repo
from port.catalogue.repos import check_repo_address
from port.errors import InvalidInput
from port.metrics import observe_index_run
from port.orm import utcnow
from port.registries import Registries
from port.settings import Settings

log = logging.getLogger(__name__)


@dataclass(slots=True)
class ScanOutcome:
    """A finished run and what it changed (``changes`` is None when the run failed).

    ``remote_failed``: the run failed because the remote could not be read (network,
    auth, timeout, size), as opposed to the catalogue refusing the result.
    """

    run: IndexRun
    changes: Changes | None
    remote_failed: bool = False
    transient: bool = False  # a remote failure that may pass (network), worth a retry


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
        max_seconds=settings.index_seconds,
        max_read_bytes=settings.index_max_read_mb << 20,
        max_manifests=settings.index_max_manifests,
        max_history=settings.index_max_history,
    )


async def scan_repo(
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    repo_id: int,
    progress: Progress | None = None,
) -> ScanOutcome:
    """Scan one repository and record the run. Remote failures end in a failed run.

    The run row is written once, when the run ends, in the same transaction as the
    catalogue changes: an unchanged rescan costs one ``git ls-remote`` and one INSERT.
    """
    started = utcnow()
    async with sessions() as session:
        repo = await session.get(Repo, repo_id)
        if repo is None or repo.deleted_at is not None:
            raise LookupError(f"repository {repo_id} vanished before its scan")
        spec = RepoSpec(
            url=repo.url,
            branch=repo.branch,
            manifest_path=repo.manifest_path,
            tag_prefix=repo.tag_prefix,
            channels=tuple(repo.channels or ()),
        )
        # A repository never scanned has nothing to compare with: read everything.
        previous = Previous(refs=dict(repo.refs), head=repo.head) if repo.refs else None
        mirror = mirror_path(settings, repo)

    try:  # again before each fetch: the name may resolve elsewhere since it was added
        await asyncio.to_thread(
            check_repo_address,
            spec.url,
            allow_local=settings.allow_local_repos,
            allowed=settings.repo_allowed_networks,
        )
    except InvalidInput as exc:
        log.warning("index run of %s refused: %s", redact(spec.url), exc)
        return await _record_failure(sessions, repo_id, started, str(exc), remote=True)

    def guard(url: str) -> None:
        """A registry's redirect or token realm: the same address rules as the repo's."""
        try:
            check_repo_address(
                url, allow_local=settings.allow_local_repos, allowed=settings.repo_allowed_networks
            )
        except InvalidInput as exc:
            raise UnsafeUrlError(str(exc)) from None

    try:
        if is_oci(spec.url):
            result = await asyncio.to_thread(index_oci, spec, previous, limits(settings), guard)
        else:
            result = await asyncio.to_thread(
                index_repo, spec, mirror, previous, limits(settings), progress
            )
    except IndexerError as exc:
        log.warning("index run of %s failed: %s", redact(spec.url), exc)
        return await _record_failure(
            sessions, repo_id, started, str(exc), remote=True, transient=exc.transient
        )
    await asyncio.to_thread(screen_registries, result, Registries(settings.allowed_registries))
    logo_guard = outbound.Guard(outbound.networks(settings.logo_allowed_networks))
    await asyncio.to_thread(fetch_logos, result, logo_guard)

    try:
        return await _ingest_and_record(sessions, repo_id, spec, result, started)
    except Exception as exc:
        # Whatever a manifest held must not wedge the repository: say so on a run.
        # (OverflowError: a number the database driver cannot bind, before SQLAlchemy.)
        log.exception("index run of %s could not be stored", redact(spec.url))
        return await _record_failure(
            sessions,
            repo_id,
            started,
            f"the index result could not be stored ({type(exc).__name__})",
        )


def screen_registries(result: IndexResult, registries: Registries) -> None:
    """Drop the flavours whose image comes from a refused registry, each a located error.

    A release left without flavours is dropped too, and a tag whose whole release was
    refused counts as broken: its last good release stands, as for any broken manifest.
    Blocks on name lookups (one per registry): call it from a thread.
    """
    kept: list[FoundRelease] = []
    for found in result.releases:
        flavours = []
        for flavour in found.spec.flavours:
            why = registries.refusal(flavour.image)
            if why is None:
                flavours.append(flavour)
                continue
            native = found.source in WHOLE_RELEASES
            result.errors.append(
                ManifestError(
                    file=found.file,
                    ref=found.ref,
                    path=f"flavours.{flavour.name}.image" if native else "image",
                    message=f"{found.spec.app.identifier} {found.spec.version} flavour "
                    f"{flavour.name}: image {flavour.image} refused: {why}",
                )
            )
        if len(flavours) == len(found.spec.flavours):
            kept.append(found)
        elif flavours:
            kept.append(replace(found, spec=replace(found.spec, flavours=tuple(flavours))))
        elif found.source in WHOLE_RELEASES:
            result.tags_read.discard(found.ref)
    result.releases = kept


async def _record_failure(
    sessions: async_sessionmaker[AsyncSession],
    repo_id: int,
    started: datetime,
    message: str,
    *,
    remote: bool = False,
    transient: bool = False,
) -> ScanOutcome:
    failed = IndexRun(
        repo_id=repo_id,
        status=IndexRunStatus.FAILED,
        started_at=started,
        finished_at=utcnow(),
        message=message,
        errors=[],
    )
    async with sessions() as session, session.begin():
        session.add(failed)
    observe_index_run(IndexRunStatus.FAILED, (utcnow() - started).total_seconds())
    return ScanOutcome(run=failed, changes=None, remote_failed=remote, transient=transient)


async def _ingest_and_record(
    sessions: async_sessionmaker[AsyncSession],
    repo_id: int,
    spec: RepoSpec,
    result: IndexResult,
    started: datetime,
) -> ScanOutcome:
    async with sessions() as session, session.begin():
        if result.unchanged:
            changes = Changes(errors=list(result.errors))
        else:
            repo = await session.get(Repo, repo_id)
            if repo is None:
                raise LookupError(f"repository {repo_id} was deleted during its scan")
            changes = await ingest(session, repo, result)
        run = IndexRun(
            repo_id=repo_id,
            status=IndexRunStatus.UNCHANGED if result.unchanged else IndexRunStatus.SUCCEEDED,
            started_at=started,
            finished_at=utcnow(),
            branch=result.branch,
            commit=result.head,
            blobs_read=result.blobs_read,
            added=[str(ref) for ref in changes.added],
            changed=[str(change) for change in changes.changed],
            withdrawn=[str(ref) for ref in changes.withdrawn],
            errors=error_rows(changes.errors),
        )
        session.add(run)
    observe_index_run(run.status, (utcnow() - started).total_seconds())
    log.info(
        "index run %s of %s: %s, %d added, %d changed, %d withdrawn, %d errors",
        run.id,
        redact(spec.url),
        run.status,
        len(changes.added),
        len(changes.changed),
        len(changes.withdrawn),
        len(changes.errors),
    )
    return ScanOutcome(run=run, changes=changes)
