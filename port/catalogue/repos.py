"""Registering and finding repositories; every input checked before it is stored, and
who may manage which (the API and the pages both ask here)."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Sequence
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from indexer.errors import IndexerError, UnsafeUrlError
from indexer.paths import check_manifest_path
from indexer.urls import MAX_CHANNELS, channel_tag, check_url, host_of, is_oci, redact
from port import outbound
from port.catalogue.models import App, IndexRun, Release, Repo
from port.errors import Conflict, Forbidden, InvalidInput, NotFound
from port.orm import utcnow
from port.principal import Principal
from port.registries import resolve
from port.settings import Settings

# Git ref-name rules, kept narrow: no "..", no leading "-" or "/", no "@{", no spaces.
_BRANCH = re.compile(
    r"^(?!-)(?!/)(?!.*\.\.)(?!.*@\{)(?!.*//)[A-Za-z0-9._/-]{1,255}(?<!/)(?<!\.lock)$"
)
MAX_MANIFEST_PATH = 1024  # the column's size
LISTED = Repo.deleted_at.is_(None)  # not deleted by force (see ``retire_repo``)
_TAG_PREFIX = re.compile(r"^[A-Za-z0-9._/-]{0,255}$")


def check_manager(principal: Principal, settings: Settings) -> None:
    """FORBIDDEN unless ``principal`` may register, change, scan and delete repositories:
    admins, and any user while PORT_REPO_ADMIN_ONLY is off."""
    if settings.repo_admin_only and not principal.is_admin:
        raise Forbidden("only an admin may do this")


def check_changer(principal: Principal, added_by: int | None) -> None:
    """FORBIDDEN unless ``principal`` may change a repository ``added_by`` registered:
    admins any, other managers (PORT_REPO_ADMIN_ONLY off) only their own."""
    if principal.is_admin:
        return
    if added_by is None or not principal.owns(added_by):
        raise Forbidden("only the user who registered this repository, or an admin, may change it")


def validate_repo_fields(
    url: str, *, branch: str | None, manifest_path: str, tag_prefix: str, allow_local: bool
) -> str:
    """Check a repository's settings; return the normalised URL or raise InvalidInput."""
    try:
        normalised = check_url(url, allow_local=allow_local)
    except UnsafeUrlError as exc:
        raise InvalidInput(str(exc), field="url") from exc
    if branch is not None and not _BRANCH.match(branch):
        raise InvalidInput(f"branch {branch!r} is not a valid git branch name", field="branch")
    if len(manifest_path) > MAX_MANIFEST_PATH:
        raise InvalidInput(
            f"manifest path is longer than {MAX_MANIFEST_PATH} characters", field="manifest_path"
        )
    try:
        check_manifest_path(manifest_path)
    except IndexerError as exc:
        raise InvalidInput(str(exc), field="manifest_path") from exc
    if not _TAG_PREFIX.match(tag_prefix):
        raise InvalidInput(
            f"tag prefix {tag_prefix!r} may hold only letters, digits and ._/-", field="tag_prefix"
        )
    return normalised


def check_channels(url: str, channels: Sequence[str]) -> list[str]:
    """The channels an OCI repository follows, each once, in the order given."""
    wanted = list(dict.fromkeys(c.strip() for c in channels if c.strip()))
    if wanted and not is_oci(url):
        raise InvalidInput(
            "channels are followed in OCI repositories (oci://...); a git repository's "
            "branch is its channel",
            field="channels",
        )
    if len(wanted) > MAX_CHANNELS:
        raise InvalidInput(f"at most {MAX_CHANNELS} channels", field="channels")
    for channel in wanted:
        if len(channel) > 128 or channel_tag(channel) is None:
            raise InvalidInput(
                f"channel {channel[:130]!r} cannot be a registry tag: letters, digits, "
                "'.', '_', '-' (and '/', read as '-'), at most 128",
                field="channels",
            )
    return wanted


def check_repo_address(url: str, *, allow_local: bool, allowed: Sequence[str] = ()) -> None:
    """Refuse a remote whose host has an address that is not public (loopback, private,
    link-local, a cloud's metadata service, numeric spellings of them), unless local
    repositories or its network (``allowed``) are allowed: a repository URL is a way
    into the server's network, as a notice URL is. Runs when a repo is registered and
    before every fetch (the name may resolve elsewhere later), so git never connects
    there and its errors tell nothing of what listens. Blocks up to 2 s on the lookup;
    a name that does not resolve passes (git cannot reach it either)."""
    host = None if allow_local else host_of(url)
    if host is None:
        return
    guard = outbound.Guard(outbound.networks(allowed))
    if any(not guard.permits(address) for address in resolve(host)):
        raise InvalidInput(
            f"refusing repository URL {redact(url)!r}: {host} is not a public address. "
            "Port reads repositories on the internet, and on networks an admin allows "
            "(PORT_REPO_ALLOWED_NETWORKS)",
            field="url",
        )


async def add_repo(
    session: AsyncSession,
    url: str,
    *,
    allow_local: bool,
    branch: str | None = None,
    manifest_path: str = "port.yaml",
    tag_prefix: str = "",
    webhook_secret: str | None = None,
    added_by: int | None = None,
    allowed_networks: Sequence[str] = (),
    channels: Sequence[str] = (),
) -> Repo:
    """Register a repository (not yet scanned) for user ``added_by`` (None: the CLI, an
    admin's). The caller commits. ``allowed_networks``: PORT_REPO_ALLOWED_NETWORKS."""
    normalised = validate_repo_fields(
        url,
        branch=branch,
        manifest_path=manifest_path,
        tag_prefix=tag_prefix,
        allow_local=allow_local,
    )
    followed = check_channels(normalised, channels)
    await asyncio.to_thread(
        check_repo_address, normalised, allow_local=allow_local, allowed=allowed_networks
    )
    taken = (
        await session.execute(select(Repo.id, Repo.deleted_at).where(Repo.url == normalised))
    ).first()
    if taken is not None and taken.deleted_at is not None:
        raise Conflict(
            f"repository {redact(normalised)} was deleted, but users' Setups still run its "
            "apps; it can be registered again once they are deleted"
        )
    if taken is not None:
        raise Conflict(f"repository {redact(normalised)} is already registered")
    repo = Repo(
        url=normalised,
        branch=branch,
        manifest_path=manifest_path,
        tag_prefix=tag_prefix,
        channels=followed,
        webhook_secret=_secret(webhook_secret),
        added_by_id=added_by,
    )
    session.add(repo)
    await session.flush()
    return repo


def _secret(secret: str | None) -> str | None:
    if secret is not None and not 8 <= len(secret) <= 255:
        raise InvalidInput("a webhook secret must be 8 to 255 characters", field="webhook_secret")
    return secret


_UNSET: Any = object()


async def update_repo(
    session: AsyncSession,
    repo_id: int,
    *,
    branch: str | None = _UNSET,
    manifest_path: str = _UNSET,
    tag_prefix: str = _UNSET,
    webhook_secret: str | None = _UNSET,
    channels: Sequence[str] = _UNSET,
) -> Repo:
    """Change what is given. A new branch, manifest path or tag prefix forgets the refs
    of the last run, so the next scan reads everything again; the next scan of new
    channels reads their builds, of unfollowed ones withdraws them. The caller commits."""
    repo = await session.get(Repo, repo_id)
    if repo is None:
        raise NotFound(f"no repository {repo_id}")
    new_branch = repo.branch if branch is _UNSET else branch
    new_path = repo.manifest_path if manifest_path is _UNSET else manifest_path
    new_prefix = repo.tag_prefix if tag_prefix is _UNSET else tag_prefix
    # The URL cannot change, so the local-repo rule was applied at creation.
    validate_repo_fields(
        repo.url,
        branch=new_branch,
        manifest_path=new_path,
        tag_prefix=new_prefix,
        allow_local=True,
    )
    wanted = {"branch": new_branch, "manifest_path": new_path, "tag_prefix": new_prefix}
    if any(getattr(repo, k) != v for k, v in wanted.items()):
        for key, value in wanted.items():
            setattr(repo, key, value)
        repo.refs, repo.head = {}, None
    if webhook_secret is not _UNSET:
        repo.webhook_secret = _secret(webhook_secret)
    if channels is not _UNSET:
        followed = check_channels(repo.url, channels)
        if followed != repo.channels:
            repo.channels = followed
    return repo


async def delete_repo(session: AsyncSession, repo_id: int) -> Repo:
    """Delete a repository with its apps, releases and runs. The caller commits."""
    repo = await session.get(Repo, repo_id)
    if repo is None or repo.deleted_at is not None:
        raise NotFound(f"no repository {repo_id}")
    await session.delete(repo)
    return repo


async def find_repo(session: AsyncSession, url_or_id: str, *, allow_local: bool = True) -> Repo:
    """A repository by numeric id or by URL (in the normalised form it was stored in)."""
    if url_or_id.isdigit():
        repo = await session.get(Repo, int(url_or_id)) if len(url_or_id) < 10 else None
    else:
        try:
            url = check_url(url_or_id, allow_local=allow_local)
        except UnsafeUrlError:
            url = url_or_id
        repo = await session.scalar(select(Repo).where(Repo.url == url))
    if repo is None or repo.deleted_at is not None:
        shown = redact(url_or_id)
        raise NotFound(f"no repository {shown!r} is registered (see `port repo list`)")
    return repo


async def list_repos(session: AsyncSession) -> list[Repo]:
    return list(await session.scalars(select(Repo).where(LISTED).order_by(Repo.id)))


async def retire_repo(session: AsyncSession, repo_id: int) -> Repo:
    """Delete a repository whose apps users' Setups still run: every release of its
    apps is withdrawn (no install, no update), and the repository is never indexed,
    polled or listed again; its rows stay for those Setups. The caller commits."""
    repo = await session.get(Repo, repo_id)
    if repo is None or repo.deleted_at is not None:
        raise NotFound(f"no repository {repo_id}")
    repo.deleted_at = utcnow()
    repo.webhook_secret, repo.next_poll_at = None, None
    apps = select(App.id).where(App.repo_id == repo_id).scalar_subquery()
    await session.execute(
        update(Release)
        .where(Release.app_id.in_(apps))
        .values(withdrawn=True)
        .execution_options(synchronize_session=False)
    )
    return repo


async def list_runs(session: AsyncSession, repo: Repo, limit: int = 20) -> list[IndexRun]:
    """The newest runs first, errors loaded."""
    rows = await session.scalars(
        select(IndexRun)
        .where(IndexRun.repo_id == repo.id)
        .order_by(IndexRun.id.desc())
        .limit(limit)
        .options(selectinload(IndexRun.errors))
    )
    return list(rows)
