"""Setup and Pod queries, mutations and subscriptions. Thin: the work is in port.deploy.

Mutations change intent in the database and wake the reconciler; they answer at once
(a Pod is PENDING) and the reconciler does the slow part. Watch it with ``podEvents``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from contextlib import suppress

import strawberry
from sqlalchemy import select
from sqlalchemy.orm import selectinload
from strawberry import relay

from port.api import permissions
from port.api.context import Info
from port.api.deploy_types import (
    PendingUpdateType,
    PodType,
    SetupEventType,
    SetupType,
    UpdatePolicyEnum,
    shown,
)
from port.api.pagination import row_id
from port.api.scalars import JSON
from port.deploy import setups as service
from port.deploy.models import Pod, Setup, SetupEvent, UpdatePolicy
from port.deploy.updater import pending_updates, plan_updates, request_update
from port.errors import InvalidInput, NotFound

# How often a subscription looks for events written by another process (a CLI, a
# second server); this process's own changes arrive at once through the broker.
EVENT_POLL_SECONDS = 2.0


def setup_topic(setup_id: int) -> str:
    return f"setup:{setup_id}"


@strawberry.input(description="What to run. Only `app` is required.")
class CreateSetupInput:
    app: str = strawberry.field(description="The app's identifier.")
    version: str | None = strawberry.field(
        default=None, description="A release; default: the newest current one."
    )
    flavour: str | None = strawberry.field(default=None, description="Pin a flavour.")
    update_policy: UpdatePolicyEnum = UpdatePolicy.NONE  # type: ignore[valid-type]
    version_range: str | None = strawberry.field(
        default=None, description="With RANGE: e.g. '>=1.2.0 <2.0.0'."
    )
    include_prereleases: bool = False
    env: JSON | None = strawberry.field(
        default=None, description='Environment variables, {"NAME": "value"}; PORT_* reserved.'
    )
    start: bool = strawberry.field(default=False, description="Start it at once.")


def _env(value: object) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise InvalidInput('env must be an object of strings, {"NAME": "value"}')
    return dict(value)


async def _load_setup(info: Info, gid: relay.GlobalID) -> SetupType:
    principal = permissions.caller(info)
    async with info.context.state.sessions() as session:
        setup = await session.scalar(shown(principal).where(Setup.id == row_id(gid, "Setup")))
    if setup is None:
        raise NotFound(f"no setup {gid}")
    return SetupType.from_row(setup)


@strawberry.type
class DeployQuery:
    @strawberry.field(description="Your Setups (an admin: everyone's), oldest first.")
    async def setups(self, info: Info) -> list[SetupType]:
        principal = permissions.caller(info)
        async with info.context.state.sessions() as session:
            return [SetupType.from_row(r) for r in await session.scalars(shown(principal))]

    @strawberry.field(description="One of your Setups, or NOT_FOUND.")
    async def setup(self, info: Info, id: relay.GlobalID) -> SetupType:
        return await _load_setup(info, id)

    @strawberry.field(description="Active Pods of your Setups (`all`: retired ones too).")
    async def pods(self, info: Info, all: bool = False) -> list[PodType]:
        principal = permissions.caller(info)
        setups = service.visible(principal).with_only_columns(Setup.id)
        query = select(Pod).where(Pod.setup_id.in_(setups)).order_by(Pod.id)
        if not all:
            query = query.where(Pod.retired.is_(False))
        async with info.context.state.sessions() as session:
            return [PodType.from_row(p) for p in await session.scalars(query)]

    @strawberry.field(
        description="Dry run: which of your Setups their policy would update now, and to what."
    )
    async def pending_updates(self, info: Info) -> list[PendingUpdateType]:
        principal = permissions.caller(info)
        async with info.context.state.sessions() as session:
            setups = list(
                await session.scalars(shown(principal).options(selectinload(Setup.release)))
            )
            found = await pending_updates(session, setups)
            return [
                PendingUpdateType(
                    setup=SetupType.from_row(setup),
                    current=setup.release.version,
                    target=target.version,
                )
                for setup, target in found
            ]

    @strawberry.field(description="One Pod of your Setups, or NOT_FOUND.")
    async def pod(self, info: Info, id: relay.GlobalID) -> PodType:
        principal = permissions.caller(info)
        async with info.context.state.sessions() as session:
            pod = await service.get_pod(session, principal, row_id(id, "Pod"))
            return PodType.from_row(pod)


@strawberry.type
class DeployMutation:
    @strawberry.mutation(
        description="Create a Setup (stopped unless `start`). NO_FITTING_FLAVOUR when no "
        "flavour of the release can run on this backend, with the reason for each."
    )
    async def create_setup(self, info: Info, input: CreateSetupInput) -> SetupType:
        principal = permissions.caller(info)
        state = info.context.state
        request = service.SetupRequest(
            app=input.app,
            version=input.version,
            flavour=input.flavour,
            update_policy=UpdatePolicy(input.update_policy),
            version_range=input.version_range,
            include_prereleases=input.include_prereleases,
            env=_env(input.env),
        )
        caps = await state.reconciler.capabilities()
        async with state.sessions() as session, session.begin():
            setup = await service.create_setup(session, principal, request, caps)
            if input.start:
                await service.start_setup(session, setup, caps, state.settings)
            setup_id = setup.id
        state.reconciler.wake()
        return await _load_setup(info, relay.GlobalID("Setup", str(setup_id)))

    @strawberry.mutation(description="Run it: a PENDING Pod now, RUNNING when started.")
    async def start_setup(self, info: Info, id: relay.GlobalID) -> SetupType:
        principal = permissions.caller(info)
        state = info.context.state
        caps = await state.reconciler.capabilities()
        async with state.sessions() as session, session.begin():
            setup = await service.get_setup(session, principal, row_id(id, "Setup"))
            await service.start_setup(session, setup, caps, state.settings)
        state.reconciler.wake()
        return await _load_setup(info, id)

    @strawberry.mutation(description="Stop it: its Pods are stopped, removed and retired.")
    async def stop_setup(self, info: Info, id: relay.GlobalID) -> SetupType:
        principal = permissions.caller(info)
        state = info.context.state
        async with state.sessions() as session, session.begin():
            setup = await service.get_setup(session, principal, row_id(id, "Setup"))
            service.stop_setup(session, setup)
        state.reconciler.wake()
        return await _load_setup(info, id)

    @strawberry.mutation(description="A fresh container for this Pod (same release, flavour).")
    async def restart_pod(self, info: Info, id: relay.GlobalID) -> PodType:
        principal = permissions.caller(info)
        state = info.context.state
        async with state.sessions() as session, session.begin():
            pod = await service.get_pod(session, principal, row_id(id, "Pod"))
            service.restart_pod(session, pod)
            row = PodType.from_row(pod)
        state.reconciler.wake()
        return row

    @strawberry.mutation(
        description="Move a Setup to `version` now (health-gated, rolled back on failure), "
        "whatever its policy; the rollout runs as a job: watch podEvents."
    )
    async def update_setup(self, info: Info, id: relay.GlobalID, version: str) -> SetupType:
        principal = permissions.caller(info)
        state = info.context.state
        async with state.sessions() as session, session.begin():
            setup = await service.get_setup(session, principal, row_id(id, "Setup"))
            await request_update(session, setup, version)
        state.wake_jobs()
        return await _load_setup(info, id)

    @strawberry.mutation(description="Change which releases a Setup follows.")
    async def set_update_policy(
        self,
        info: Info,
        id: relay.GlobalID,
        update_policy: UpdatePolicyEnum,  # type: ignore[valid-type]
        version_range: str | None = None,
        include_prereleases: bool = False,
    ) -> SetupType:
        principal = permissions.caller(info)
        state = info.context.state
        async with state.sessions() as session, session.begin():
            setup = await service.get_setup(session, principal, row_id(id, "Setup"))
            service.set_policy(
                session,
                setup,
                UpdatePolicy(update_policy),
                version_range,
                include_prereleases,
            )
            await plan_updates(session, setup_ids=[setup.id])
        state.wake_jobs()
        return await _load_setup(info, id)

    @strawberry.mutation(description="Delete a Setup: its containers are stopped and removed.")
    async def delete_setup(self, info: Info, id: relay.GlobalID) -> relay.GlobalID:
        principal = permissions.caller(info)
        state = info.context.state
        async with state.sessions() as session, session.begin():
            setup = await service.get_setup(session, principal, row_id(id, "Setup"))
            containers = [p.container_id for p in service.active_pods(setup) if p.container_id]
            await session.delete(setup)
        await state.reconciler.remove_containers(containers)
        state.reconciler.wake()  # whatever could not be removed now goes on the next pass
        return id


@strawberry.type
class DeploySubscription:
    @strawberry.subscription(
        description="Events of a Setup and its Pods as they happen (after the last 10)."
    )
    async def pod_events(
        self, info: Info, setup_id: relay.GlobalID
    ) -> AsyncGenerator[SetupEventType, None]:
        await info.context.authenticate_connection()
        await _load_setup(info, setup_id)  # NOT_FOUND unless the caller may see it
        pk = row_id(setup_id, "Setup")
        state = info.context.state
        last = 0
        async with state.sessions() as session:
            newest = list(
                await session.scalars(
                    select(SetupEvent.id)
                    .where(SetupEvent.setup_id == pk)
                    .order_by(SetupEvent.id.desc())
                    .limit(10)
                )
            )
            last = (min(newest) - 1) if newest else 0
        shown = service.visible(permissions.caller(info)).where(Setup.id == pk)
        with state.stream(anonymous=False), state.broker.listen(setup_topic(pk)) as wakeups:
            while True:
                await info.context.recheck()
                async with state.sessions() as session:
                    # Looked at on every poll: a deleted Setup (or one no longer the
                    # caller's) ends the stream before another event is read.
                    if await session.scalar(shown.with_only_columns(Setup.id)) is None:
                        return
                    rows = list(
                        await session.scalars(
                            select(SetupEvent)
                            .where(SetupEvent.setup_id == pk, SetupEvent.id > last)
                            .order_by(SetupEvent.id)
                        )
                    )
                for row in rows:
                    last = row.id
                    yield SetupEventType.from_row(row)
                with suppress(TimeoutError):
                    await asyncio.wait_for(wakeups.get(), EVENT_POLL_SECONDS)

    @strawberry.subscription(description="A Pod's output lines as it writes them.")
    async def pod_logs(
        self, info: Info, pod_id: relay.GlobalID, tail: int = 100
    ) -> AsyncGenerator[str, None]:
        await info.context.authenticate_connection()
        principal = permissions.caller(info)
        async with info.context.state.sessions() as session:
            pod = await service.get_pod(session, principal, row_id(pod_id, "Pod"))
        if pod.container_id is None:
            return
        backend = info.context.state.reconciler.backend
        with info.context.state.stream(anonymous=False):
            async for line in backend.follow_logs(pod.container_id, max(0, min(tail, 10_000))):
                await info.context.recheck()
                yield line
