"""The reconciler: makes the engine run what the Setups want, and only that.

Level-triggered: each pass compares desired state (active Pods of Setups that want to
run) with actual state (containers carrying this instance's labels), whatever happened
in between. That one comparison covers every case:

- a Pod with no container: pull by policy, start (a crash between "create" and "record"
  leaves a container with the Pod's label and name: it is adopted, never twinned). A
  pull runs in the background (port/deploy/pulls.py): the pass goes on with the other
  Pods, and the pull's end wakes the reconciler to start this one;
- a container that exited while its Setup wants it running: FAILED, then restarted after
  a backoff that doubles with each failure in a row (and resets once a Pod has run for
  the longest backoff);
- a container removed behind Port's back: recreated;
- a Pod whose Setup stopped: container stopped and removed, Pod retired;
- a labelled container with no active Pod (its Setup was deleted): removed;
- the engine unreachable: Pods become UNKNOWN with the reason, nothing else changes, and
  the next pass that reaches the engine puts everything right.

Passes run periodically, when engine events arrive, when a mutation asks (``wake``), and
when a backoff expires. One pass at a time per process; several processes (a CLI next to
a server) cannot twin a container either, because its name is fixed by the Pod.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, suppress
from dataclasses import replace
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import joinedload, selectinload
from sqlalchemy.orm.exc import StaleDataError

from indexer.result import ARKITEKT_SOURCES
from manifests.specs import Run
from port.deploy.backends import load_backend
from port.deploy.backends.base import (
    HOST_ALIAS,
    LABEL_APP,
    LABEL_FLAVOUR,
    LABEL_INSTANCE,
    LABEL_OWNER,
    LABEL_POD,
    LABEL_RELEASE,
    LABEL_SETUP,
    Backend,
    BackendError,
    BackendUnavailable,
    ContainerExists,
    ManagedContainer,
    PodSpec,
    PodState,
    PodStatus,
    PullProgress,
)
from port.deploy.decisions import LIVE, Step, decide
from port.deploy.grants import Grant, GrantPolicy
from port.deploy.instance import resolved
from port.deploy.jobs import rollout_pending
from port.deploy.models import EventKind, Pod, Setup
from port.deploy.pulls import Pulls
from port.deploy.secrets import ARKITEKT_URL, pod_secrets
from port.deploy.selection import Capabilities
from port.deploy.setups import record
from port.jobs.queue import backoff
from port.orm import utcnow
from port.registries import Registries
from port.secretbox import SecretsUnreadable
from port.settings import Settings

# What pod_spec reads of a Pod, loaded with it in one query (a pass loads every Pod).
POD_SPEC_LOADS = (
    joinedload(Pod.release),
    joinedload(Pod.setup).joinedload(Setup.app),
    joinedload(Pod.setup).joinedload(Setup.owner),
)

log = logging.getLogger(__name__)

CAPABILITIES_TTL = 60.0  # seconds; hardware rarely changes under a running engine
LAUNCH_TRIES = 3  # `launch`: a pull, then the start (a third for a pull raced away)


def pod_spec(settings: Settings, pod: Pod, setup: Setup, server_url: str | None = None) -> PodSpec:
    """The container of ``pod``: image, labels, env, limits; nothing from the manifest
    but the image, its command, arguments and variables, and the (capped) resources.
    ``server_url``: Port as the Pod reaches it (default: the public URL). The Setup's
    secrets are added by the reconciler just before a start (``pod_secrets``)."""
    app = setup.app.identifier
    run = Run.from_json(pod.run)
    arkitekt = {}
    if settings.arkitekt_url and pod.release.source in ARKITEKT_SOURCES:
        arkitekt[ARKITEKT_URL] = settings.arkitekt_url
    env = {
        **{var.name: var.value for var in run.env if var.value is not None},
        **arkitekt,
        **setup.env,
        "PORT_SETUP_ID": str(setup.id),
        "PORT_POD_ID": str(pod.id),
        "PORT_SERVER_URL": server_url or settings.public_url,
    }
    return PodSpec(
        image=pod.image,
        labels={
            LABEL_INSTANCE: settings.instance_name,
            LABEL_SETUP: str(setup.id),
            LABEL_POD: str(pod.id),
            LABEL_RELEASE: pod.release.version,
            LABEL_FLAVOUR: pod.flavour,
            LABEL_OWNER: setup.owner.name,
            LABEL_APP: app,
        },
        env=env,
        cpus=pod.cpus,
        memory_bytes=pod.memory,
        gpus=pod.gpus,
        gpu_vendor=pod.gpu_vendor or "nvidia",
        tenant=setup.id,
        offline=app in settings.offline_apps,
        # What the image says it supports, or what the admin asks of the app.
        read_only=pod.read_only or app in settings.read_only_apps,
        user="65534:65534" if pod.non_root or app in settings.non_root_apps else None,
        command=run.command,
        args=run.args,
        grants=tuple(Grant.from_json(g) for g in pod.grants or ()),
        node=((pod.selection or {}).get("node") or {}).get("id"),
    )


def _progress(progress: PullProgress) -> dict[str, int]:
    """A pull's progress as ``Pod.pull`` holds it."""
    return {"layers": progress.layers, "done": progress.done_bytes, "total": progress.total_bytes}


def _state_of(container: ManagedContainer | None) -> PodState:
    """The state a LIVE or CRASHED step is about: ``decide`` names them only with one."""
    if container is None:
        raise LookupError("a step about a container was decided without one")
    return container.state


class PodGone(Exception):
    """The Pod being launched was deleted, retired or stopped meanwhile: create nothing."""


class Pulling(Exception):
    """The Pod's image is being pulled in the background: its start waits for the end."""


class Reconciler:
    """Drives one backend for one catalogue. ``notify(setup_id)`` is called after every
    committed change of a Setup's Pods or events (the API streams them)."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        settings: Settings,
        backend: Backend,
        notify: Callable[[int], None] = lambda _setup_id: None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.sessions = sessions
        self.settings = resolved(settings)  # pod specs carry the instance name
        self.backend = backend
        self.notify = notify
        self.clock = clock  # when backoffs end: tests move it instead of sleeping
        self._lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._caps: tuple[float, Capabilities] | None = None
        self._engine_down: str | None = None
        self.pulls = Pulls(
            backend,
            self.settings.pull_timeout_seconds,
            self._save_pull,
            ended=lambda _image: self.wake(),
        )

    @classmethod
    @asynccontextmanager
    async def opened(
        cls, sessions: async_sessionmaker[AsyncSession], settings: Settings
    ) -> AsyncIterator[Reconciler]:
        """A reconciler with the backend ``settings`` names, closed on leaving."""
        settings = resolved(settings)
        reconciler = cls(sessions, settings, load_backend(settings))
        try:
            yield reconciler
        finally:
            await reconciler.close()

    async def close(self) -> None:
        """Cancel the pulls under way and close the backend."""
        await self.pulls.close()
        await self.backend.close()

    # --- facts -------------------------------------------------------------------------

    async def capabilities(self) -> Capabilities:
        """The backend's capabilities, cached for a minute."""
        now = time.monotonic()
        if self._caps is None or now - self._caps[0] > CAPABILITIES_TTL:
            self._caps = (now, await self.backend.capabilities())
        return self._caps[1]

    def backoff(self, failures: int) -> timedelta:
        return backoff(
            failures,
            self.settings.restart_backoff_seconds,
            self.settings.restart_backoff_max_seconds,
        )

    # --- running -------------------------------------------------------------------------

    def wake(self) -> None:
        """Ask for a pass soon (after a mutation, or an engine event)."""
        self._wake.set()

    async def run(self, request: Callable[[], Awaitable[datetime | None]] | None = None) -> None:
        """Reconcile until cancelled: every ``reconcile_seconds``, on wake, on backoff.

        ``request`` replaces the pass itself: `port serve` and `port worker` queue a
        ``reconcile`` job instead (port/work/jobs.py), so that one pass runs at a time across
        every Port process sharing the database.
        """
        run_pass = request or self.reconcile
        events = asyncio.create_task(self._follow_engine_events())
        try:
            while True:
                self._wake.clear()
                delay = self.settings.reconcile_seconds
                try:
                    due = await run_pass()
                except Exception:
                    log.exception("reconcile pass failed")
                    due = None
                if due is not None:
                    delay = min(delay, max((due - self.clock()).total_seconds(), 0.05))
                with suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=delay)
        finally:
            events.cancel()
            with suppress(asyncio.CancelledError):
                await events

    async def _follow_engine_events(self) -> None:
        """Wake on each engine event of our containers; reconnect after the engine left."""
        while True:
            try:
                async for _container in self.backend.events():
                    self.wake()
            except BackendUnavailable as exc:
                log.debug("engine events unavailable: %s", exc)
            except BackendError as exc:
                log.warning("engine events failed: %s", exc)
            await asyncio.sleep(max(self.settings.reconcile_seconds, 1.0))

    async def reconcile(self) -> datetime | None:
        """One pass over every active Pod; returns when the next backoff expires, if any."""
        async with self._lock:
            try:
                containers = await self.backend.list_managed()
            except BackendUnavailable as exc:
                await self._mark_engine_down(str(exc))
                return None
            if self._engine_down is not None:
                log.info("engine reachable again")
                self._engine_down = None
            by_pod: dict[int | None, list[ManagedContainer]] = {}
            for container in containers:
                by_pod.setdefault(container.pod_id, []).append(container)
            async with self.sessions() as session:
                active = (
                    await session.execute(
                        select(Pod.id, Pod.setup_id).where(Pod.retired.is_(False))
                    )
                ).all()
            pod_ids = [pod_id for pod_id, _ in active]
            due: list[datetime] = []
            for pod_id in pod_ids:
                try:
                    next_at = await self._converge(pod_id, by_pod.pop(pod_id, []))
                except BackendUnavailable as exc:
                    await self._mark_engine_down(str(exc))
                    return None
                except Exception:  # one bad Pod must not stop the pass for all others
                    log.exception("reconciling pod %s failed; next pass tries again", pod_id)
                    continue
                if next_at is not None:
                    due.append(next_at)
            for strays in by_pod.values():
                for container in strays:
                    log.info("removing %s (%s): no active pod", container.name, container.id[:12])
                    await self.remove_containers([container.id])
            try:
                await self.backend.prune({setup_id for _, setup_id in active})
            except (BackendError, BackendUnavailable) as exc:
                log.warning("could not release engine objects of gone setups: %s", exc)
            return min(due, default=None)

    async def _server_url(self) -> str:
        """PORT_SERVER_URL inside a Pod: Port on its host's address where the backend
        knows one (`port serve` listens there too), else Port's public URL."""
        if await self.backend.host_address():
            return f"http://{HOST_ALIAS}:{self.settings.port}"
        return self.settings.public_url

    async def _load(self, session: AsyncSession, pod_id: int) -> Pod | None:
        return await session.scalar(select(Pod).where(Pod.id == pod_id).options(*POD_SPEC_LOADS))

    async def _converge(self, pod_id: int, found: list[ManagedContainer]) -> datetime | None:
        async with self.sessions() as session:
            pod = await self._load(session, pod_id)
            if pod is None or pod.retired:
                return None  # deleted or retired since the listing
            setup = pod.setup
            setup_id = setup.id  # read now: a rollback below expires the objects
            spec = pod_spec(self.settings, pod, setup, await self._server_url())
            mine = [c for c in found if spec.is_mine(c.labels)]
            foreign = [c.id for c in found if not spec.is_mine(c.labels)]
            if foreign:
                # Labelled with this Pod's id but not its Setup, owner, app or release:
                # never adopted (it could hold another tenant's data), only removed.
                log.warning("pod %s: removing containers not its own: %s", pod_id, foreign)
                await self.remove_containers(foreign)
            try:
                return await self._converge_pod(session, setup, pod, mine[0] if mine else None)
            except PodGone:
                await session.rollback()
                log.info("pod %s went away while it was being launched", pod_id)
                return None
            finally:
                await self._commit(session, pod_id, setup_id)

    async def _commit(self, session: AsyncSession, pod_id: int, setup_id: int) -> None:
        """Commit what a pass changed of a Pod, if anything (most passes change nothing:
        no write then, and no wake-up of subscribers).

        The Setup may have been deleted since the Pod was loaded (by a user, from any
        process): its rows are gone, the commit fails on them, and the changes are
        dropped; a container started meanwhile is of no active Pod now, and the next
        pass removes it."""
        if not (session.new or session.dirty or session.deleted):
            return
        try:
            await session.commit()
        except (IntegrityError, StaleDataError):
            await session.rollback()
            if await session.get(Pod, pod_id) is not None:
                raise
            log.info("pod %s was deleted during the pass; its changes are dropped", pod_id)
            self.wake()
            return
        self.notify(setup_id)

    async def _converge_pod(
        self, session: AsyncSession, setup: Setup, pod: Pod, container: ManagedContainer | None
    ) -> datetime | None:
        """Apply ``decide``'s step for ``pod``; when the next backoff ends, if any."""
        now = self.clock()
        pending = pod.candidate and setup.wants_running and await rollout_pending(session, setup.id)
        decision = decide(pod, setup.wants_running, pending, container, now)
        if decision.adopt and container is not None:
            pod.container_id = container.id
            message = f"adopted container {container.id[:12]}"
            record(session, setup, EventKind.POD_ADOPTED, message, pod)
        match decision.step:
            case Step.WAIT:
                return decision.at
            case Step.STOP:
                if container is not None:
                    self._set(pod, PodStatus.STOPPING)
                    await session.commit()
                    await self._stop(container)
                self._retire(pod, PodStatus.STOPPED, now)
                message = f"pod {pod.id} stopped and removed"
                record(session, setup, EventKind.POD_STOPPED, message, pod)
                return None
            case Step.ABANDON:
                await self._stop(container)
                self._retire(pod, PodStatus.STOPPED, now, "its rollout ended without a verdict")
                message = f"pod {pod.id}: rollout gave up"
                record(session, setup, EventKind.UPDATE_ABANDONED, message, pod)
                return None
            case Step.RESTART:
                pod.restart_requested = False
                await self._stop(container)
                pod.restarts += 1
                pod.next_attempt_at = None
                message = f"pod {pod.id} restarted on request"
                record(session, setup, EventKind.POD_RESTARTED, message, pod)
            case Step.LAUNCH:
                if decision.event is EventKind.POD_RESTARTED:
                    pod.restarts += 1
                    message = f"attempt {pod.failures + 1}"
                    record(session, setup, EventKind.POD_RESTARTED, message, pod)
                elif decision.event is EventKind.POD_RECREATED:
                    pod.restarts += 1
                    message = f"container {(pod.container_id or '')[:12]} disappeared; "
                    record(
                        session, setup, EventKind.POD_RECREATED, message + "starting a new one", pod
                    )
            case Step.RELAUNCH:
                await self._stop(container)
            case Step.LIVE:
                self._take_live(session, setup, pod, _state_of(container), now)
                return None
            case Step.CRASHED:
                return self._crashed(session, setup, pod, _state_of(container), now)
            case Step.RETRY:
                await self._stop(container)
                pod.restarts += 1
                message = f"restart {pod.restarts} after a crash"
                record(session, setup, EventKind.POD_RESTARTED, message, pod)
        return await self._launch(session, setup, pod)

    async def _stop(self, container: ManagedContainer | None) -> None:
        if container is not None:
            await self.backend.stop(container.id, self.settings.stop_timeout_seconds)

    def _retire(
        self, pod: Pod, status: PodStatus, now: datetime, message: str | None = None
    ) -> None:
        self._set(pod, status, message)
        pod.retired, pod.stopped_at = True, now

    def _take_live(
        self, session: AsyncSession, setup: Setup, pod: Pod, state: PodState, now: datetime
    ) -> None:
        """The engine says starting or running: so is the Pod."""
        if pod.status != state.status:
            self._set(pod, state.status)
            pod.message, pod.exit_code = None, None
            pod.started_at = state.started_at or pod.started_at or now
            if state.status is PodStatus.RUNNING:
                record(session, setup, EventKind.POD_RUNNING, f"pod {pod.id} is running", pod)
        if state.status is PodStatus.RUNNING and state.address and pod.address != state.address:
            pod.address = state.address
        ran = (now - pod.started_at) if pod.started_at else timedelta(0)
        if pod.failures and ran.total_seconds() >= self.settings.restart_backoff_max_seconds:
            pod.failures = 0  # it has run long enough: the next crash starts afresh

    def _crashed(
        self, session: AsyncSession, setup: Setup, pod: Pod, state: PodState, now: datetime
    ) -> datetime:
        """FAILED with the exit code and reason; the restart waits for the backoff."""
        pod.failures += 1
        pod.next_attempt_at = now + self.backoff(pod.failures)
        pod.exit_code = state.exit_code
        pod.stopped_at = state.finished_at or now
        reason = state.message or f"exited with code {state.exit_code}"
        self._set(pod, PodStatus.FAILED, reason)
        wait = (pod.next_attempt_at - now).total_seconds()
        record(session, setup, EventKind.POD_FAILED, f"{reason}; restart in {wait:g} s", pod)
        return pod.next_attempt_at

    async def _launch(self, session: AsyncSession, setup: Setup, pod: Pod) -> datetime | None:
        """Pull by policy, then start; a failure is FAILED with a backoff.

        A pull runs in the background: the Pod stays PULLING and this returns; the
        pass after the pull's end starts it. The Setup may be deleted in between:
        PodGone, and nothing is created (checked right before the start).
        """
        spec = pod_spec(self.settings, pod, setup, await self._server_url())
        pod.next_attempt_at = None
        try:
            await self._check_registry(pod)
            try:
                await self._ensure_image(pod)
            except Pulling:
                return None
            await self._still_wanted(session, setup, pod)
            self._check_grants(spec, setup)
            # Opened last, just for the start: nothing else in a pass holds them.
            arkitekt = pod.release.source in ARKITEKT_SOURCES
            opened = await pod_secrets(session, setup, self.settings, arkitekt=arkitekt)
            spec = replace(spec, env={**spec.env, **opened}) if opened else spec
            self._set(pod, PodStatus.STARTING)
            try:
                pod.container_id = await self.backend.start(spec)
            except ContainerExists as exc:
                if not spec.is_mine(exc.labels):
                    raise BackendError(
                        f"a container named {self.backend.object_name(spec)} exists and "
                        "is not this pod's"
                    ) from exc
                pod.container_id = exc.container_id
                record(
                    session, setup, EventKind.POD_ADOPTED, f"adopted {exc.container_id[:12]}", pod
                )
            state = await self.backend.poll(pod.container_id)
            await self._note_digest(session, setup, pod)
        except BackendUnavailable:
            raise
        except (BackendError, SecretsUnreadable) as exc:
            pod.failures += 1
            pod.next_attempt_at = self.clock() + self.backoff(pod.failures)
            self._set(pod, PodStatus.FAILED, str(exc))
            record(session, setup, EventKind.POD_FAILED, f"could not start: {exc}", pod)
            return pod.next_attempt_at
        if state is not None and state.status is PodStatus.RUNNING:
            self._set(pod, PodStatus.RUNNING)
            pod.address = state.address
            pod.started_at = state.started_at or self.clock()
            pod.exit_code = None
            record(session, setup, EventKind.POD_RUNNING, f"pod {pod.id} is running", pod)
            return None
        # Exited already, or still starting: the next pass (woken by its event) decides.
        self.wake()
        return None

    def _check_grants(self, spec: PodSpec, setup: Setup) -> None:
        """BackendError when the policy no longer allows what the Pod was granted: its
        container is not made with it (a new start plans under today's policy)."""
        policy = GrantPolicy.of(self.settings)
        for grant in spec.grants:
            why = policy.refusal(grant, setup.app.identifier)
            if why is not None:
                raise BackendError(
                    f"its grant {grant.name!r} is no longer allowed ({why}); stop and start "
                    "the setup to run it under today's policy"
                )

    async def _note_digest(self, session: AsyncSession, setup: Setup, pod: Pod) -> None:
        """What the Pod's new container runs, by digest; IMAGE_CHANGED when the same image
        reference ran another image for this Setup before (its tag was rebuilt)."""
        if pod.container_id is None:
            return
        try:
            digest = await self.backend.image_digest(pod.container_id)
        except (BackendError, BackendUnavailable) as exc:  # a fact to record, not a failure
            log.info("pod %s: its image digest is unknown: %s", pod.id, exc)
            return
        if digest is None or digest == pod.image_digest:
            return
        before = pod.image_digest
        if before is None:
            with session.no_autoflush:  # the Pod's own changes wait for the pass's commit
                before = await session.scalar(
                    select(Pod.image_digest)
                    .where(
                        Pod.setup_id == setup.id,
                        Pod.image == pod.image,
                        Pod.id != pod.id,
                        Pod.image_digest.is_not(None),
                    )
                    .order_by(Pod.id.desc())
                    .limit(1)
                )
        if before is not None and before != digest:
            record(
                session,
                setup,
                EventKind.IMAGE_CHANGED,
                f"{pod.image} is another image than before: {before} -> {digest} "
                "(the same reference was rebuilt)",
                pod,
            )
        pod.image_digest = digest

    async def _check_registry(self, pod: Pod) -> None:
        """BackendError unless the settings let ``pod``'s image come from its registry.

        Checked before every start, not only at index time: an admin may have taken a
        registry off the list, or its name may now point elsewhere."""
        registries = Registries(self.settings.allowed_registries)
        why = await asyncio.to_thread(registries.refusal, pod.image)
        if why is not None:
            raise BackendError(f"image {pod.image} refused: {why}")

    @staticmethod
    async def _still_wanted(session: AsyncSession, setup: Setup, pod: Pod) -> None:
        """PodGone unless ``pod`` still exists, active, of ``setup``, which wants it run."""
        # No autoflush: the pass has changed the Pod already, and writing that to a row
        # deleted meanwhile would fail before this check could say the Pod is gone.
        with session.no_autoflush:
            row = (
                await session.execute(
                    select(Pod.setup_id, Pod.retired, Setup.wants_running)
                    .join(Setup, Setup.id == Pod.setup_id)
                    .where(Pod.id == pod.id)
                )
            ).first()
        if row is None or row.setup_id != setup.id or row.retired or not row.wants_running:
            raise PodGone(pod.id)

    @property
    def lock(self) -> asyncio.Lock:
        """Held by a reconcile pass; the updater holds it to commit a verdict."""
        return self._lock

    async def launch(self, pod_id: int) -> None:
        """Pull and start ``pod_id`` now (the updater's candidate Pods). The pull is
        waited for outside the lock: passes go on meanwhile."""
        for _ in range(LAUNCH_TRIES):
            async with self._lock, self.sessions() as session:
                pod = await self._load(session, pod_id)
                if pod is None or pod.retired:
                    return
                setup_id, image = pod.setup_id, pod.image
                try:
                    await self._launch(session, pod.setup, pod)
                except PodGone:
                    await session.rollback()
                finally:
                    await self._commit(session, pod_id, setup_id)
                pulling = self.pulls.running(image)
            if pulling is None:
                return
            await asyncio.wait({pulling.task})  # never cancels the pull itself

    async def _ensure_image(self, pod: Pod) -> None:
        """Return when ``pod``'s image may be started; Pulling while it is pulled.

        A pull that ended is used once: its error fails this Pod; its success lets it
        start. The engine is asked whether it has the image only when no pull is under
        way and the policy is not ``always``.
        """
        ended = self.pulls.take(pod.image)
        if ended is not None:
            if ended.latest is not None:
                pod.pull = _progress(ended.latest)
            if ended.error is not None:
                raise ended.error
            return
        policy = self.settings.pull_policy
        pull = self.pulls.running(pod.image)
        if pull is None and policy != "always":
            if await self.backend.has_image(pod.image):
                return
            if policy == "never":
                raise BackendError(f"image {pod.image} is not present and PORT_PULL_POLICY=never")
        pull = pull or self.pulls.start(pod.image)
        if pod.status is not PodStatus.PULLING:
            self._set(pod, PodStatus.PULLING)
            pod.pull = {"layers": 0, "done": 0, "total": 0}
        if pull.latest is not None:
            pod.pull = _progress(pull.latest)
        raise Pulling(pod.image)

    async def _save_pull(self, image: str, progress: PullProgress) -> None:
        """Save a pull's progress on every active Pod that is pulling ``image``."""
        values = _progress(progress)
        async with self.sessions() as session, session.begin():
            setups = await session.scalars(
                update(Pod)
                .where(
                    Pod.image == image,
                    Pod.status == PodStatus.PULLING,
                    Pod.retired.is_(False),
                )
                .values(pull=values)
                .returning(Pod.setup_id)
                .execution_options(synchronize_session=False)
            )
            changed = set(setups)
        for setup_id in changed:
            self.notify(setup_id)

    def _set(self, pod: Pod, status: PodStatus, message: str | None = None) -> None:
        pod.status = status
        if status is not PodStatus.RUNNING:
            pod.address = None  # nothing to proxy to
        if message is not None or status in LIVE:
            pod.message = message

    async def _mark_engine_down(self, reason: str) -> None:
        """Active Pods become UNKNOWN with the reason; nothing is lost or retired."""
        if self._engine_down is None:
            log.warning("engine unreachable: %s", reason)
        self._engine_down = reason
        self._caps = None
        async with self.sessions() as session:
            pods = list(
                await session.scalars(
                    select(Pod)
                    .where(
                        Pod.retired.is_(False),
                        # FAILED keeps its exit code and backoff: it is not counted twice
                        Pod.status.not_in([PodStatus.UNKNOWN, PodStatus.FAILED]),
                    )
                    .options(selectinload(Pod.setup))
                )
            )
            for pod in pods:
                self._set(pod, PodStatus.UNKNOWN, f"engine unreachable: {reason}")
                record(
                    session, pod.setup, EventKind.ENGINE_DOWN, f"engine unreachable: {reason}", pod
                )
            await session.commit()
        for setup_id in {p.setup_id for p in pods}:
            self.notify(setup_id)

    async def remove_containers(self, container_ids: list[str]) -> None:
        """Stop and remove now; what fails is logged, and the next pass removes it (a
        container of no active Pod), so callers whose change is committed never fail."""
        for container_id in container_ids:
            try:
                await self.backend.stop(container_id, self.settings.stop_timeout_seconds)
            except (BackendUnavailable, BackendError) as exc:
                log.warning("could not remove %s now: %s", container_id[:12], exc)
