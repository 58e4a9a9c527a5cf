"""Update policies and rollouts against a fake engine, on SQLite and PostgreSQL: who
moves, the health gate, rollback that never touches the old Pod, resuming after a
crash. The same with real git, webhooks and Docker is in test_updates_e2e.py."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pytest
from sqlalchemy import select

from port.catalogue.models import App, Release
from port.deploy import setups, updater
from port.deploy.jobs import update_key
from port.deploy.models import EventKind, Pod, Setup, SetupEvent, UpdatePolicy
from port.deploy.reconciler import Reconciler
from port.deploy.selection import Capabilities
from port.deploy.updater import Updater, plan_updates, request_update
from port.errors import InvalidInput
from port.jobs.models import Job
from port.jobs.queue import enqueue
from port.principal import Principal
from tests.deployfakes import FakeBackend, add_app, add_release, add_user
from tests.harness import Catalogue


class Fleet:
    def __init__(self, catalogue: Catalogue, **settings: Any) -> None:
        self.catalogue = catalogue
        self.settings = catalogue.settings.model_copy(
            update={"instance": "t", "update_grace_seconds": 0, **settings}
        )
        self.backend = FakeBackend("t")
        self.backend.images.update({"img/1.0.0", "img/1.1.0", "img/1.0.1", "img/2.0.0"})
        self.reconciler = Reconciler(catalogue.sessions, self.settings, self.backend)
        self.updater = Updater(catalogue.sessions, self.settings, self.reconciler)
        self.alice = Principal(user_id=None, name="alice", is_admin=False, via="token")

    async def create(self, policy: UpdatePolicy, *, start: bool = True) -> int:
        caps = await self.reconciler.capabilities()
        async with self.catalogue.sessions() as session, session.begin():
            setup = await setups.create_setup(
                session,
                self.alice,
                setups.SetupRequest(app="sd", version="1.0.0", update_policy=policy),
                caps,
                self.settings,
            )
            if start:
                await setups.start_setup(session, setup, caps, self.settings)
            setup_id = setup.id
        await self.reconciler.reconcile()
        return setup_id

    async def release(self, version: str, image: str | None = None) -> None:
        async with self.catalogue.sessions() as session, session.begin():
            app_id = await session.scalar(select(Release.app_id).limit(1))
            assert app_id is not None
            add_release(session, app_id, version, (("cpu", image or f"img/{version}", []),))

    async def candidate(self, setup_id: int, version: str) -> Pod:
        """A candidate Pod of ``version``, planned and started, as a rollout leaves it."""
        async with self.catalogue.sessions() as session, session.begin():
            setup = await setups.get_setup(session, self.alice, setup_id)
            release = await session.scalar(select(Release).where(Release.version == version))
            assert release is not None
            await session.refresh(release, ["flavours"])
            caps = await self.reconciler.capabilities()
            pod = setups.plan_pod(setup, release, caps, self.settings)
            pod.candidate = True
            session.add(pod)
        await self.reconciler.launch(pod.id)
        return pod

    async def plan(self) -> list[tuple[int, str]]:
        async with self.catalogue.sessions() as session, session.begin():
            return [(p.setup_id, p.target) for p in await plan_updates(session)]

    async def pods(self, setup_id: int) -> list[Pod]:
        async with self.catalogue.sessions() as session:
            return list(
                await session.scalars(select(Pod).where(Pod.setup_id == setup_id).order_by(Pod.id))
            )

    async def setup(self, setup_id: int) -> Setup:
        async with self.catalogue.sessions() as session:
            setup = await session.get(Setup, setup_id)
            assert setup is not None
            await session.refresh(setup, ["release"])
            return setup

    async def events(self, setup_id: int) -> list[SetupEvent]:
        async with self.catalogue.sessions() as session:
            return list(
                await session.scalars(
                    select(SetupEvent)
                    .where(SetupEvent.setup_id == setup_id)
                    .order_by(SetupEvent.id)
                )
            )


@pytest.fixture
async def fleet(catalogue: Catalogue) -> Fleet:
    fleet = Fleet(catalogue)
    async with catalogue.sessions() as session, session.begin():
        await add_app(session, identifier="sd", flavours=(("cpu", "img/{v}", []),))
        alice = await add_user(session, "alice")
    fleet.alice = Principal(user_id=alice.id, name="alice", is_admin=False, via="token")
    return fleet


async def test_each_setup_moves_as_its_policy_allows(fleet: Fleet) -> None:
    minor = await fleet.create(UpdatePolicy.MINOR)
    patch = await fleet.create(UpdatePolicy.PATCH)
    pinned = await fleet.create(UpdatePolicy.NONE)
    await fleet.release("1.1.0")
    assert await fleet.plan() == [(minor, "1.1.0")]
    await fleet.release("1.0.1")
    assert sorted(await fleet.plan()) == [(minor, "1.1.0"), (patch, "1.0.1")]
    async with fleet.catalogue.sessions() as session:
        queued = list(await session.scalars(select(Job).where(Job.kind == "update")))
    assert sorted(j.key or "" for j in queued) == [f"setup:{minor}", f"setup:{patch}"]  # coalesced
    kinds = [e.kind for e in await fleet.events(minor)]
    assert kinds.count(EventKind.UPDATE_AVAILABLE) == 1
    assert "UPDATE_AVAILABLE" not in [e.kind for e in await fleet.events(pinned)]


async def test_a_setup_deleted_while_updates_are_planned_costs_no_other_update(
    fleet: Fleet, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The soak's race: an index run plans updates while a user deletes a Setup of the
    same app (after the Setups were read, before the plan's events are written)."""
    kept = await fleet.create(UpdatePolicy.MINOR)
    gone = await fleet.create(UpdatePolicy.MINOR)
    await fleet.release("1.1.0")
    real = updater.pending_updates

    async def deleted_meanwhile(session: Any, found: list[Setup]) -> Any:
        if any(s.id == gone for s in found):
            async with fleet.catalogue.sessions() as other, other.begin():
                await other.delete(await other.get(Setup, gone))
        return await real(session, found)

    monkeypatch.setattr(updater, "pending_updates", deleted_meanwhile)
    async with fleet.catalogue.sessions() as session:
        repo_id = await session.scalar(select(App.repo_id))
    assert repo_id is not None
    planned = await updater.plan_repo_updates(fleet.catalogue.sessions, repo_id)
    assert [(p.setup_id, p.target) for p in planned] == [(kept, "1.1.0")]
    assert EventKind.UPDATE_AVAILABLE in [e.kind for e in await fleet.events(kept)]
    assert await fleet.events(gone) == []


async def test_a_healthy_update_replaces_the_old_pod(fleet: Fleet) -> None:
    setup_id = await fleet.create(UpdatePolicy.MINOR)
    [old] = await fleet.pods(setup_id)
    await fleet.release("1.1.0")
    outcome = await fleet.updater.run(setup_id, "1.1.0")
    assert outcome.startswith("1.0.0 -> 1.1.0")
    assert (await fleet.setup(setup_id)).release.version == "1.1.0"
    retired, new = await fleet.pods(setup_id)
    assert retired.id == old.id
    assert (retired.retired, retired.status) == (True, "STOPPED")
    assert (new.retired, new.candidate, new.status, new.image) == (
        False,
        False,
        "RUNNING",
        "img/1.1.0",
    )
    assert [c.spec.image for c in fleet.backend.running()] == ["img/1.1.0"]
    assert fleet.backend.starts[-1].labels["port.release"] == "1.1.0"
    kinds = [e.kind for e in await fleet.events(setup_id)]
    assert kinds[-3:] == ["UPDATE_STARTED", "POD_RUNNING", "UPDATE_SUCCEEDED"]
    await fleet.reconciler.reconcile()  # and the reconciler agrees: nothing to change
    assert len(fleet.backend.running()) == 1


async def test_a_setup_deleted_during_its_rollout_ends_it_quietly(
    fleet: Fleet, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Repro (found by the soak test): deleting a Setup while its rollout planned the
    candidate made the update job fail with an `IntegrityError` traceback, and retry."""
    setup_id = await fleet.create(UpdatePolicy.MINOR)
    await fleet.release("1.1.0")
    facts = fleet.reconciler.capabilities

    async def deleted_meanwhile() -> Capabilities:  # as its owner, from another request
        async with fleet.catalogue.sessions() as session, session.begin():
            await session.delete(await session.get(Setup, setup_id))
        return await facts()

    monkeypatch.setattr(fleet.reconciler, "capabilities", deleted_meanwhile)
    assert await fleet.updater.run(setup_id, "1.1.0") == "setup deleted meanwhile"
    assert [r for r in caplog.records if r.levelname == "ERROR"] == []
    assert await fleet.pods(setup_id) == []


async def test_a_failing_release_is_rolled_back_and_the_old_pod_never_stopped(
    fleet: Fleet,
) -> None:
    setup_id = await fleet.create(UpdatePolicy.MINOR)
    [old] = await fleet.pods(setup_id)
    await fleet.release("1.1.0")
    fleet.backend.exit_at_once["img/1.1.0"] = 3
    outcome = await fleet.updater.run(setup_id, "1.1.0")
    assert "1.1.0 rolled back, 1.0.0 keeps running" in outcome
    assert old.container_id not in fleet.backend.stops
    assert [c.id for c in fleet.backend.running()] == [old.container_id]
    setup = await fleet.setup(setup_id)
    assert (setup.release.version, setup.skipped_versions) == ("1.0.0", ["1.1.0"])
    [event] = [e for e in await fleet.events(setup_id) if e.kind == "UPDATE_ROLLED_BACK"]
    assert "exited with code 3" in event.message
    assert "hello" in event.message  # the end of the new pod's output
    assert await fleet.plan() == []  # not retried ...
    await fleet.release("1.2.0", image="img/1.0.0")
    assert await fleet.plan() == [(setup_id, "1.2.0")]  # ... until a newer one appears


@pytest.mark.parametrize(("ready", "moved"), [(True, True), (False, False)])
async def test_an_image_healthcheck_decides(catalogue: Catalogue, ready: bool, moved: bool) -> None:
    fleet = Fleet(catalogue, update_grace_seconds=3600)  # only the healthcheck can pass it
    async with catalogue.sessions() as session, session.begin():
        await add_app(session, identifier="sd", flavours=(("cpu", "img/{v}", []),))
        alice = await add_user(session, "alice")
    fleet.alice = Principal(user_id=alice.id, name="alice", is_admin=False, via="token")
    setup_id = await fleet.create(UpdatePolicy.MAJOR)
    await fleet.release("2.0.0")
    fleet.backend.ready["img/2.0.0"] = ready
    outcome = await fleet.updater.run(setup_id, "2.0.0")
    assert ((await fleet.setup(setup_id)).release.version == "2.0.0") is moved
    if not moved:
        assert "healthcheck failed" in outcome


async def test_a_rollout_interrupted_by_a_crash_resumes_without_a_second_pod(
    fleet: Fleet,
) -> None:
    setup_id = await fleet.create(UpdatePolicy.MINOR)
    await fleet.release("1.1.0")
    # The dead worker got as far as starting the candidate, and its job is still there
    # (running, its lease out), as a dead worker leaves it.
    async with fleet.catalogue.sessions() as session, session.begin():
        payload = {"setup_id": setup_id, "version": "1.1.0"}
        await enqueue(session, "update", payload, key=update_key(setup_id))
    await fleet.candidate(setup_id, "1.1.0")
    starts = len(fleet.backend.starts)
    await fleet.reconciler.reconcile()  # the reconciler leaves the candidate alone
    await fleet.updater.run(setup_id, "1.1.0")
    assert len(fleet.backend.starts) == starts  # resumed: no second candidate
    assert [c.spec.image for c in fleet.backend.running()] == ["img/1.1.0"]
    assert (await fleet.setup(setup_id)).release.version == "1.1.0"


async def test_a_stopped_setup_only_moves_its_release(fleet: Fleet) -> None:
    setup_id = await fleet.create(UpdatePolicy.MINOR, start=False)
    await fleet.release("1.1.0")
    assert await fleet.updater.run(setup_id, "1.1.0") == "moved a stopped setup"
    assert (await fleet.setup(setup_id)).release.version == "1.1.0"
    assert fleet.backend.starts == []


async def test_manual_updates_may_go_back_but_not_to_withdrawn_releases(fleet: Fleet) -> None:
    await fleet.release("1.1.0")
    caps = await fleet.reconciler.capabilities()
    async with fleet.catalogue.sessions() as session, session.begin():
        setup = await setups.create_setup(
            session,
            fleet.alice,
            setups.SetupRequest(app="sd", version="1.1.0"),
            caps,
            fleet.settings,
        )
        setup_id = setup.id
    async with fleet.catalogue.sessions() as session, session.begin():
        setup = await setups.get_setup(session, fleet.alice, setup_id)
        await request_update(session, setup, "1.0.0")
        with pytest.raises(InvalidInput, match=r"runs 1\.1\.0 already"):
            await request_update(session, setup, "1.1.0")
        old = await session.scalar(select(Release).where(Release.version == "1.0.0"))
        assert old is not None
        old.withdrawn = True
        with pytest.raises(InvalidInput, match="withdrawn"):
            await request_update(session, setup, "1.0.0")
    assert (
        await fleet.updater.run(setup_id, "1.0.0", manual=True)
        == "release 1.0.0 is gone or withdrawn"
    )


async def test_a_candidate_without_a_rollout_job_is_abandoned(fleet: Fleet) -> None:
    """A rollout whose job gave up for good leaves no candidate running forever."""
    setup_id = await fleet.create(UpdatePolicy.MINOR)
    await fleet.release("1.1.0")
    await fleet.candidate(setup_id, "1.1.0")
    assert len(fleet.backend.running()) == 2
    await fleet.reconciler.reconcile()  # no update job queued or running: abandoned
    assert [c.spec.image for c in fleet.backend.running()] == ["img/1.0.0"]
    assert "UPDATE_ABANDONED" in [e.kind for e in await fleet.events(setup_id)]


async def test_a_queued_update_the_policy_no_longer_allows_does_nothing(fleet: Fleet) -> None:
    setup_id = await fleet.create(UpdatePolicy.MINOR)
    await fleet.release("1.1.0")
    assert await fleet.plan() == [(setup_id, "1.1.0")]
    async with fleet.catalogue.sessions() as session, session.begin():
        setup = await setups.get_setup(session, fleet.alice, setup_id)
        setups.set_policy(session, setup, UpdatePolicy.NONE, None, False)
    outcome = await fleet.updater.run(setup_id, "1.1.0")
    assert outcome == "1.1.0 is no longer allowed by the setup's policy"
    assert (await fleet.setup(setup_id)).release.version == "1.0.0"
    assert len(fleet.backend.starts) == 1


async def test_a_manual_request_replaces_a_queued_automatic_update(fleet: Fleet) -> None:
    setup_id = await fleet.create(UpdatePolicy.MINOR)
    await fleet.release("1.1.0")
    await fleet.release("1.0.1")
    await fleet.plan()  # queues 1.1.0
    async with fleet.catalogue.sessions() as session, session.begin():
        await request_update(
            session, await setups.get_setup(session, fleet.alice, setup_id), "1.0.1"
        )
    async with fleet.catalogue.sessions() as session:
        [job] = list(await session.scalars(select(Job).where(Job.kind == "update")))
    assert job.payload == {"setup_id": setup_id, "version": "1.0.1", "manual": True}


async def test_update_results_are_announced_to_the_setups_owner(fleet: Fleet) -> None:
    told: list[tuple[str, dict[str, Any], list[int]]] = []

    async def announce(kind: str, data: dict[str, Any], users: Iterable[int]) -> None:
        told.append((kind, data, list(users)))

    updater = Updater(fleet.catalogue.sessions, fleet.settings, fleet.reconciler, announce)
    healthy, broken = (
        await fleet.create(UpdatePolicy.MINOR),
        await fleet.create(UpdatePolicy.MINOR),
    )
    await fleet.release("1.1.0")
    await updater.run(healthy, "1.1.0")
    fleet.backend.exit_at_once["img/1.1.0"] = 3
    await updater.run(broken, "1.1.0")
    assert [(kind, data["setup"], users) for kind, data, users in told] == [
        ("update.succeeded", healthy, [fleet.alice.user_id]),
        ("update.rolled_back", broken, [fleet.alice.user_id]),
    ]
