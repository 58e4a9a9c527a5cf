"""My apps: a signed-in user's Setups, each with its status, Pod, events and logs kept
live in the page, and the buttons that start, stop, restart, update and delete it.

Who sees what is ``port.deploy.setups``' rule, as for the API: a user their own
Setups, an admin everyone's (``/setups?everyone=1``); another user's Setup is "not
found". Actions go through ``Operations``, as the API's mutations do. The live part
is ``/setups/<id>/live``: the page's htmx asks for it every few seconds and swaps it
in; without JavaScript the page is a snapshot with a link to look again.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlencode, urlsplit

from litestar import Request, get, post
from litestar.datastructures import State
from litestar.exceptions import HTTPException
from litestar.params import FromPath, FromQuery
from litestar.response import Redirect, Template
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from port.apps.addresses import ENTER_PATH, AppOrigins, slug
from port.apps.entry import issue_code, may_enter
from port.apps.published import published_address, published_of
from port.apps.targets import address_of
from port.catalogue.models import Release
from port.catalogue.queries import newest_first
from port.deploy import setups as service
from port.deploy.backends.base import BackendUnavailable, PodStatus, newest_lines
from port.deploy.grants import Consent
from port.deploy.models import EventKind, Pod, Setup, SetupEvent
from port.deploy.selection import NoFittingFlavour
from port.deploy.updater import pending_updates
from port.errors import ClientError, NotFound
from port.principal import Principal
from port.web.grants import Ask, asks_of, consents_from
from port.web.served import Served, render, served_of
from port.web.visitor import Viewer, form_of, to_sign_in, viewer_of

EVENTS_SHOWN = 30
LOG_LINES = 200
LOG_BYTES = 64 * 1024
LIVE_SECONDS = 2  # how often an open page asks for the live part

# How a status reads, and its tone in the page.
TONES = {
    PodStatus.RUNNING: "good",
    PodStatus.FAILED: "bad",
    PodStatus.UNKNOWN: "bad",
    PodStatus.STOPPED: "quiet",
}
BAD_EVENTS = {
    EventKind.POD_FAILED,
    EventKind.ENGINE_DOWN,
    EventKind.UPDATE_ROLLED_BACK,
    EventKind.UPDATE_ABANDONED,
    EventKind.UPDATE_NEEDS_CONSENT,
}
GOOD_EVENTS = {EventKind.POD_RUNNING, EventKind.UPDATE_SUCCEEDED}


@dataclass(frozen=True, slots=True)
class SetupRow:
    id: int
    app: str
    app_name: str
    version: str
    status: str
    tone: str
    owner: str
    updated: datetime


@dataclass(frozen=True, slots=True)
class EventView:
    kind: str
    label: str
    message: str
    at: datetime
    tone: str


def _tone(status: PodStatus) -> str:
    return TONES.get(status, "busy")


def _row(setup: Setup) -> SetupRow:
    status = service.setup_status(setup.pods, setup.wants_running)
    return SetupRow(
        id=setup.id,
        app=setup.app.identifier,
        app_name=setup.app.name,
        version=setup.release.version,
        status=status.value,
        tone=_tone(status),
        owner=setup.owner.name,
        updated=setup.updated_at,
    )


async def _viewer(request: Request[Any, Any, Any], served: Served) -> Viewer:
    viewer = await viewer_of(request, served)
    if viewer is None:
        raise HTTPException(status_code=401, detail="Sign in to see your apps.")
    return viewer


@get("/setups", name="setups", include_in_schema=False)
async def setups_page(
    request: Request[Any, Any, Any], state: State, everyone: FromQuery[bool] = False
) -> Template | Redirect:
    served = served_of(state)
    viewer = await viewer_of(request, served)
    if viewer is None:
        return to_sign_in(request)
    everyone = everyone and viewer.is_admin
    query = service.visible(viewer.principal).options(
        selectinload(Setup.app),
        selectinload(Setup.release),
        selectinload(Setup.owner),
        selectinload(Setup.pods),
    )
    if not everyone:
        query = query.where(Setup.owner_id == (viewer.principal.user_id or -1))
    async with served.sessions() as session:
        rows = [
            _row(s) for s in await session.scalars(query.order_by(None).order_by(Setup.id.desc()))
        ]
    return render("setups.html", viewer, setups=rows, everyone=everyone)


async def _setup(session: AsyncSession, viewer: Viewer, setup_id: int) -> Setup:
    try:
        setup = await service.get_setup(session, viewer.principal, setup_id)
    except NotFound as exc:
        raise HTTPException(status_code=404, detail="You have no such app.") from exc
    await session.refresh(setup, ["release", "owner"])
    return setup


async def _logs(served: Served, pod: Pod | None) -> str | None:
    if pod is None or pod.container_id is None:
        return None
    try:
        text: str = await served.reconciler.backend.logs(pod.container_id, LOG_LINES)
    except BackendUnavailable:
        return None
    return newest_lines(text.encode(), LOG_BYTES).decode(errors="replace")


async def _live(served: Served, viewer: Viewer, setup_id: int) -> dict[str, Any]:
    """What the live part shows: status, the current Pod, events, logs, a pending update."""
    async with served.sessions() as session:
        setup = await _setup(session, viewer, setup_id)
        events = list(
            await session.scalars(
                select(SetupEvent)
                .where(SetupEvent.setup_id == setup.id)
                .order_by(SetupEvent.id.desc())
                .limit(EVENTS_SHOWN)
            )
        )
        pending = await pending_updates(session, [setup])
        others = list(
            await session.scalars(
                select(Release).where(
                    Release.app_id == setup.app_id,
                    Release.current.is_(True),
                    Release.withdrawn.is_(False),
                    Release.id != setup.release_id,
                )
            )
        )
        pods = service.active_pods(setup)
        pod = pods[-1] if pods else None
        if pod is not None:
            await session.refresh(pod, ["release"])
        address = await address_of(session, AppOrigins.of(served.settings), setup)
        published = (await published_of(session, [setup.id])).get(setup.id, [])
    status = service.setup_status(setup.pods, setup.wants_running)
    return {
        "setup": setup,
        "status": status.value,
        "tone": _tone(status),
        "pod": pod,
        "events": [
            EventView(
                kind=e.kind.value,
                label=e.kind.value.replace("_", " ").capitalize(),
                message=e.message,
                at=e.at,
                tone="bad" if e.kind in BAD_EVENTS else "good" if e.kind in GOOD_EVENTS else "",
            )
            for e in events
        ],
        "logs": await _logs(served, pod),
        "update_to": pending[0][1].version if pending else None,
        "versions": [r.version for r in newest_first(others)],
        "consent": _consent(setup),
        "live_seconds": LIVE_SECONDS,
        "address": address,
        "may_open": address is not None and _may_open(served, viewer, setup),
        "published": [
            (p.name, p.protocol, published_address(served.settings, p)) for p in published
        ],
    }


@dataclass(frozen=True, slots=True)
class ConsentView:
    """An update waiting for the owner's consent: to what, and what it asks."""

    version: str
    asks: list[Ask]


def _consent(setup: Setup) -> ConsentView | None:
    waiting = setup.consent_needed
    if not waiting or not waiting.get("asks"):
        return None
    best = next(iter(waiting["asks"].values()))  # the flavour the update would run
    return ConsentView(str(waiting["version"]), asks_of([best]))


def _may_open(served: Served, viewer: Viewer, setup: Setup) -> bool:
    user_id = viewer.principal.user_id
    return user_id is not None and may_enter(
        user_id, viewer.is_admin, setup.owner_id, served.settings
    )


@get("/setups/{setup_id:int}", name="setup", include_in_schema=False)
async def setup_page(
    request: Request[Any, Any, Any], state: State, setup_id: FromPath[int]
) -> Template | Redirect:
    served = served_of(state)
    viewer = await viewer_of(request, served)
    if viewer is None:
        return to_sign_in(request)
    return render("setup.html", viewer, **await _live(served, viewer, setup_id), error=None)


@get("/setups/{setup_id:int}/open", name="open", include_in_schema=False)
async def open_app(
    request: Request[Any, Any, Any],
    state: State,
    setup_id: FromPath[int],
    next: FromQuery[str | None] = None,
) -> Redirect:
    """Into the app's origin with a single-use code (``port.apps.entry``); to sign-in
    first when needed. ``next`` is where on the app's origin to land."""
    served = served_of(state)
    viewer = await viewer_of(request, served)
    if viewer is None:
        return to_sign_in(request)
    async with served.sessions() as session, session.begin():
        setup = await _setup(session, viewer, setup_id)
        if not _may_open(served, viewer, setup):
            raise HTTPException(status_code=403, detail="Only its owner opens an app.")
        origins = AppOrigins.of(served.settings)
        address = await address_of(session, origins, setup)
        if address is None:
            raise HTTPException(status_code=404, detail="This app serves no web page.")
        code = await issue_code(
            session,
            web_secret=viewer.secret,
            user_id=viewer.principal.user_id or 0,
            setup_id=setup.id,
        )
    if code is None:
        return to_sign_in(request)
    landing = next if next and next.startswith("/") else urlsplit(address).path
    entry = f"{origins.origin(slug(setup.app.identifier, setup.id))}{ENTER_PATH}"
    return Redirect(f"{entry}?{urlencode({'code': code, 'next': landing})}", status_code=303)


@get("/setups/{setup_id:int}/live", include_in_schema=False)
async def setup_live(
    request: Request[Any, Any, Any], state: State, setup_id: FromPath[int]
) -> Template:
    served = served_of(state)
    viewer = await _viewer(request, served)
    return render("_setup_live.html", viewer, **await _live(served, viewer, setup_id))


@get("/setups/{setup_id:int}/delete", include_in_schema=False)
async def confirm_delete(
    request: Request[Any, Any, Any], state: State, setup_id: FromPath[int]
) -> Template | Redirect:
    served = served_of(state)
    viewer = await viewer_of(request, served)
    if viewer is None:
        return to_sign_in(request)
    async with served.sessions() as session:
        setup = await _setup(session, viewer, setup_id)
    return render("setup_delete.html", viewer, setup=setup)


ACTIONS = ("start", "stop", "restart", "update", "grant", "delete")


@post("/setups/{setup_id:int}", include_in_schema=False)
async def act(
    request: Request[Any, Any, Any], state: State, setup_id: FromPath[int]
) -> Template | Redirect:
    """One button of a Setup's page (its ``action``); back to the page, which shows what
    follows."""
    served = served_of(state)
    viewer = await _viewer(request, served)
    fields = await form_of(request, served.settings, viewer.secret)
    action = fields.get("action", "")
    if action not in ACTIONS:
        raise HTTPException(status_code=400, detail="There is no such button.")
    operations = served.operations
    principal = viewer.principal
    try:
        if action == "start":
            await operations.start(principal, setup_id)
        elif action == "stop":
            await operations.stop(principal, setup_id)
        elif action == "restart":
            async with served.sessions() as session:
                pods = service.active_pods(await service.get_setup(session, principal, setup_id))
            if not pods:
                raise HTTPException(status_code=409, detail="It is not running: start it.")
            await operations.restart(principal, pods[-1].id)
        elif action == "update":
            await operations.roll_out(principal, setup_id, fields.get("version", ""))
        elif action == "grant":
            await _grant(served, principal, setup_id, fields)
        else:
            await operations.delete(principal, setup_id)
            return Redirect("/setups", status_code=303)
    except NoFittingFlavour as refused:
        return await _refused(served, viewer, setup_id, str(refused), 409)
    except NotFound as exc:
        raise HTTPException(status_code=404, detail="You have no such app.") from exc
    except ClientError as refused:
        return await _refused(served, viewer, setup_id, str(refused), 400)
    return Redirect(f"/setups/{setup_id}", status_code=303)


async def _grant(
    served: Served, principal: Principal, setup_id: int, fields: dict[str, str]
) -> None:
    """What the waiting update asks, as the form grants it, over what was granted."""
    async with served.sessions() as session:
        setup = await service.get_setup(session, principal, setup_id)
        release = await session.get(
            Release, setup.release_id, options=[selectinload(Release.flavours)]
        )
    waiting = _consent(setup)
    asks = waiting.asks if waiting else []
    # What the running release still asks keeps its consent; what neither it nor the
    # waiting update asks is dropped, so a stale consent cannot block this one.
    still = (
        {str(c.get("name")) for f in release.flavours for c in f.capabilities} if release else set()
    )
    still |= {a.name for a in asks}
    given = {c["name"]: Consent.from_json(c) for c in setup.grants or () if c["name"] in still}
    for consent in consents_from(fields, asks):
        given[consent.name] = consent
    await served.operations.grant(principal, setup_id, list(given.values()))


async def _refused(
    served: Served, viewer: Viewer, setup_id: int, error: str, code: int
) -> Template:
    return render("setup.html", viewer, code, **await _live(served, viewer, setup_id), error=error)
