"""The web server composed: database, event broker, reconciler, job worker and API.

``port serve`` migrates the database and runs ``create_app`` under uvicorn. On a
database with no user at all, the start creates an admin whose password and token are
handed to ``announce`` once (the CLI prints them; they are never logged).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress
from typing import Any, cast

from litestar import Litestar
from litestar.types import ASGIApp

from port import db
from port.accounts.jwt import JwtVerifier
from port.accounts.service import FirstAdmin, bootstrap_admin
from port.api.app import build_app
from port.api.cache import ResponseCache
from port.api.context import LIST_SIZES_SECONDS, ApiState
from port.api.deploy import setup_topic
from port.catalogue.scanning import ScanOutcome
from port.deploy.backends import load_backend
from port.deploy.backends.base import Backend
from port.deploy.instance import resolved
from port.deploy.reconciler import Reconciler
from port.events import Broker
from port.metrics import count_statements
from port.notify import Notifier
from port.proxy.gate import AppsGate
from port.proxy.publish import Publisher
from port.proxy.relay import Relay
from port.settings import Settings
from port.web.pages import pages_router
from port.web.served import template_config
from port.work.jobs import after_index_run, build_worker, reconcile_trigger

log = logging.getLogger(__name__)


async def _measure_lists(state: ApiState) -> None:
    """The cost model's list sizes, read again every LIST_SIZES_SECONDS."""
    while True:
        await asyncio.sleep(LIST_SIZES_SECONDS)
        try:
            await state.measure_lists()
        except Exception:  # the database is away: the sizes known stay, caps at most
            log.warning("could not read the catalogue's list sizes", exc_info=True)


def create_app(
    settings: Settings,
    announce: Callable[[FirstAdmin], None] | None = None,
    backend: Backend | None = None,
) -> Litestar:
    """The server for ``settings``; ``announce`` receives the first admin's secrets, once.

    ``backend`` defaults to the one ``settings.backend`` names. With ``reconcile_seconds``
    above zero the reconciler runs beside the server for its whole life, and with
    ``serve_worker`` a job worker (index runs, rollouts, notices) does too.
    """
    settings = resolved(settings)
    engine = db.create_engine(settings.sqlalchemy_url)
    count_statements(engine)
    sessions = db.sessionmaker(engine)
    broker = Broker()
    reconciler = Reconciler(
        sessions,
        settings,
        backend or load_backend(settings),
        notify=lambda setup_id: broker.publish(setup_topic(setup_id), None),
    )
    worker = build_worker(sessions, settings, reconciler)
    notifier = Notifier(sessions, settings)
    relay = Relay()

    async def after_index(outcome: ScanOutcome) -> None:
        await after_index_run(sessions, notifier, outcome, worker.wake)

    state = ApiState(
        settings=settings,
        engine=engine,
        sessions=sessions,
        verifier=JwtVerifier.from_settings(settings),
        broker=broker,
        cache=ResponseCache(ttl=settings.cache_seconds),
        reconciler=reconciler,
        wake_jobs=worker.wake,
        after_index=after_index,
    )

    @asynccontextmanager
    async def lifespan(_app: Litestar) -> AsyncIterator[None]:
        async with state.sessions() as session, session.begin():
            first = await bootstrap_admin(session)
        if first is not None and announce is not None:
            announce(first)
        await state.measure_lists()
        running = [asyncio.create_task(_measure_lists(state), name="list-sizes")]
        if settings.reconcile_seconds > 0:  # passes are jobs: whichever worker is free
            trigger = reconciler.run(reconcile_trigger(sessions, worker))
            running.append(asyncio.create_task(trigger, name="reconcile-trigger"))
        if settings.serve_worker:
            running.append(asyncio.create_task(worker.run(), name="worker"))
        publisher = Publisher(sessions, settings) if settings.publish_ports else None
        if publisher is not None:
            running.append(asyncio.create_task(publisher.run(), name="published-ports"))
        try:
            yield
        finally:
            for task in running:  # a job cut short here is resumed when its lease expires
                task.cancel()
                with suppress(asyncio.CancelledError):
                    await task
            if publisher is not None:
                await publisher.close()
            await reconciler.close()
            await relay.close()
            await engine.dispose()

    app = build_app(
        state, lifespan, pages=[pages_router(settings)], template_config=template_config()
    )
    # Litestar routes by path; app origins are told apart by Host, before any routing.
    # (The gate speaks plain ASGI dicts; Litestar's are TypedDicts of the same shape.)
    gate = AppsGate(cast(Any, app.asgi_handler), settings, sessions, relay)
    app.asgi_handler = cast(ASGIApp, gate)
    return app
