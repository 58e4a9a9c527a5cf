"""Setup and Pod queries, mutations and subscriptions. Thin: the work is in port.deploy.

Mutations change intent in the database and wake the reconciler; they answer at once
(a Pod is PENDING) and the reconciler does the slow part. Watch it with
``setupEvents``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from contextlib import suppress
from typing import Annotated, Self

import strawberry
from sqlalchemy import select
from sqlalchemy.orm import selectinload
from strawberry import relay
from strawberry.field_extensions import InputMutationExtension

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
from port.deploy.grants import Consent
from port.deploy.models import Pod, Setup, SetupEvent, UpdatePolicy
from port.deploy.operations import Operations
from port.deploy.secrets import has_redeem_token
from port.deploy.selection import ConsentNeeded, NoFittingFlavour
from port.deploy.updater import pending_updates
from port.errors import InvalidInput, NotFound

# How often a subscription looks for events written by another process (a CLI, a
# second server); this process's own changes arrive at once through the broker.
EVENT_POLL_SECONDS = 2.0


def setup_topic(setup_id: int) -> str:
    return f"setup:{setup_id}"


@strawberry.type(name="FlavourRejection", description="Why one flavour cannot run here.")
class FlavourRejection:
    flavour: str
    reasons: list[str]


@strawberry.type(
    name="NoFittingFlavour",
    description="No flavour of the release can run on this backend; nothing was created "
    "or started. Pick another release or flavour, or ask an admin for the hardware.",
)
class NoFittingFlavourType:
    message: str
    rejected: list[FlavourRejection]
    code: str = strawberry.field(
        description="NO_FITTING_FLAVOUR, or CONSENT_NEEDED: flavours fit once you grant "
        "what they ask (`asks`)."
    )
    asks: JSON = strawberry.field(
        description="With CONSENT_NEEDED, per flavour that would fit (best first), the "
        "capabilities still to grant: pass `grants` naming them. Else {}."
    )

    @classmethod
    def of(cls, error: NoFittingFlavour) -> Self:
        rejected = [FlavourRejection(flavour=k, reasons=list(v)) for k, v in error.reasons.items()]
        asks = error.asks if isinstance(error, ConsentNeeded) else {}
        return cls(message=str(error), rejected=rejected, code=error.code, asks=JSON(asks))


@strawberry.input(description="Your consent to one capability an app asks for, by its name.")
class GrantInput:
    name: str = strawberry.field(description="The capability's name, as the flavour says.")
    host: str | None = strawberry.field(
        default=None,
        description="The host side: a folder (required) or a device (default: the "
        "device the app names); nothing for the other kinds.",
    )

    def consent(self) -> Consent:
        return Consent(self.name, self.host)


@strawberry.type
class CreateSetupPayload:
    setup: SetupType | None = strawberry.field(description="Null when no flavour fits.")
    no_fitting_flavour: NoFittingFlavourType | None = None


@strawberry.type
class StartSetupPayload:
    setup: SetupType | None = strawberry.field(description="Null when no flavour fits.")
    no_fitting_flavour: NoFittingFlavourType | None = None


@strawberry.type
class StopSetupPayload:
    setup: SetupType


@strawberry.type
class RestartPodPayload:
    pod: PodType


@strawberry.type
class RollOutSetupPayload:
    setup: SetupType


@strawberry.type
class UpdateSetupPayload:
    setup: SetupType


@strawberry.type
class GrantSetupPayload:
    setup: SetupType


@strawberry.type
class SetSetupSecretsPayload:
    setup: SetupType


@strawberry.type
class SetArkitektRedeemTokenPayload:
    stored: bool = strawberry.field(description="Whether a token is stored now.")


@strawberry.type
class DeleteSetupPayload:
    deleted_id: relay.GlobalID


def _env(value: object, what: str = "env") -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise InvalidInput(f'{what} must be an object of strings, {{"NAME": "value"}}', field=what)
    return dict(value)


def _changes(value: object) -> dict[str, str | None]:
    if not isinstance(value, dict) or not all(
        v is None or isinstance(v, str) for v in value.values()
    ):
        raise InvalidInput(
            'secrets must be an object of strings or nulls, {"NAME": "value", "OLD": null}',
            field="secrets",
        )
    return dict(value)


async def _load_setup(info: Info, setup_id: int) -> SetupType | None:
    principal = permissions.caller(info)
    async with info.context.state.sessions() as session:
        setup = await session.scalar(shown(principal).where(Setup.id == setup_id))
    return SetupType.from_row(setup) if setup is not None else None


async def _setup(info: Info, setup_id: int) -> SetupType:
    """The Setup after a mutation of the caller's (they may see it: they just changed it)."""
    setup = await _load_setup(info, setup_id)
    if setup is None:
        raise NotFound(f"setup {setup_id} is gone")
    return setup


def _operations(info: Info) -> Operations:
    return info.context.state.operations


def _setup_pk(gid: relay.GlobalID) -> int:
    return row_id(gid, "Setup")


@strawberry.type
class DeployQuery:
    @strawberry.field(description="Your Setups (an admin: everyone's), oldest first.")
    async def setups(self, info: Info) -> list[SetupType]:
        principal = permissions.caller(info)
        async with info.context.state.sessions() as session:
            return [SetupType.from_row(r) for r in await session.scalars(shown(principal))]

    @strawberry.field(description="One of your Setups; null if there is none you may see.")
    async def setup(self, info: Info, id: relay.GlobalID) -> SetupType | None:
        return await _load_setup(info, _setup_pk(id))

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

    @strawberry.field(
        description="Whether you stored an Arkitekt redeem token (never the token itself)."
    )
    async def arkitekt_redeem_token_stored(self, info: Info) -> bool:
        principal = permissions.caller(info)
        if principal.user_id is None:
            return False
        async with info.context.state.sessions() as session:
            return await has_redeem_token(session, principal.user_id)

    @strawberry.field(description="One Pod of your Setups; null if there is none you may see.")
    async def pod(self, info: Info, id: relay.GlobalID) -> PodType | None:
        principal = permissions.caller(info)
        async with info.context.state.sessions() as session:
            try:
                pod = await service.get_pod(session, principal, row_id(id, "Pod"))
            except NotFound:
                return None
            return PodType.from_row(pod)


@strawberry.type
class DeployMutation:
    @strawberry.mutation(
        description="Create a Setup (stopped unless `start`). Only `app` is required. When "
        "no flavour of the release can run on this backend, nothing is created and "
        "`noFittingFlavour` says why, per flavour.",
        extensions=[InputMutationExtension()],
    )
    async def create_setup(
        self,
        info: Info,
        app: Annotated[str, strawberry.argument(description="The app's identifier.")],
        version: Annotated[
            str | None, strawberry.argument(description="A release; default: the newest.")
        ] = None,
        channel: Annotated[
            str | None,
            strawberry.argument(
                description="Follow a channel instead (its repository must): run the build "
                "it points at, and each one it moves to (no updatePolicy applies)."
            ),
        ] = None,
        flavour: Annotated[str | None, strawberry.argument(description="Pin a flavour.")] = None,
        update_policy: UpdatePolicyEnum = UpdatePolicy.NONE,  # type: ignore[valid-type]
        version_range: Annotated[
            str | None, strawberry.argument(description="With RANGE: e.g. '>=1.2.0 <2.0.0'.")
        ] = None,
        include_prereleases: bool = False,
        env: Annotated[
            JSON | None,
            strawberry.argument(
                description='Environment variables, {"NAME": "value"}; PORT_* reserved.'
            ),
        ] = None,
        start: Annotated[bool, strawberry.argument(description="Start it at once.")] = False,
        secrets: Annotated[
            JSON | None,
            strawberry.argument(
                description='Secret variables, {"NAME": "value"}: sealed at rest, given '
                "to its Pods, never shown again (Setup.secretNames lists the names)."
            ),
        ] = None,
        grants: Annotated[
            list[GrantInput] | None,
            strawberry.argument(
                description="Your consent to each capability it asks for that you grant "
                "(required ones must be, or `noFittingFlavour.asks` says what to grant)."
            ),
        ] = None,
    ) -> CreateSetupPayload:
        request = service.SetupRequest(
            app=app,
            version=version,
            channel=channel,
            flavour=flavour,
            update_policy=UpdatePolicy(update_policy),
            version_range=version_range,
            include_prereleases=include_prereleases,
            env=_env(env),
            secrets=_env(secrets, "secrets"),
            grants=tuple(g.consent() for g in grants or ()),
        )
        try:
            setup_id = await _operations(info).create(
                permissions.caller(info), request, start=start
            )
        except NoFittingFlavour as error:
            return CreateSetupPayload(setup=None, no_fitting_flavour=NoFittingFlavourType.of(error))
        return CreateSetupPayload(setup=await _setup(info, setup_id))

    @strawberry.mutation(
        description="Run it: a PENDING Pod now, RUNNING when started. When no flavour of "
        "its release fits this backend, it stays stopped and `noFittingFlavour` says why.",
        extensions=[InputMutationExtension()],
    )
    async def start_setup(self, info: Info, id: relay.GlobalID) -> StartSetupPayload:
        try:
            await _operations(info).start(permissions.caller(info), _setup_pk(id))
        except NoFittingFlavour as error:
            return StartSetupPayload(setup=None, no_fitting_flavour=NoFittingFlavourType.of(error))
        return StartSetupPayload(setup=await _setup(info, _setup_pk(id)))

    @strawberry.mutation(
        description="Stop it: its Pods are stopped, removed and retired.",
        extensions=[InputMutationExtension()],
    )
    async def stop_setup(self, info: Info, id: relay.GlobalID) -> StopSetupPayload:
        await _operations(info).stop(permissions.caller(info), _setup_pk(id))
        return StopSetupPayload(setup=await _setup(info, _setup_pk(id)))

    @strawberry.mutation(
        description="A fresh container for this Pod (same release, flavour).",
        extensions=[InputMutationExtension()],
    )
    async def restart_pod(self, info: Info, id: relay.GlobalID) -> RestartPodPayload:
        principal = permissions.caller(info)
        pk = row_id(id, "Pod")
        await _operations(info).restart(principal, pk)
        async with info.context.state.sessions() as session:
            return RestartPodPayload(
                pod=PodType.from_row(await service.get_pod(session, principal, pk))
            )

    @strawberry.mutation(
        description="Roll a Setup out to `version` now (health-gated, rolled back on "
        "failure), whatever its policy; the rollout runs as a job: watch setupEvents.",
        extensions=[InputMutationExtension()],
    )
    async def roll_out_setup(
        self, info: Info, id: relay.GlobalID, version: str
    ) -> RollOutSetupPayload:
        await _operations(info).roll_out(permissions.caller(info), _setup_pk(id), version)
        return RollOutSetupPayload(setup=await _setup(info, _setup_pk(id)))

    @strawberry.mutation(
        description="Change a Setup: which releases it follows.",
        extensions=[InputMutationExtension()],
    )
    async def update_setup(
        self,
        info: Info,
        id: relay.GlobalID,
        update_policy: UpdatePolicyEnum,  # type: ignore[valid-type]
        version_range: str | None = None,
        include_prereleases: bool = False,
    ) -> UpdateSetupPayload:
        await _operations(info).follow(
            permissions.caller(info),
            _setup_pk(id),
            UpdatePolicy(update_policy),
            version_range,
            include_prereleases,
        )
        return UpdateSetupPayload(setup=await _setup(info, _setup_pk(id)))

    @strawberry.mutation(
        description="Replace a Setup's grants (omitted ones are withdrawn). A waiting "
        "update (`consentNeeded`) proceeds once they cover what it asks; Pods planned "
        "from now on get them, a running Pod keeps what it started with.",
        extensions=[InputMutationExtension()],
    )
    async def grant_setup(
        self, info: Info, id: relay.GlobalID, grants: list[GrantInput]
    ) -> GrantSetupPayload:
        await _operations(info).grant(
            permissions.caller(info), _setup_pk(id), [g.consent() for g in grants]
        )
        return GrantSetupPayload(setup=await _setup(info, _setup_pk(id)))

    @strawberry.mutation(
        description='Set secret variables of a Setup ({"NAME": "value"}) or remove them '
        '({"NAME": null}). Write-only: sealed at rest, never shown; Pods started from now '
        "on get them (restartPod for a running one).",
        extensions=[InputMutationExtension()],
    )
    async def set_setup_secrets(
        self, info: Info, id: relay.GlobalID, secrets: JSON
    ) -> SetSetupSecretsPayload:
        await _operations(info).set_secrets(
            permissions.caller(info), _setup_pk(id), _changes(secrets)
        )
        return SetSetupSecretsPayload(setup=await _setup(info, _setup_pk(id)))

    @strawberry.mutation(
        description="Store your Arkitekt redeem token (null forgets it): the Pods of your "
        "Arkitekt apps get it as FAKTS_REDEEM_TOKEN, unless a Setup has its own. "
        "Write-only, sealed at rest.",
        extensions=[InputMutationExtension()],
    )
    async def set_arkitekt_redeem_token(
        self, info: Info, token: str | None
    ) -> SetArkitektRedeemTokenPayload:
        await _operations(info).set_redeem_token(permissions.caller(info), token)
        return SetArkitektRedeemTokenPayload(stored=token is not None)

    @strawberry.mutation(
        description="Delete a Setup: its containers are stopped and removed.",
        extensions=[InputMutationExtension()],
    )
    async def delete_setup(self, info: Info, id: relay.GlobalID) -> DeleteSetupPayload:
        await _operations(info).delete(permissions.caller(info), _setup_pk(id))
        return DeleteSetupPayload(deleted_id=id)


@strawberry.type
class DeploySubscription:
    @strawberry.subscription(
        description="Events of a Setup and its Pods as they happen (after the last 10)."
    )
    async def setup_events(
        self, info: Info, setup_id: relay.GlobalID
    ) -> AsyncGenerator[SetupEventType, None]:
        await info.context.authenticate_connection()
        pk = _setup_pk(setup_id)
        if await _load_setup(info, pk) is None:
            raise NotFound(f"no setup {setup_id}")
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
        caller = permissions.caller(info)
        with state.stream(caller), state.broker.listen(setup_topic(pk)) as wakeups:
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
        with info.context.state.stream(principal):
            async for line in backend.follow_logs(pod.container_id, max(0, min(tail, 10_000))):
                await info.context.recheck()
                yield line
