"""Receiving one delivery: verify it, record it once, and queue an index of its repos.

The order is what keeps it safe and cheap:

1. No credential header: refused (``UNAUTHORIZED``) before the body is even parsed.
2. The body is parsed (``INVALID`` when it is not a payload of that forge, or names no
   repository), and the registered repositories with the same remote are looked up
   (``matching``).
3. Each of them whose webhook secret verifies the credential is *opened* by the
   delivery. None (no such repository, no secret set, or a wrong signature):
   ``UNAUTHORIZED``, with the same message in every case, so a caller without a secret
   cannot probe which remotes are registered. The log says which case it was.
4. Only then the delivery is recorded, in the transaction that queues the index jobs.
   A delivery already recorded is a ``REPLAY``: acknowledged, nothing queued. The key is
   the forge's delivery id *and* the repositories it opened (``delivery_key``): GitLab
   gives one event id to every hook an event triggers, so two Port repositories on one
   remote, each with its own hook and secret, are two deliveries, not a replay.
5. ``push``-like events queue one index job per opened repository through
   ``enqueue_index``, which coalesces: with a job for that repo already queued, nothing
   new is queued (a burst of fifty pushes leaves one queued job). Pings and other events
   are recorded and answered, nothing more.

Secrets and credential headers never reach a log line or an answer.
"""

from __future__ import annotations

import logging
import re
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from indexer.urls import redact
from port.catalogue.jobs import enqueue_index
from port.orm import insert, utcnow
from port.webhooks.forges import FORGES, Event, EventKind, Forge, PayloadError, body_digest
from port.webhooks.matching import matching_repos
from port.webhooks.models import WebhookDelivery

log = logging.getLogger(__name__)

MAX_DELIVERY_KEY = 255  # the column's size
_PLAIN_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
# Tried when no repository matches, so that case costs about what a wrong signature does.
_DECOY_SECRET = secrets.token_hex(32)
REFUSED = "the delivery is not signed by the webhook secret of a registered repository"


class Status(StrEnum):
    ACCEPTED = "accepted"  # verified and recorded; index jobs queued for pushes
    REPLAY = "replay"  # verified, but this delivery was recorded before: ignored
    UNAUTHORIZED = "unauthorized"  # no credential, or it opens no registered repository
    INVALID = "invalid"  # the body is not a payload of that forge
    UNKNOWN_FORGE = "unknown_forge"


@dataclass(frozen=True)
class Outcome:
    status: Status
    message: str
    event: Event | None = None
    repos: tuple[int, ...] = ()  # the repositories the delivery opened
    jobs: tuple[int, ...] = ()  # index jobs queued now (not the ones already queued)


def delivery_key(delivery: str, repo_ids: Sequence[int]) -> str:
    """What a replay is recognised by: the forge's delivery id and the repos it opened."""
    plain = delivery if _PLAIN_ID.fullmatch(delivery) else _sha256(delivery)
    key = f"{plain}@{','.join(str(i) for i in sorted(repo_ids))}"
    return key if len(key) <= MAX_DELIVERY_KEY else _sha256(key)


def _sha256(text: str) -> str:
    return body_digest(text.encode("utf-8", "surrogateescape"))


def _shown(urls: Sequence[str]) -> list[str]:
    """Payload URLs as they may appear in a log: credentials hidden, length capped."""
    return [redact(u)[:200] for u in urls[:4]]


async def receive(
    sessions: async_sessionmaker[AsyncSession],
    forge_name: str,
    headers: Mapping[str, str],
    body: bytes,
) -> Outcome:
    """Handle one delivery to ``/webhooks/<forge_name>``; ``headers`` in any case."""
    forge = FORGES.get(forge_name)
    if forge is None:
        return Outcome(Status.UNKNOWN_FORGE, f"no forge {forge_name[:32]!r}: use {sorted(FORGES)}")
    lowered = {name.lower(): value for name, value in headers.items()}
    credential = forge.credential(lowered)
    if credential is None:
        log.info("webhook %s refused: no signature or token header", forge.name)
        return Outcome(Status.UNAUTHORIZED, REFUSED)
    try:
        event = forge.event(lowered, body)
    except PayloadError as exc:
        log.info("webhook %s refused: %s", forge.name, exc)
        return Outcome(Status.INVALID, str(exc))
    if not event.urls:
        log.info("webhook %s %s refused: the payload names no repository", forge.name, event.name)
        return Outcome(Status.INVALID, "the payload names no repository", event)

    repo_ids = await _opened(sessions, forge, event, credential, body)
    if not repo_ids:
        return Outcome(Status.UNAUTHORIZED, REFUSED, event)
    return await _record_and_enqueue(sessions, event, repo_ids)


async def _opened(
    sessions: async_sessionmaker[AsyncSession],
    forge: Forge,
    event: Event,
    credential: str,
    body: bytes,
) -> tuple[int, ...]:
    """The ids of the repositories on the payload's remote whose secret verifies."""
    async with sessions() as session:
        candidates = [(r.id, r.webhook_secret) for r in await matching_repos(session, event.urls)]
    opened = tuple(
        repo_id
        for repo_id, secret in candidates
        if secret is not None and forge.verify(credential, body, secret)
    )
    if not candidates:
        forge.verify(credential, body, _DECOY_SECRET)
        log.info(
            "webhook %s %s refused: no registered repository has the remote %r",
            forge.name,
            event.name,
            _shown(event.urls),
        )
    elif not opened:
        ids = [i for i, _ in candidates]
        without = [i for i, secret in candidates if secret is None]
        log.info(
            "webhook %s %s refused: the signature matches the webhook secret of none of repos %s%s",
            forge.name,
            event.name,
            ids,
            f" ({without} have no webhook secret)" if without else "",
        )
    return opened


async def _record_and_enqueue(
    sessions: async_sessionmaker[AsyncSession], event: Event, repo_ids: tuple[int, ...]
) -> Outcome:
    key = delivery_key(event.delivery, repo_ids)
    async with sessions() as session, session.begin():
        if not await _record(session, event, key, repo_ids[0]):
            log.info(
                "webhook %s %s delivery %s for repos %s: a replay, ignored",
                event.forge,
                event.name,
                key,
                list(repo_ids),
            )
            return Outcome(Status.REPLAY, "this delivery was received before", event, repo_ids)
        queued = []
        if event.kind is EventKind.PUSH:
            for repo_id in repo_ids:
                job = await enqueue_index(session, repo_id, "webhook")
                if job is not None:
                    queued.append(job)
    jobs = tuple(job.id for job in queued)
    message = _message(event, len(repo_ids), len(jobs))
    log.info(
        "webhook %s %s %s delivery %s for repos %s: %s",
        event.forge,
        event.name,
        (event.ref or "")[:200],
        key,
        list(repo_ids),
        message,
    )
    return Outcome(Status.ACCEPTED, message, event, repo_ids, jobs)


def _message(event: Event, repos: int, new_jobs: int) -> str:
    if event.kind is EventKind.PING:
        return "pong: the secret matches"
    if event.kind is EventKind.OTHER:
        return f"event {event.name!r} does not index; ignored"
    noun = "repository" if repos == 1 else "repositories"
    if new_jobs == repos:
        return f"index queued for {repos} {noun}"
    return (
        f"index queued for {repos} {noun} ({repos - new_jobs} already had one queued, "
        "which covers this push)"
    )


async def _record(session: AsyncSession, event: Event, key: str, repo_id: int) -> bool:
    """Insert the delivery; False when it is there already (a replay, or a twin racing)."""
    values = {
        "forge": event.forge,
        "delivery": key,
        "repo_id": repo_id,
        "event": event.name,
        "received_at": utcnow(),
    }
    statement = (
        insert(session, WebhookDelivery)
        .values(values)
        .on_conflict_do_nothing(index_elements=["forge", "delivery"])
        .returning(WebhookDelivery.id)
    )
    return (await session.scalar(statement)) is not None


__all__ = ["REFUSED", "Outcome", "Status", "delivery_key", "receive"]


async def prune_deliveries(session: AsyncSession, *, received_before: datetime) -> int:
    """Forget deliveries received before ``received_before``; how many. (A delivery
    replayed after that queues one more index job, which joins any queued one.)"""
    result = await session.execute(
        delete(WebhookDelivery)
        .where(WebhookDelivery.received_at < received_before)
        .execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0))
