"""What Port's pages load, shipped inside the package: nothing comes from a CDN, so the
pages (GraphiQL too) work on a lab network without internet.

``static/vendor/`` holds third-party files copied from npm packages at the versions
VENDORED.md lists, with their licences; ``make vendor`` fetches them again.
``static/`` holds Port's own scripts and styles, ``templates/`` its pages.
"""

from __future__ import annotations

import pathlib

from litestar import Router
from litestar.static_files import create_static_files_router

HERE = pathlib.Path(__file__).resolve().parent
STATIC_DIR = HERE / "static"
TEMPLATES_DIR = HERE / "templates"
STATIC_PATH = "/static"
# Scripts only from Port itself (no inline script, no eval); GraphiQL's React sets inline
# styles and its fonts are data: URLs. Nothing may frame Port's pages.
CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data:",
        "font-src 'self' data:",
        "connect-src 'self'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
        "form-action 'self'",
    )
)
PAGE_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}


def graphiql_html() -> str:
    """GraphiQL's page, on the assets under ``/static``."""
    return (TEMPLATES_DIR / "graphiql.html").read_text(encoding="utf-8")


def static_router() -> Router:
    """``/static/...``: the files of ``static/``, cached by browsers for a day."""
    return create_static_files_router(
        path=STATIC_PATH,
        directories=[STATIC_DIR],
        name="static",
        cache_control=None,
        include_in_schema=False,
    )
