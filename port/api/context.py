"""What every resolver sees: the app's state, the caller, and this request's loaders."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from litestar.datastructures import Headers, State
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from strawberry.litestar import BaseContext
from strawberry.types import Info as StrawberryInfo

from port.accounts.bearer import principal_for
from port.accounts.jwt import JwtVerifier
from port.accounts.known import KnownSessions
from port.api.cache import ResponseCache
from port.api.cost import LIST_SIZES
from port.api.loaders import Loaders
from port.catalogue.models import Flavour
from port.catalogue.scanning import ScanOutcome
from port.deploy.backends.base import newest_lines
from port.deploy.operations import Operations
from port.deploy.reconciler import Reconciler
from port.errors import Busy, Unauthenticated
from port.events import Broker
from port.notify import Notifier
from port.principal import Principal
from port.settings import Settings

RECHECK_SECONDS = 2.0  # how stale a stream's view of its credential may be
LIST_SIZES_SECONDS = 30.0  # how stale the cost model's view of list sizes may be
FLAVOURS = ("Release", "flavours")


async def _nothing_after(_outcome: ScanOutcome) -> None:
    """No follow-ups: an ApiState composed without a worker."""


@dataclass
class ApiState:
    """Built once at start-up, shared by all requests."""

    settings: Settings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    verifier: JwtVerifier | None
    broker: Broker
    cache: ResponseCache
    reconciler: Reconciler
    # Wakes this process's job worker (a new job was queued); a no-op without one.
    wake_jobs: Callable[[], None] = lambda: None
    # What follows an index run that scanRepo ran here: notices and rollouts (port/work).
    after_index: Callable[[ScanOutcome], Awaitable[None]] = _nothing_after
    # The most each plain list holds now (the cost model's sizes): the caps, until
    # ``measure_lists`` reads the catalogue's largest (`port serve`: at start and every
    # LIST_SIZES_SECONDS, so no request pays for it).
    list_sizes: dict[tuple[str, str], int] = field(default_factory=lambda: dict(LIST_SIZES))
    open_streams: int = 0
    anonymous_streams: int = 0
    user_streams: dict[str, int] = field(default_factory=dict)  # by principal name
    # Credentials proved a moment ago, by Authorization value (port/api/app.py).
    callers: KnownSessions = field(default_factory=KnownSessions)
    # Catalogue queries executing now, at most PORT_API_CATALOGUE_READS (port/api/app.py).
    catalogue_reads: asyncio.Semaphore = field(init=False)

    def __post_init__(self) -> None:
        self.catalogue_reads = asyncio.Semaphore(self.settings.api_catalogue_reads)

    @property
    def operations(self) -> Operations:
        """What people do to Setups (the API's mutations and the pages both call it)."""
        notifier = Notifier(self.sessions, self.settings)
        return Operations(
            self.sessions, self.settings, self.reconciler, self.wake_jobs, notifier.announce
        )

    async def measure_lists(self) -> None:
        """Read the largest release's flavour count: a page of releases costs what it
        can really return, not 64 flavours each. (An index run is seen within
        LIST_SIZES_SECONDS; the cap of 64 bounds what it adds meanwhile.)"""
        per_release = (
            select(func.count().label("n")).select_from(Flavour).group_by(Flavour.release_id)
        ).subquery()
        async with self.sessions() as session:
            largest = await session.scalar(select(func.max(per_release.c.n))) or 1
        self.list_sizes[FLAVOURS] = max(1, min(int(largest), LIST_SIZES[FLAVOURS]))

    @contextmanager
    def stream(self, caller: Principal | None) -> Iterator[None]:
        """Hold one of the ``PORT_MAX_SUBSCRIPTIONS`` places of open subscriptions: each
        polls the database, so their number is what bounds that load. Anonymous callers
        get half the places at most and one user ``PORT_MAX_SUBSCRIPTIONS_PER_USER``, so
        neither can lock other users out of their Pods' streams."""
        limit = self.settings.max_subscriptions
        anonymous = caller is None
        who = None if caller is None else caller.name
        if self.open_streams >= limit or (anonymous and self.anonymous_streams >= limit // 2):
            raise Busy("this server has as many open subscriptions as it keeps; try again later")
        if (
            who is not None
            and self.user_streams.get(who, 0) >= self.settings.max_subscriptions_per_user
        ):
            raise Busy(
                "you have as many open subscriptions as one user may "
                f"({self.settings.max_subscriptions_per_user}); close one first"
            )
        self.open_streams += 1
        self.anonymous_streams += anonymous
        if who is not None:
            self.user_streams[who] = self.user_streams.get(who, 0) + 1
        try:
            yield
        finally:
            self.open_streams -= 1
            self.anonymous_streams -= anonymous
            if who is not None:
                self.user_streams[who] -= 1
                if not self.user_streams[who]:
                    del self.user_streams[who]


class Context(BaseContext, kw_only=True):
    state: ApiState
    principal: Principal | None
    loaders: Loaders
    # graphql-transport-ws `connection_init` payload, set by Strawberry on websockets:
    # browsers cannot send headers there, so `{"Authorization": "Bearer ..."}` goes here.
    connection_params: object = None
    # The Authorization header that made ``principal``, to check it again in streams.
    credential: str | None = None
    checked_at: float = 0.0  # time.monotonic() of the last recheck
    # Bytes of container output this request may still return (PORT_LOGS_MAX_KB in all,
    # however many `logs` fields and aliases it asks for); None until the first.
    log_bytes_left: int | None = None

    def within_log_budget(self, text: str) -> str:
        """The newest lines of ``text`` that fit what is left of this request's log
        budget, which they use up."""
        if self.log_bytes_left is None:
            self.log_bytes_left = self.state.settings.logs_max_kb << 10
        data = newest_lines(text.encode(), self.log_bytes_left)
        self.log_bytes_left -= len(data)
        return data.decode(errors="replace")

    async def authenticate_connection(self) -> None:
        """Adopt the credential of a websocket's `connection_init`, if the handshake had none."""
        params = self.connection_params
        if self.principal is not None or not isinstance(params, dict):
            return
        header = params.get("Authorization") or params.get("authorization")
        if isinstance(header, str):
            async with self.state.sessions() as session, session.begin():
                self.principal = await principal_for(session, header, self.state.verifier)
            self.credential = header

    async def recheck(self) -> None:
        """Unauthenticated once the credential of a long-lived subscription is revoked or
        expired, or its rights changed (an admin no more): streams call this as they go,
        and end; a client subscribes again with what it may now see. Looks at most
        every ``RECHECK_SECONDS``, so a busy stream costs no query per event."""
        now = time.monotonic()
        if self.credential is None or now - self.checked_at < RECHECK_SECONDS:
            return
        self.checked_at = now
        async with self.state.sessions() as session, session.begin():
            current = await principal_for(session, self.credential, self.state.verifier)
        if current != self.principal:
            raise Unauthenticated("the credential's rights changed; subscribe again")


Info = StrawberryInfo[Context, None]


async def context_for(api: ApiState, authorization: str | None) -> Context:
    """The context of one request or websocket; a bad credential raises Unauthenticated."""
    principal = None
    if authorization is not None:  # anonymous reads cost no session
        async with api.sessions() as session, session.begin():
            principal = await principal_for(session, authorization, api.verifier)
    return Context(
        state=api,
        principal=principal,
        loaders=Loaders.create(api.sessions),
        credential=authorization if principal is not None else None,
    )


async def get_context(state: State, headers: Headers) -> Context:
    """Litestar dependency (HTTP and websocket alike): ``state`` and ``headers`` are both."""
    return await context_for(state.api, headers.get("authorization"))
