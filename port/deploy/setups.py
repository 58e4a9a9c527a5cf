"""Setups: create, start, stop, restart, delete, and who may see or touch which.

Like the catalogue services, every function takes an ``AsyncSession`` and leaves the
commit to the caller. Nothing here talks to a container engine: these functions change
intent (``Setup.wants_running``, a new PENDING ``Pod``, ``Pod.restart_requested``) and
the reconciler makes the engine agree. The one engine fact needed up front is the
backend's capabilities, because a Setup whose app cannot run here must fail at once
with ``NO_FITTING_FLAVOUR`` rather than later in a log.

Ownership: a user sees and changes only their own Setups and Pods, an admin all of them.
Someone else's Setup is NOT_FOUND, not FORBIDDEN, so ids reveal nothing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from sqlalchemy import Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from manifests.specs import Run
from port.accounts.models import User
from port.catalogue.models import App, Release
from port.catalogue.queries import latest_release
from port.deploy.backends.base import PodStatus
from port.deploy.grants import Consent, GrantPolicy, Grants, check_consents
from port.deploy.jobs import enqueue_update
from port.deploy.models import EventKind, Pod, Setup, SetupEvent, UpdatePolicy
from port.deploy.policy import channel_build, check_range
from port.deploy.secrets import set_secrets
from port.deploy.selection import Candidate, Capabilities, Grantor, Selection, gpus_for
from port.deploy.selection import select as select_flavour
from port.deploy.variables import ENV_MAX_ITEMS, check_variable
from port.errors import Conflict, Forbidden, InvalidInput, NotFound, QuotaExceeded
from port.orm import utcnow
from port.principal import Principal
from port.settings import Settings


@dataclass(frozen=True)
class SetupRequest:
    """What a user asks for; ``version`` None means the newest current release, or on
    ``channel`` the build the channel points at (followed from then on)."""

    app: str
    version: str | None = None
    channel: str | None = None
    flavour: str | None = None
    update_policy: UpdatePolicy = UpdatePolicy.NONE
    version_range: str | None = None
    include_prereleases: bool = False
    env: Mapping[str, str] = field(default_factory=dict)
    grants: Sequence[Consent] = ()  # the owner's consents to what the app asks
    secrets: Mapping[str, str] = field(default_factory=dict)  # sealed, never shown


def record(
    session: AsyncSession, setup: Setup, kind: EventKind, message: str, pod: Pod | None = None
) -> SetupEvent:
    """Add a SetupEvent (committed with the caller's transaction)."""
    event = SetupEvent(
        setup_id=setup.id, pod_id=pod.id if pod else None, kind=kind, message=message
    )
    session.add(event)
    return event


# --- who sees what ---------------------------------------------------------------------


def visible(principal: Principal) -> Select[Setup]:
    """Setups ``principal`` may see, oldest first."""
    query = select(Setup).order_by(Setup.id)
    if not principal.is_admin:
        query = query.where(Setup.owner_id == (principal.user_id or -1))
    return query


async def get_setup(session: AsyncSession, principal: Principal, setup_id: int) -> Setup:
    setup = await session.scalar(
        visible(principal)
        .where(Setup.id == setup_id)
        .options(selectinload(Setup.app), selectinload(Setup.pods))
    )
    if setup is None:
        raise NotFound(f"no setup {setup_id}")
    return setup


async def get_pod(session: AsyncSession, principal: Principal, pod_id: int) -> Pod:
    pod = await session.get(Pod, pod_id, options=[selectinload(Pod.setup)])
    if pod is None or not (principal.is_admin or principal.owns(pod.setup.owner_id)):
        raise NotFound(f"no pod {pod_id}")
    return pod


# --- creating ----------------------------------------------------------------------------


def check_env(env: Mapping[str, str]) -> dict[str, str]:
    if len(env) > ENV_MAX_ITEMS:
        raise InvalidInput(f"at most {ENV_MAX_ITEMS} environment variables")
    for name, value in env.items():
        check_variable(name, value)
    return dict(env)


async def _release(session: AsyncSession, app: App, request: SetupRequest) -> Release:
    releases = list(
        await session.scalars(
            select(Release).where(Release.app_id == app.id).options(selectinload(Release.flavours))
        )
    )
    if request.channel is not None:
        if request.version is not None:
            raise InvalidInput("a Setup runs a version or follows a channel, not both")
        build = channel_build(releases, request.channel)
        if build is None:
            raise NotFound(
                f"{app.identifier} has no build on channel {request.channel!r} (its "
                "repository must follow it: `port repo channels`, or updateRepo's channels)"
            )
        return build
    if request.version is None:
        release = latest_release(releases, prereleases=request.include_prereleases)
        if release is None:
            raise NotFound(f"{app.identifier} has no current release to run")
        return release
    for release in releases:
        if release.version == request.version:
            if release.withdrawn:
                raise InvalidInput(f"{app.identifier} {release.version} was withdrawn")
            if release.channel is not None:
                raise InvalidInput(
                    f"{app.identifier} {release.version} is a build of channel "
                    f"{release.channel!r}: follow the channel instead"
                )
            return release
    raise NotFound(f"{app.identifier} has no release {request.version}")


async def _owner(session: AsyncSession, principal: Principal, owner: str | None) -> User:
    if owner is not None:
        if not principal.is_admin:
            raise Forbidden("only an admin may create a setup for another user")
        user = await session.scalar(select(User).where(User.name == owner))
        if user is None:
            raise NotFound(f"no user {owner}")
        return user
    if principal.user_id is None:
        raise Forbidden(
            "setups belong to local users; this credential has none (the CLI: --owner NAME)"
        )
    user = await session.get(User, principal.user_id)
    if user is None:
        raise NotFound("the calling user no longer exists")
    return user


async def create_setup(
    session: AsyncSession,
    principal: Principal,
    request: SetupRequest,
    caps: Capabilities,
    settings: Settings,
    *,
    owner: str | None = None,
) -> Setup:
    """A new, stopped Setup. Fails at once when no flavour of the release fits ``caps``."""
    app = await session.scalar(select(App).where(App.identifier == request.app))
    if app is None:
        raise NotFound(f"no app {request.app!r}")
    version_range = None
    if request.channel is not None and request.update_policy is not UpdatePolicy.NONE:
        raise InvalidInput(
            f"a Setup on channel {request.channel!r} follows it: updatePolicy does not apply"
        )
    if request.update_policy is UpdatePolicy.RANGE:
        version_range = check_range(request.version_range)
    elif request.version_range:
        raise InvalidInput("versionRange is only used with updatePolicy RANGE")
    env = check_env(request.env)
    release = await _release(session, app, request)
    policy = GrantPolicy.of(settings)
    asked = (f.capabilities for f in release.flavours)
    consents = check_consents(request.grants, asked, policy, app.identifier)
    grants = Grants(policy, {c.name: c for c in consents}, app.identifier)
    # NO_FITTING_FLAVOUR (or CONSENT_NEEDED: what to grant) now, not at start.
    selection = choose(release, caps, request.flavour, grants)
    flavour = next(f for f in release.flavours if f.name == selection.flavour)
    declared = Run.from_json(flavour.run).env
    for var in declared:
        if var.secret and var.name in env:
            raise InvalidInput(
                f"env: {var.name} is a secret of {app.identifier}: pass it in secrets, "
                "which are never shown",
                field="env",
            )
    given = {**env, **request.secrets}
    missing = [v.name for v in declared if v.required and v.value is None and not given.get(v.name)]
    if missing:
        raise InvalidInput(
            f"{app.identifier} {release.version} needs a value for "
            f"{', '.join(missing)}: set it in env",
            field="env",
        )
    user = await _owner(session, principal, owner)
    setup = Setup(
        owner_id=user.id,
        app=app,
        release_id=release.id,
        flavour=request.flavour,
        update_policy=request.update_policy.value,
        version_range=version_range,
        include_prereleases=request.include_prereleases,
        channel=request.channel,
        env=env,
        grants=[c.as_json() for c in consents],
        wants_running=False,
        pods=[],  # loaded, and empty: start_setup may follow in the same transaction
    )
    session.add(setup)
    await session.flush()
    on = f" (channel {request.channel})" if request.channel else ""
    record(
        session, setup, EventKind.CREATED, f"{app.identifier} {release.version}{on} for {user.name}"
    )
    await set_secrets(session, setup, request.secrets, settings)
    return setup


# --- starting and stopping -------------------------------------------------------------


def choose(release: Release, caps: Capabilities, pinned: str | None, grants: Grantor) -> Selection:
    if not release.flavours:
        raise InvalidInput(f"release {release.version} has no flavours")
    candidates = [Candidate.of(f) for f in release.flavours]
    return select_flavour(candidates, caps, pinned, grants)


def asks_consent(release: Release) -> bool:
    """Does some flavour of ``release`` ask for a capability it cannot run without?"""
    return any(c.get("required", True) for f in release.flavours for c in f.capabilities)


def grants_of(setup: Setup, settings: Settings) -> Grants:
    """``setup``'s consents under today's policy (its app must be loaded)."""
    consents = [Consent.from_json(c) for c in setup.grants or ()]
    return Grants.of(settings, setup.app.identifier, consents)


def _capped(value: float | None, cap: float | None) -> float | None:
    if cap is None:
        return value
    return cap if value is None else min(value, cap)


def plan_pod(setup: Setup, release: Release, caps: Capabilities, settings: Settings) -> Pod:
    """A PENDING Pod of ``release`` with the flavour chosen for ``caps`` and the
    Setup's grants, capped limits, and exactly the grants that flavour gets."""
    grants = grants_of(setup, settings)
    selection = choose(release, caps, setup.flavour, grants)
    flavour = next(f for f in release.flavours if f.name == selection.flavour)
    max_memory = settings.max_memory_mb << 20 if settings.max_memory_mb else None
    # A flavour that names no limit gets the admin's default: never "unlimited".
    memory = _capped(flavour.memory or settings.default_memory_mb << 20, max_memory)
    gpus, vendor = gpus_for(flavour.selectors, selection.node)
    return Pod(
        setup_id=setup.id,
        release_id=release.id,
        flavour=flavour.name,
        image=flavour.image,
        backend=settings.backend,
        selection=selection.as_json(),
        cpus=_capped(flavour.cpus or settings.default_cpus, settings.max_cpus),
        memory=int(memory) if memory is not None else None,
        gpus=gpus,
        gpu_vendor=vendor,
        read_only=flavour.read_only,
        non_root=flavour.non_root,
        run=flavour.run,
        grants=[g.as_json() for g in grants.applied(flavour.capabilities)],
        status="PENDING",
    )


def active_pods(setup: Setup) -> list[Pod]:
    return [p for p in setup.pods if not p.retired]


def setup_status(pods: list[Pod], wants_running: bool) -> PodStatus:
    """A Setup's status: its newest active Pod's; PENDING when wanted running without
    one, else STOPPED."""
    active = [p for p in pods if not p.retired]
    if active:
        return PodStatus(active[-1].status)
    return PodStatus.PENDING if wants_running else PodStatus.STOPPED


async def start_setup(
    session: AsyncSession, setup: Setup, caps: Capabilities, settings: Settings
) -> Pod:
    """Want it running; a new PENDING Pod unless one is already active (then that one)."""
    current = active_pods(setup)
    setup.wants_running = True
    setup.updated_at = utcnow()
    if current:
        return current[-1]
    release = await session.get(Release, setup.release_id, options=[selectinload(Release.flavours)])
    if release is None:  # pragma: no cover - the foreign key cascades
        raise NotFound("the setup's release is gone")
    pod = plan_pod(setup, release, caps, settings)
    await check_quota(session, setup, pod, settings)
    session.add(pod)
    await session.flush()
    record(
        session,
        setup,
        EventKind.STARTED,
        f"{release.version} with flavour {pod.flavour} ({pod.image})",
        pod,
    )
    return pod


async def check_quota(session: AsyncSession, setup: Setup, pod: Pod, settings: Settings) -> None:
    """QUOTA_EXCEEDED when ``pod`` would take its owner past a quota; an update's new
    Pod is not counted (it replaces one)."""
    used = (
        await session.execute(
            select(func.count(Pod.id), func.sum(Pod.cpus), func.sum(Pod.memory))
            .join(Setup, Setup.id == Pod.setup_id)
            .where(
                Setup.owner_id == setup.owner_id,
                Setup.id != setup.id,
                Setup.wants_running.is_(True),
                Pod.retired.is_(False),
                Pod.candidate.is_(False),
            )
        )
    ).one()
    # PostgreSQL sums BIGINTs as NUMERIC: back to plain numbers.
    pods = int(used[0]) + 1
    cpus = float(used[1] or 0) + (pod.cpus or 0)
    memory = int(used[2] or 0) + (pod.memory or 0)
    if settings.quota_pods is not None and pods > settings.quota_pods:
        raise QuotaExceeded(f"at most {settings.quota_pods} running pods per user")
    if settings.quota_cpus is not None and cpus > settings.quota_cpus:
        raise QuotaExceeded(
            f"{cpus:g} CPUs would be more than the {settings.quota_cpus:g} allowed per user"
        )
    if settings.quota_memory_mb is not None and memory > settings.quota_memory_mb << 20:
        raise QuotaExceeded(
            f"{memory >> 20} MB of memory would be more than the "
            f"{settings.quota_memory_mb} MB allowed per user"
        )


def stop_setup(session: AsyncSession, setup: Setup) -> None:
    """Want it stopped; the reconciler stops and retires its Pods."""
    if setup.wants_running:
        setup.wants_running = False
        setup.updated_at = utcnow()
        record(session, setup, EventKind.STOPPED, "stop requested")


def set_policy(
    session: AsyncSession,
    setup: Setup,
    policy: UpdatePolicy,
    version_range: str | None,
    include_prereleases: bool,
) -> None:
    """Change which releases ``setup`` follows (RANGE needs a valid range)."""
    if setup.channel is not None:
        raise InvalidInput(f"this setup follows channel {setup.channel!r}: no policy applies")
    if policy is UpdatePolicy.RANGE:
        version_range = check_range(version_range)
    elif version_range:
        raise InvalidInput("versionRange is only used with updatePolicy RANGE")
    setup.update_policy = policy
    setup.version_range = version_range
    setup.include_prereleases = include_prereleases
    setup.consent_needed = None  # planned again under the new policy, asked again if so
    setup.updated_at = utcnow()
    record(
        session,
        setup,
        EventKind.POLICY_CHANGED,
        f"follows {policy.value} {version_range or ''}".strip(),
    )


async def set_grants(
    session: AsyncSession, setup: Setup, consents: Sequence[Consent], settings: Settings
) -> None:
    """Replace ``setup``'s consents (checked against what its release, and an update
    waiting for consent, ask); the waiting update is queued again, as the owner's word
    (whatever the policy: they asked for it, or it allowed it). Pods planned from now
    on get the new grants; a running Pod keeps what it started with."""
    waiting = (setup.consent_needed or {}).get("version")
    releases = await session.scalars(
        select(Release)
        .where(
            Release.app_id == setup.app_id,
            (Release.id == setup.release_id) | (Release.version == (waiting or "")),
        )
        .options(selectinload(Release.flavours))
    )
    asked = [f.capabilities for release in releases for f in release.flavours]
    app = setup.app.identifier
    checked = check_consents(consents, asked, GrantPolicy.of(settings), app)
    setup.grants = [c.as_json() for c in checked]
    setup.consent_needed = None
    setup.updated_at = utcnow()
    shown = ", ".join(c.name + (f" ({c.host})" if c.host else "") for c in checked)
    record(session, setup, EventKind.GRANTS_CHANGED, f"granted: {shown or 'nothing'}")
    if waiting:
        await enqueue_update(session, setup.id, waiting, manual=True)


def restart_pod(session: AsyncSession, pod: Pod) -> None:
    """Ask for a fresh container of this Pod (same release and flavour)."""
    if pod.retired:
        raise Conflict(f"pod {pod.id} is stopped and retired; start its setup instead")
    pod.restart_requested = True
    record(
        session, pod.setup, EventKind.RESTART_REQUESTED, f"restart of pod {pod.id} requested", pod
    )


async def runners_of(session: AsyncSession, identifiers: set[str]) -> dict[str, list[int]]:
    """The users with a Setup of each app, by app identifier (one query for all: a first
    index may add hundreds of releases)."""
    runners: dict[str, list[int]] = {}
    if not identifiers:
        return runners
    rows = await session.execute(
        select(App.identifier, Setup.owner_id)
        .join(Setup, Setup.app_id == App.id)
        .where(App.identifier.in_(identifiers))
        .distinct()
    )
    for identifier, owner_id in rows:
        runners.setdefault(identifier, []).append(owner_id)
    return runners


async def setups_of_repo(session: AsyncSession, repo_id: int) -> list[tuple[int, str, str]]:
    """(Setup id, owner name, app identifier) of every Setup of the repository's apps."""
    rows = await session.execute(
        select(Setup.id, User.name, App.identifier)
        .join(App, App.id == Setup.app_id)
        .join(User, User.id == Setup.owner_id)
        .where(App.repo_id == repo_id)
        .order_by(Setup.id)
    )
    return [(setup_id, owner, app) for setup_id, owner, app in rows]
