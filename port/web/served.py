"""What every page shares: the server's state it reads, and how a page is answered."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from litestar import MediaType, Request, Response
from litestar.datastructures import Cookie, State
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.response import Template
from litestar.template import TemplateConfig
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from port.assets import PAGE_HEADERS, TEMPLATES_DIR
from port.deploy.operations import Operations
from port.settings import Settings


class Bumped(Protocol):
    def bump(self) -> None:
        """The catalogue changed here: forget every kept answer."""


class Served(Protocol):
    """What the pages need of the server's state (``port.api.context.ApiState``)."""

    settings: Settings
    sessions: async_sessionmaker[AsyncSession]
    wake_jobs: Callable[[], None]

    @property
    def reconciler(self) -> Any: ...

    @property
    def operations(self) -> Operations: ...

    @property
    def cache(self) -> Bumped: ...


def template_config() -> TemplateConfig[JinjaTemplateEngine]:
    environment = Environment(
        loader=FileSystemLoader(TEMPLATES_DIR), autoescape=True, undefined=StrictUndefined
    )
    return TemplateConfig(engine=JinjaTemplateEngine.from_environment(environment))


def served_of(state: State) -> Served:
    served: Served = state.api
    return served


PAGE_CACHE_CONTROL = "private, no-cache"


def rendered(request: Request[Any, Any, Any], template: str, viewer: Any, **context: Any) -> bytes:
    """The page ``template`` for ``viewer`` as bytes, to keep (``html`` sends them)."""
    engine = request.app.template_engine
    if engine is None:  # pragma: no cover - the server always has the pages' engine
        raise RuntimeError("no template engine")
    page: str = engine.get_template(template).render(viewer=viewer, **context)
    return page.encode()


def html(body: bytes, code: int = 200) -> Response[bytes]:
    """A rendered page with Port's headers, as ``render`` sends them."""
    return Response(
        body,
        media_type=MediaType.HTML,
        status_code=code,
        headers={**PAGE_HEADERS, "Cache-Control": PAGE_CACHE_CONTROL},
    )


def render(
    template: str,
    viewer: Any,
    code: int = 200,
    cookies: list[Cookie] | None = None,
    **context: Any,
) -> Template:
    """The page ``template`` for ``viewer`` (a ``Viewer`` or None), with Port's headers.

    Pages may show what only their viewer may see: no shared cache keeps them.
    """
    return Template(
        template_name=template,
        context={"viewer": viewer, **context},
        headers={**PAGE_HEADERS, "Cache-Control": PAGE_CACHE_CONTROL},
        status_code=code,
        cookies=cookies or [],
    )
