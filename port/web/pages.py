"""The storefront's pages: the catalogue (search, categories, pages of apps) and each
app's page. They read the catalogue through ``port.catalogue.queries``, as the API does,
and answer with templates from ``port/assets/templates``.

Who may browse: anyone while ``PORT_PUBLIC_CATALOGUE`` is on (the default), as for the
API; otherwise a page answers 401 and says so.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any, Protocol

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from litestar import Request, Router, get
from litestar.datastructures import State
from litestar.exceptions import HTTPException, NotFoundException
from litestar.params import FromPath, FromQuery
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.response import Template
from litestar.template import TemplateConfig
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import selectinload

from indexer.urls import redact
from port.assets import PAGE_HEADERS, TEMPLATES_DIR
from port.catalogue.models import App, Release
from port.catalogue.queries import latest_release, newest_first, search_apps
from port.deploy.selection import Capabilities
from port.errors import InvalidInput, PortError
from port.settings import Settings
from port.web.badges import FlavourView, flavour_view

log = logging.getLogger(__name__)

PAGE_SIZE = 24  # apps per catalogue page


class Served(Protocol):
    """What the pages need of the server's state (``port.api.context.ApiState``)."""

    settings: Settings
    sessions: async_sessionmaker[AsyncSession]

    @property
    def reconciler(self) -> Any: ...


def template_config() -> TemplateConfig[JinjaTemplateEngine]:
    environment = Environment(
        loader=FileSystemLoader(TEMPLATES_DIR), autoescape=True, undefined=StrictUndefined
    )
    return TemplateConfig(engine=JinjaTemplateEngine.from_environment(environment))


def _served(state: State) -> Served:
    served: Served = state.api
    return served


def _page(name: str, code: int = 200, **context: Any) -> Template:
    return Template(template_name=name, context=context, headers=PAGE_HEADERS, status_code=code)


def _may_browse(served: Served) -> None:
    if not served.settings.public_catalogue:
        raise HTTPException(
            status_code=401, detail="This store is private: browse it through the API with a token."
        )


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


def _card(app: App, caps: Capabilities | None) -> AppCard:
    newest = latest_release(app.releases)  # what an install runs
    flavours = (
        [flavour_view(f.name, f.image, f.selectors, caps) for f in newest.flavours]
        if newest is not None
        else []
    )
    return AppCard(
        identifier=app.identifier,
        name=app.name,
        description=app.description,
        categories=list(app.categories),
        version=newest.version if newest is not None else None,
        flavours=flavours,
    )


@get("/", name="catalogue", include_in_schema=False)
async def catalogue(
    state: State,
    q: FromQuery[str | None] = None,
    category: FromQuery[str | None] = None,
    page: FromQuery[int] = 1,
) -> Template:
    """Every app, a page at a time; ``q`` searches, ``category`` filters."""
    served = _served(state)
    _may_browse(served)
    search = (q or "").strip() or None
    chosen = (category or "").strip() or None
    number = max(page, 1)
    try:
        async with served.sessions() as session:
            total, rows = await search_apps(
                session,
                search=search,
                category=chosen,
                offset=(number - 1) * PAGE_SIZE,
                limit=PAGE_SIZE,
                with_releases=True,
            )
    except InvalidInput as exc:
        return _page("catalogue.html", 400, error=str(exc), **_empty(search, chosen))
    caps = await _capabilities(served)
    pages = max(1, math.ceil(total / PAGE_SIZE))
    return _page(
        "catalogue.html",
        apps=[_card(app, caps) for app in rows],
        total=total,
        q=search or "",
        category=chosen or "",
        page=min(number, pages),
        pages=pages,
        error=None,
    )


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
    source: str
    git_ref: str
    created: str
    flavours: list[FlavourView]


@get("/apps/{identifier:str}", name="app", include_in_schema=False)
async def app_page(state: State, identifier: FromPath[str]) -> Template:
    """One app: what it is, its releases newest first, their flavours, what it needs."""
    served = _served(state)
    _may_browse(served)
    async with served.sessions() as session:
        app = await session.scalar(
            select(App)
            .where(App.identifier == identifier)
            .options(
                selectinload(App.repo),
                selectinload(App.releases).selectinload(Release.flavours),
            )
        )
    if app is None:
        raise NotFoundException(detail=f"There is no app {identifier!r} in this store.")
    caps = await _capabilities(served)
    releases = [
        ReleaseView(
            version=r.version,
            current=r.current,
            withdrawn=r.withdrawn,
            source=r.source,
            git_ref=r.git_ref,
            created=r.created_at.date().isoformat(),
            flavours=[flavour_view(f.name, f.image, f.selectors, caps) for f in r.flavours],
        )
        for r in newest_first(app.releases)
    ]
    return _page(
        "app.html",
        app=_card(app, caps),
        homepage=app.homepage,
        license=app.license,
        author=app.author,
        repo=redact(app.repo.url),
        requirements=list(app.requirements),
        releases=releases,
        machine_known=caps is not None,
    )


def error_page(request: Request[Any, Any, Any], exc: HTTPException) -> Template:
    """A page for the errors of pages (the API keeps its JSON errors)."""
    return _page("error.html", exc.status_code, status=exc.status_code, message=exc.detail)


def pages_router() -> Router:
    """Every page, with error pages instead of JSON errors."""
    return Router(
        path="/",
        route_handlers=[catalogue, app_page],
        exception_handlers={HTTPException: error_page},
    )
