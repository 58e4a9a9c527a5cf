"""What each kind of job does: the handlers a Worker runs by default.

``index`` (payload ``{"repo_id", "reason"}``): one index run of the Repo
(``scan_repo``), returning its ``ScanOutcome`` to the after-hooks (None when the Repo
was deleted meanwhile: nothing to do, the job succeeds).

A run that could not read the remote is recorded as a failed run *and* fails the job.
A transient failure (network, timeout) is retried after its backoff (a blip should not
wait for the next poll); index jobs have few attempts, since polling retries anyway and
each attempt may fetch. A lasting one (a refused URL, a remote over the size limit, a
missing branch) fails the job at once: the next poll or push tries again.
A run whose result the catalogue refused is recorded as failed, but the job succeeds:
the same refs give the same result, so retrying would only repeat it.
"""

from __future__ import annotations

import logging

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from port.catalogue.models import Repo
from port.catalogue.scanning import ScanOutcome, scan_repo
from port.errors import Permanent, RepoUnreachable
from port.jobs.models import Job
from port.jobs.worker import Handler
from port.settings import Settings

log = logging.getLogger(__name__)


def default_handlers(
    sessions: async_sessionmaker[AsyncSession], settings: Settings
) -> dict[str, Handler]:
    """The handlers of `port serve` and `port worker`, by job kind."""

    async def repo_exists(repo_id: int) -> bool:
        async with sessions() as session:
            return await session.get(Repo, repo_id) is not None

    async def index(job: Job) -> ScanOutcome | None:
        repo_id = int(job.payload["repo_id"])
        try:
            outcome = await scan_repo(sessions, settings, repo_id)  # LookupError: no repo
        except LookupError:
            if await repo_exists(repo_id):
                raise
            log.info("job %s: repository %s was deleted, nothing to index", job.id, repo_id)
            return None
        if outcome.remote_failed:
            why = f"index run {outcome.run.id}: {outcome.run.message or 'the remote failed'}"
            raise RepoUnreachable(why) if outcome.transient else Permanent(why)
        return outcome

    return {"index": index}
