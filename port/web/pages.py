"""The storefront's pages: the catalogue (search, categories, pages of apps) and each
app's page. They read the catalogue through ``port.catalogue.queries``, as the API does,
and answer with templates from ``port/assets/templates``.

Who may browse: anyone while ``PORT_PUBLIC_CATALOGUE`` is on (the default), as for the
API; otherwise signed-in users only, and a visitor is sent to the sign-in page.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any, cast

from litestar import Request, Router, get
from litestar.datastructures import State
from litestar.di import Provide
from litestar.exceptions import HTTPException, NotFoundException
from litestar.params import FromPath, FromQuery
from litestar.response import Redirect, Response, Template
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from indexer.urls import redact
from port.accounts.throttle import SignInThrottle
from port.catalogue.models import App, AppLogo, Release
from port.catalogue.queries import (
    latest_release,
    listed,
    logo_digests,
    newest_first,
    search_apps,
)
from port.deploy.selection import Capabilities
from port.errors import ClientError, InvalidInput, PortError
from port.settings import Settings
from port.web.account import (
    account_page,
    change_password,
    create_token,
    revoke_token,
    set_redeem_token,
)
from port.web.admin import (
    add_repo,
    add_user,
    change_repo,
    change_user,
    confirm_repo_delete,
    delete_repo,
    repo_page,
    repos_page,
    scan_repo,
    users_page,
)
from port.web.badges import FlavourView, flavour_view
from port.web.install import install, install_form
from port.web.served import Served, html, render, rendered, served_of
from port.web.setups import act, confirm_delete, open_app, setup_live, setup_page, setups_page
from port.web.shared import Shared
from port.web.signin import sign_in, sign_in_page, sign_out
from port.web.visitor import Viewer, to_sign_in, viewer_of

log = logging.getLogger(__name__)

PAGE_SIZE = 24  # apps per catalogue page


async def _may_browse(request: Request[Any, Any, Any], served: Served) -> Viewer | None:
    """The viewer of a catalogue page; NotSignedIn while the store is private to them."""
    viewer = await viewer_of(request, served)
    if viewer is None and not served.settings.public_catalogue:
        raise NotSignedIn
    return viewer


class NotSignedIn(ClientError):
    """A page that needs a signed-in visitor (answered with the sign-in page)."""


async def _capabilities(served: Served) -> Capabilities | None:
    """This Port's machine, or None when the engine cannot be asked now."""
    try:
        caps: Capabilities = await served.reconciler.capabilities()
    except PortError as exc:
        log.info("capabilities unknown for the pages: %s", exc)
        return None
    return caps


@dataclass(frozen=True, slots=True)
class AppCard:
    identifier: str
    name: str
    description: str
    categories: list[str]
    version: str | None
    flavours: list[FlavourView]
    logo: str | None  # the URL Port serves the app's logo at (versioned), if it has one


def _card(app: App, caps: Capabilities | None, logo: str | None) -> AppCard:
    newest = latest_release(app.releases)  # what an install runs
    flavours = [flavour_view(f, caps) for f in newest.flavours] if newest is not None else []
    return AppCard(
        identifier=app.identifier,
        name=app.name,
        description=app.description,
        categories=list(app.categories),
        version=newest.version if newest is not None else None,
        flavours=flavours,
        logo=f"/logos/{app.identifier}?v={logo[:16]}" if logo else None,
    )


def _page_key(request: Request[Any, Any, Any], viewer: Viewer | None) -> tuple[object, ...]:
    """Where a finished page is kept: per viewer (its header holds their name and form
    token) and per address."""
    return ("page", viewer.secret if viewer else None, request.url.path, request.url.query)


@get("/", name="catalogue", include_in_schema=False)
async def catalogue(
    request: Request[Any, Any, Any],
    state: State,
    shared: Shared,
    q: FromQuery[str | None] = None,
    category: FromQuery[str | None] = None,
    page: FromQuery[int] = 1,
) -> Template | Response[bytes]:
    """Every app, a page at a time; ``q`` searches, ``category`` filters. The cards are
    the same for every viewer: shared (``port.web.shared``)."""
    served = served_of(state)
    viewer = await _may_browse(request, served)
    page_key = _page_key(request, viewer)
    kept_page = shared.get(page_key)
    if kept_page is not None:
        return html(cast(bytes, kept_page))
    search = (q or "").strip() or None
    chosen = (category or "").strip() or None
    number = max(page, 1)
    key = ("catalogue", search, chosen, number)
    kept = shared.get(key)
    if kept is None:
        try:
            async with served.sessions() as session:
                total, rows = await search_apps(
                    session,
                    search=search,
                    category=chosen,
                    offset=(number - 1) * PAGE_SIZE,
                    limit=PAGE_SIZE,
                    with_newest=True,
                )
                logos = await logo_digests(session, [app.id for app in rows])
        except InvalidInput as exc:
            return render("catalogue.html", viewer, 400, error=str(exc), **_empty(search, chosen))
        caps = await _capabilities(served)
        kept = (total, [_card(app, caps, logos.get(app.id)) for app in rows])
        shared.put(key, kept)
    total, cards = cast(tuple[int, list[AppCard]], kept)
    pages = max(1, math.ceil(total / PAGE_SIZE))
    body = rendered(
        request,
        "catalogue.html",
        viewer,
        apps=cards,
        total=total,
        q=search or "",
        category=chosen or "",
        page=min(number, pages),
        pages=pages,
        error=None,
    )
    shared.put(page_key, body)
    return html(body)


def _empty(search: str | None, category: str | None) -> dict[str, Any]:
    return {
        "apps": [],
        "total": 0,
        "q": search or "",
        "category": category or "",
        "page": 1,
        "pages": 1,
    }


@dataclass(frozen=True, slots=True)
class ReleaseView:
    version: str
    current: bool
    withdrawn: bool
    channel: str | None
    source: str
    git_ref: str
    created: str
    flavours: list[FlavourView]


@get("/apps/{identifier:str}", name="app", include_in_schema=False)
async def app_page(
    request: Request[Any, Any, Any], state: State, shared: Shared, identifier: FromPath[str]
) -> Response[bytes]:
    """One app: what it is, its releases newest first, their flavours, what it needs
    (the same for every viewer: shared)."""
    served = served_of(state)
    viewer = await _may_browse(request, served)
    page_key = _page_key(request, viewer)
    kept_page = shared.get(page_key)
    if kept_page is not None:
        return html(cast(bytes, kept_page))
    key = ("app", identifier)
    context = shared.get(key)
    if context is None:
        context = await _app_context(served, identifier)
        shared.put(key, context)
    body = rendered(request, "app.html", viewer, **cast(dict[str, Any], context))
    shared.put(page_key, body)
    return html(body)


async def _app_context(served: Served, identifier: str) -> dict[str, Any]:
    async with served.sessions() as session:
        app = await session.scalar(
            select(App)
            .where(App.identifier == identifier, listed())
            .options(
                selectinload(App.repo),
                selectinload(App.releases).selectinload(Release.flavours),
            )
        )
        if app is None:
            raise NotFoundException(detail=f"There is no app {identifier!r} in this store.")
        logo = (await logo_digests(session, [app.id])).get(app.id)
    caps = await _capabilities(served)
    releases = [
        ReleaseView(
            version=r.version,
            current=r.current,
            withdrawn=r.withdrawn,
            channel=r.channel,
            source=r.source,
            git_ref=r.git_ref,
            created=r.created_at.date().isoformat(),
            flavours=[flavour_view(f, caps) for f in r.flavours],
        )
        for r in newest_first(app.releases)
        if r.channel is None or (r.current and not r.withdrawn)  # a channel's: its build
    ]
    return {
        "app": _card(app, caps, logo),
        "homepage": app.homepage,
        "license": app.license,
        "author": app.author,
        "repo": redact(app.repo.url),
        "requirements": list(app.requirements),
        "releases": releases,
        "machine_known": caps is not None,
    }


@get("/logos/{identifier:str}", name="logo", include_in_schema=False)
async def logo(
    request: Request[Any, Any, Any], state: State, identifier: FromPath[str]
) -> Response[bytes]:
    """An app's logo, as its repository had it: an image type only, never run by a
    browser even when opened alone (``sandbox``), cached for good under its digest."""
    served = served_of(state)
    await _may_browse(request, served)
    async with served.sessions() as session:
        found = (
            await session.execute(
                select(AppLogo.content_type, AppLogo.data, AppLogo.digest)
                .join(App, App.id == AppLogo.app_id)
                .where(App.identifier == identifier)
            )
        ).first()
    if found is None:
        raise NotFoundException(detail=f"{identifier!r} has no logo here.")
    versioned = request.query_params.get("v") == found.digest[:16]
    return Response(
        found.data,
        media_type=found.content_type,
        headers={
            "Content-Security-Policy": "default-src 'none'; sandbox",
            "X-Content-Type-Options": "nosniff",
            # A private store's logos are for the signed-in: no shared cache keeps them.
            "Cache-Control": (
                f"{'public' if served.settings.public_catalogue else 'private'}, "
                "max-age=31536000, immutable"
                if versioned
                else "no-cache"
            ),
        },
    )


def error_page(request: Request[Any, Any, Any], exc: HTTPException) -> Template:
    """A page for the errors of pages (the API keeps its JSON errors)."""
    return render("error.html", None, exc.status_code, status=exc.status_code, message=exc.detail)


def sign_in_first(request: Request[Any, Any, Any], _exc: NotSignedIn) -> Redirect:
    return to_sign_in(request)


def pages_router(settings: Settings) -> Router:
    """Every page, with error pages instead of JSON errors."""
    throttle = SignInThrottle(free=settings.sign_in_free_failures)
    shared = Shared(ttl=settings.cache_seconds)
    return Router(
        path="/",
        route_handlers=[
            catalogue,
            app_page,
            sign_in_page,
            sign_in,
            sign_out,
            account_page,
            change_password,
            create_token,
            revoke_token,
            set_redeem_token,
            install_form,
            install,
            setups_page,
            setup_page,
            setup_live,
            open_app,
            confirm_delete,
            act,
            repos_page,
            add_repo,
            repo_page,
            change_repo,
            scan_repo,
            confirm_repo_delete,
            delete_repo,
            users_page,
            add_user,
            change_user,
            logo,
        ],
        dependencies={
            "throttle": Provide(lambda: throttle, sync_to_thread=False),
            "shared": Provide(lambda: shared, sync_to_thread=False),
        },
        exception_handlers={HTTPException: error_page, NotSignedIn: sign_in_first},
    )
