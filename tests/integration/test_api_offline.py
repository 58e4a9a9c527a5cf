"""GraphiQL works without internet: the page and everything it loads come from Port."""

from __future__ import annotations

import re

from tests.harness import Api

ASSET = re.compile(r'(?:src|href)="([^"]+)"')


async def test_graphiql_loads_only_ports_own_assets(api: Api) -> None:
    """Repro: on a lab network without internet the page stayed on "Loading..." for
    ever: all seven of its scripts and stylesheets came from a public CDN."""
    page = await api.client.get("/graphql", headers={"Accept": "text/html"})
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    html = page.text
    assert "https://" not in html
    assert "http://" not in html
    assets = ASSET.findall(html)
    assert len(assets) >= 9  # GraphiQL, React, its plugin, their styles, Port's own
    for path in assets:
        assert path.startswith("/static/"), path
        served = await api.client.get(path)
        assert served.status_code == 200, path
        assert served.content, path
        kind = served.headers["content-type"]
        expected = {".js": "javascript", ".css": "text/css", ".svg": "image/svg+xml"}
        assert expected[path[path.rindex(".") :]] in kind, (path, kind)


async def test_pages_forbid_inline_scripts_and_framing(api: Api) -> None:
    page = await api.client.get("/graphql", headers={"Accept": "text/html"})
    policy = page.headers["content-security-policy"]
    directives = dict(d.strip().split(" ", 1) for d in policy.split(";"))
    assert directives["script-src"] == "'self'"  # no 'unsafe-inline', no 'unsafe-eval'
    assert directives["frame-ancestors"] == "'none'"
    assert page.headers["x-frame-options"] == "DENY"
    assert "<script>" not in page.text  # every script is a file of Port's
