"""The storefront's pages over HTTP: what they show, what they escape, what they load,
and who may see them (on both databases). The browser journey is in tests/e2e."""

from __future__ import annotations

import re
from urllib.parse import urlencode

import pytest
from litestar.testing import AsyncTestClient
from sqlalchemy import update

from port.catalogue.models import App
from port.work.server import create_app
from tests.deployfakes import CUDA, FakeBackend, add_app
from tests.harness import Api, Catalogue

ASSET = re.compile(r'(?:<script[^>]*\ssrc|<link[^>]*\shref|<img[^>]*\ssrc)="([^"]+)"')


async def _store(catalogue: Catalogue) -> None:
    async with catalogue.sessions() as session, session.begin():
        await add_app(session, identifier="stardist", versions=("1.0.0", "1.1.0"))
        await add_app(session, identifier="gpuonly", flavours=(("cuda", "img/gpu:1", CUDA),))
        await session.execute(
            update(App)
            .where(App.identifier == "stardist")
            .values(
                description="Finds <script>alert(1)</script> nuclei",
                categories=["segmentation"],
            )
        )


async def test_the_catalogue_lists_searches_and_filters(api: Api) -> None:
    await _store(api.catalogue)
    page = await api.client.get("/")
    assert page.status_code == 200
    assert 'href="/apps/gpuonly"' in page.text
    assert 'href="/apps/stardist"' in page.text
    assert "2 apps" in page.text
    found = await api.client.get("/", params={"q": "NUCLEI"})
    assert "1 app" in found.text
    assert "/apps/gpuonly" not in found.text
    filtered = await api.client.get("/", params={"category": "segmentation"})
    assert "/apps/stardist" in filtered.text
    assert "/apps/gpuonly" not in filtered.text
    too_long = await api.client.get("/", params={"q": "x" * 201})
    assert too_long.status_code == 400
    assert "at most 200 characters" in too_long.text


async def test_an_app_page_shows_releases_and_escapes_what_a_manifest_says(api: Api) -> None:
    await _store(api.catalogue)
    page = await api.client.get("/apps/stardist")
    assert page.status_code == 200
    html = page.text
    assert "<script>alert(1)</script>" not in html  # a manifest's text is text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert html.index(">1.1.0") < html.index(">1.0.0")  # newest first
    missing = await api.client.get("/apps/nope")
    assert missing.status_code == 404
    assert "There is no app" in missing.text


async def test_a_flavour_says_whether_it_runs_on_this_machine(catalogue: Catalogue) -> None:
    await _store(catalogue)

    app = create_app(catalogue.settings, backend=FakeBackend("port"))
    async with AsyncTestClient(app=app) as client:
        page = (await client.get("/apps/gpuonly")).text
    assert "not here: no CUDA GPU" in page
    assert "NVIDIA GPU" in page


async def test_pages_load_nothing_from_elsewhere(api: Api) -> None:
    await _store(api.catalogue)
    for path in ("/", "/apps/stardist", "/apps/nope", "/?q=x"):
        page = await api.client.get(path)
        assert page.headers["content-security-policy"].startswith("default-src 'self'")
        assert page.headers["x-frame-options"] == "DENY"
        assets = ASSET.findall(page.text)
        assert assets, path
        for asset in assets:
            assert asset.startswith("/static/"), (path, asset)
            assert (await api.client.get(asset)).status_code == 200, asset
        assert "<script>" not in page.text


async def test_a_private_store_shows_no_pages_to_strangers(catalogue: Catalogue) -> None:
    settings = catalogue.settings.model_copy(update={"public_catalogue": False})
    await _store(catalogue)
    async with AsyncTestClient(app=create_app(settings, backend=FakeBackend("port"))) as client:
        for path in ("/", "/apps/stardist", "/?q=nuclei"):
            page = await client.get(path, follow_redirects=False)
            assert page.status_code == 303  # to the sign-in page, and back here afterwards
            assert page.headers["location"] == "/sign-in?" + urlencode({"next": path})
            assert "Finds" not in page.text  # nothing of the catalogue
            sign_in = await client.get(page.headers["location"])
            assert "Sign in" in sign_in.text
            assert 'href="/apps/' not in sign_in.text


async def test_a_page_that_breaks_says_why_in_the_log(
    api: Api, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from port.web import pages

    async def broken(_served: object, _identifier: str) -> None:
        raise RuntimeError("the page broke")

    monkeypatch.setattr(pages, "_app_context", broken)
    answer = await api.client.get("/apps/anything")
    assert answer.status_code == 500
    assert "the page broke" not in answer.text  # the cause is for the admin, not a visitor
    [record] = [r for r in caplog.records if r.getMessage().startswith("unexpected error")]
    assert record.getMessage() == "unexpected error answering GET /apps/anything"
    assert record.exc_info is not None
    assert "the page broke" in str(record.exc_info[1])
    monkeypatch.undo()
    caplog.clear()
    assert (await api.client.get("/apps/nope-not-here")).status_code == 404
    assert (await api.gql("{ me { name } }", token="port_bogus"))["_status"] == 401
    # What a client did wrong is never logged as unexpected: anyone could flood the log.
    assert not [r for r in caplog.records if r.getMessage().startswith("unexpected error")]
