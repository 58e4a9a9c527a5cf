"""Installing and managing apps from the pages, over HTTP, on the fake backend: the
install form, My apps, a Setup's page with its live part and its buttons, and who sees
what (on both databases). The real engine and browser journey is in tests/e2e."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from httpx import Response
from litestar import Litestar
from litestar.testing import AsyncTestClient
from pydantic import SecretStr
from sqlalchemy import select

from port.accounts.models import User
from port.accounts.service import FirstAdmin
from port.catalogue.models import App
from port.deploy.reconciler import Reconciler
from port.deploy.updater import Updater
from port.jobs.models import Job
from port.secretbox import new_key
from port.work.server import create_app
from tests.deployfakes import CUDA, FakeBackend, add_app, add_release
from tests.harness import Catalogue
from tests.pages import add_user, another_browser, form_token, sign_in


@dataclass
class Store:
    client: AsyncTestClient[Litestar]
    backend: FakeBackend
    reconciler: Reconciler
    admin_password: str

    async def install(self, app: str = "stardist", **fields: str) -> Response:
        form = await self.client.get(f"/apps/{app}/install")
        return await self.client.post(
            f"/apps/{app}/install",
            data={"form_token": form_token(form), "update_policy": "MINOR", "start": "yes"}
            | fields,
            follow_redirects=False,
        )

    async def press(self, setup_page: str, action: str, **fields: str) -> Response:
        page = await self.client.get(setup_page)
        return await self.client.post(
            setup_page, data={"form_token": form_token(page), "action": action} | fields
        )


@pytest.fixture
async def store(catalogue: Catalogue) -> AsyncIterator[Store]:
    async with catalogue.sessions() as session, session.begin():
        await add_app(session, versions=("1.0.0", "1.1.0"))
        await add_app(session, identifier="gpuonly", flavours=(("cuda", "img/gpu:1", CUDA),))
    backend = FakeBackend("port")
    backend.images.add("img/cpu:1")
    announced: list[FirstAdmin] = []
    app = create_app(catalogue.settings, announce=announced.append, backend=backend)
    async with AsyncTestClient(app=app) as client:
        await add_user(catalogue, "alice")  # after the first start made the admin
        await add_user(catalogue, "bob")
        # Passes run on the test's loop, through the test's engine.
        reconciler = Reconciler(catalogue.sessions, catalogue.settings, backend)
        yield Store(client, backend, reconciler, announced[0].password)


async def test_a_user_installs_an_app_and_watches_it_run(store: Store) -> None:
    client = store.client
    await sign_in(client, "alice")
    app_page = await client.get("/apps/stardist")
    assert 'href="/apps/stardist/install"' in app_page.text
    form = await client.get("/apps/stardist/install")
    assert form.status_code == 200
    assert 'value="MINOR" checked' in form.text  # the default policy
    assert "Automatic" in form.text
    assert "cpu: the only flavour." in form.text  # the reason for the choice
    installed = await store.install(env="# what the app reads\nGREETING=hello\n")
    assert installed.status_code == 303
    setup_page = installed.headers["location"]
    assert re.fullmatch(r"/setups/\d+", setup_page)
    page = await client.get(setup_page)
    assert "Pending" in page.text
    assert f'hx-get="{setup_page}/live"' in page.text  # it updates itself
    await store.reconciler.reconcile()
    live = await client.get(f"{setup_page}/live")
    assert "Running" in live.text
    assert "hello" in live.text  # the container's log
    assert "Pod running" in live.text  # the timeline
    [container] = store.backend.containers.values()
    assert container.spec.env["GREETING"] == "hello"
    mine = await client.get("/setups")
    assert f'href="{setup_page}"' in mine.text
    assert "Running" in mine.text


async def test_the_form_names_the_variables_an_app_reads_and_asks_for_required_ones(
    store: Store, catalogue: Catalogue
) -> None:
    var = {"value": None, "required": False, "secret": False}
    env = [
        var | {"name": "API_KEY", "required": True, "description": "Your key of the service"},
        var | {"name": "LANG", "value": "C", "description": "Messages' language"},
        var | {"name": "TOKEN", "value": "hidden-default", "secret": True},
    ]
    async with catalogue.sessions() as session, session.begin():
        await add_app(
            session, identifier="keyed", flavours=(("cpu", "img/cpu:1", []),), run={"env": env}
        )
    await sign_in(store.client, "alice")
    form = (await store.client.get("/apps/keyed/install")).text
    assert ">API_KEY=</textarea>" in form  # filled in, waiting for its value
    assert "<code>API_KEY</code> <strong>required</strong> — Your key of the service" in form
    assert "(default C)" in form
    assert "hidden-default" not in form  # a secret's default is never shown
    refused = await store.install("keyed", env="API_KEY=\n")
    assert refused.status_code == 400
    assert "keyed 1.0.0 needs a value for API_KEY" in refused.text
    assert (await store.install("keyed", env="API_KEY=k")).status_code == 303


async def test_the_form_asks_for_each_grant_and_gives_only_what_was_granted(
    store: Store, catalogue: Catalogue
) -> None:
    shm = {"kind": "shared_memory", "name": "shm", "min": 128, "description": "for frames"}
    folder = {"kind": "folder", "name": "images", "target": "/images", "required": False}
    async with catalogue.sessions() as session, session.begin():
        app = await add_app(session, identifier="scope", versions=())
        add_release(session, app.id, "1.0.0", (("cpu", "img/cpu:1", []),), None, [shm, folder])
    await sign_in(store.client, "alice")
    form = (await store.client.get("/apps/scope/install")).text
    assert 'name="grant.shm" value="yes">' in form  # offered, not ticked
    assert "Grant shm: 128 MB shared memory" in form
    assert "for frames" in form
    assert 'id="grant.images" name="grant.images" value=""' in form

    ungranted = await store.install("scope")
    assert ungranted.status_code == 409
    assert "It needs what it asks for granted" in ungranted.text
    assert "needs the shared_memory capability &#39;shm&#39; granted" in ungranted.text
    outside = await store.install("scope", **{"grant.shm": "yes", "grant.images": "/etc"})
    assert outside.status_code == 400
    assert 'id="grants-error"' in outside.text
    assert "/etc is not under a folder" in outside.text
    assert 'value="/etc"' in outside.text  # what was typed is kept

    granted = await store.install("scope", **{"grant.shm": "yes"})
    assert granted.status_code == 303
    await store.reconciler.reconcile()
    [container] = store.backend.containers.values()
    assert [(g.kind, g.shm_mb) for g in container.spec.grants] == [("shared_memory", 128)]


async def test_the_form_shows_what_the_chosen_version_asks(
    store: Store, catalogue: Catalogue
) -> None:
    shm = {"kind": "shared_memory", "name": "shm", "min": 128}
    async with catalogue.sessions() as session, session.begin():
        app = await add_app(session, identifier="scope", versions=())
        add_release(session, app.id, "1.0.0", (("cpu", "img/cpu:1", []),))
        add_release(session, app.id, "2.0.0", (("big", "img/cpu:1", []),), None, [shm])
    await sign_in(store.client, "alice")
    newest = (await store.client.get("/apps/scope/install")).text
    assert 'name="grant.shm"' in newest
    assert 'value="big"' in newest
    assert 'hx-get="/apps/scope/install" hx-trigger="change"' in newest  # the list asks
    older = (await store.client.get("/apps/scope/install?version=1.0.0")).text
    assert 'name="grant.shm"' not in older  # 1.0.0 asks nothing
    assert 'value="cpu"' in older
    assert 'value="big"' not in older
    assert '<option value="1.0.0" selected>' in older
    assert 'name="start" value="yes" checked' in older  # the defaults stay
    installed = await store.install("scope", version="1.0.0")
    assert installed.status_code == 303, installed.text


async def test_an_update_that_asks_for_more_waits_on_the_page_for_consent(
    store: Store, catalogue: Catalogue
) -> None:
    shm = {"kind": "shared_memory", "name": "shm", "min": 64, "description": "for frames"}
    await sign_in(store.client, "alice")
    setup_page = (await store.install("stardist", version="1.0.0")).headers["location"]
    setup_id = int(setup_page.rsplit("/", 1)[1])
    await store.reconciler.reconcile()
    async with catalogue.sessions() as session, session.begin():
        app_id = await session.scalar(select(App.id).where(App.identifier == "stardist"))
        assert app_id is not None
        add_release(session, app_id, "1.2.0", (("cpu", "img/cpu:1", []),), None, [shm])
    updater = Updater(catalogue.sessions, catalogue.settings, store.reconciler)
    assert "waits for consent" in await updater.run(setup_id, "1.2.0")

    page = (await store.client.get(setup_page)).text
    assert "The update to <strong>1.2.0</strong> waits for your consent" in page
    assert "Grant shm: 64 MB shared memory" in page
    assert "Update needs consent" in page  # the timeline, in the tone of trouble
    granted = await store.press(setup_page, "grant", **{"grant.shm": "yes"})
    assert granted.status_code == 200  # back on the page, after the redirect
    assert "waits for your consent" not in granted.text
    assert "<code>shm</code>" in granted.text  # what is granted now
    async with catalogue.sessions() as session:
        queued = await session.scalar(select(Job.payload).where(Job.kind == "update"))
    assert queued is not None
    assert queued["version"] == "1.2.0"
    assert "is healthy" in await updater.run(setup_id, "1.2.0")


async def test_a_channel_is_offered_beside_the_releases_and_followed(
    store: Store, catalogue: Catalogue
) -> None:
    async with catalogue.sessions() as session, session.begin():
        app = await session.scalar(select(App).where(App.identifier == "stardist"))
        assert app is not None
        old = add_release(session, app.id, "1.2.0-dev.aaaaaaa", (("cpu", "img/cpu:1", []),))
        build = add_release(session, app.id, "1.2.0-dev.bbbbbbb", (("cpu", "img/cpu:1", []),))
        old.channel, old.current = "main", False  # superseded
        build.channel = "main"
    await sign_in(store.client, "alice")
    app_page = (await store.client.get("/apps/stardist")).text
    assert "channel main" in app_page
    assert "1.2.0-dev.bbbbbbb" in app_page
    assert "1.2.0-dev.aaaaaaa" not in app_page  # a channel shows the build it points at
    form = (await store.client.get("/apps/stardist/install")).text
    assert "The newest (1.1.0)" in form  # never a channel's build by default
    assert 'value="1.2.0-dev.bbbbbbb"' not in form
    assert '<option value="channel:main">Channel main: each new build (1.2.0-dev.bbbbbbb' in form
    # RANGE ticked without a range: moot on a channel, so never in the way.
    installed = await store.install(version="channel:main", update_policy="RANGE")
    assert installed.status_code == 303, installed.text
    page = (await store.client.get(installed.headers["location"])).text
    assert "<strong>channel main</strong>, each of its builds" in page
    assert "on 1.2.0-dev.bbbbbbb" in page
    # An app with only a channel's builds: the form is the channel's, as its list shows.
    async with catalogue.sessions() as session, session.begin():
        nightly = await add_app(session, identifier="nightly", versions=())
        only = add_release(session, nightly.id, "0.1.0-dev.ccccccc", (("gpu", "img/cpu:1", []),))
        only.channel = "main"
    form = (await store.client.get("/apps/nightly/install")).text
    assert "The newest" not in form
    assert '<option value="channel:main" selected>' in form
    assert 'value="gpu"' in form  # the build's flavours, not "no release to install"


async def test_secret_variables_from_the_form_are_never_shown_back(catalogue: Catalogue) -> None:
    token = {"name": "TOKEN", "value": None, "required": True, "secret": True}
    async with catalogue.sessions() as session, session.begin():
        await add_app(
            session, identifier="keyed", flavours=(("cpu", "img/cpu:1", []),), run={"env": [token]}
        )
    settings = catalogue.settings.model_copy(update={"secret_key": SecretStr(new_key())})
    backend = FakeBackend("port")
    backend.images.add("img/cpu:1")
    server = create_app(settings, announce=lambda _first: None, backend=backend)
    async with AsyncTestClient(app=server) as client:
        await add_user(catalogue, "alice")
        store = Store(client, backend, Reconciler(catalogue.sessions, settings, backend), "")
        await sign_in(client, "alice")
        form = (await client.get("/apps/keyed/install")).text
        assert "<code>TOKEN</code> <strong>required</strong> <strong>secret</strong>" in form
        in_clear = await store.install("keyed", env="TOKEN=in-the-open")
        assert in_clear.status_code == 400
        assert "TOKEN is a secret of keyed: pass it in secrets" in in_clear.text
        refused = await store.install("keyed", secrets="TOKEN=hush-1234", version="9.9.9")
        assert refused.status_code != 303
        assert "hush-1234" not in refused.text  # typed again, never echoed
        installed = await store.install("keyed", secrets="TOKEN=hush-1234")
        assert installed.status_code == 303
        page = await client.get(installed.headers["location"])
        assert "hush-1234" not in page.text
        await store.reconciler.reconcile()
        [container] = backend.containers.values()
        assert container.spec.env["TOKEN"] == "hush-1234"


async def test_the_account_page_stores_a_redeem_token_and_never_shows_it(
    catalogue: Catalogue,
) -> None:
    from port.deploy.secrets import has_redeem_token

    async def store(client: AsyncTestClient[Litestar], **fields: str) -> Response:
        page = await client.get("/account")
        return await client.post(
            "/account/arkitekt", data={"form_token": form_token(page)} | fields
        )

    keyless = create_app(catalogue.settings, announce=lambda _first: None, backend=FakeBackend())
    async with AsyncTestClient(app=keyless) as client:
        await add_user(catalogue, "alice")
        await add_user(catalogue, "bob")
        await sign_in(client, "alice")
        refused = await store(client, redeem_token="redeem-me-0001")
        assert refused.status_code == 400
        assert "no PORT_SECRET_KEY" in refused.text
        assert "redeem-me-0001" not in refused.text
    settings = catalogue.settings.model_copy(
        update={"secret_key": SecretStr(new_key()), "arkitekt_url": "https://arkitekt.lab"}
    )
    server = create_app(settings, announce=lambda _first: None, backend=FakeBackend())
    async with AsyncTestClient(app=server) as client:
        await sign_in(client, "alice")
        before = (await client.get("/account")).text
        assert "No redeem token is stored." in before
        assert "(https://arkitekt.lab)" in before
        assert (await store(client, redeem_token="  ")).status_code == 400
        stored = await store(client, redeem_token="redeem-me-0001")
        assert stored.status_code == 200  # the account page again, after the redirect
        assert "A redeem token is stored." in stored.text
        assert "redeem-me-0001" not in stored.text
        async with catalogue.sessions() as session:
            alice = await session.scalar(select(User.id).where(User.name == "alice"))
            bob = await session.scalar(select(User.id).where(User.name == "bob"))
            assert alice is not None
            assert bob is not None
            assert await has_redeem_token(session, alice)
            assert not await has_redeem_token(session, bob)  # alice's, and only hers
        forgotten = await store(client, forget="yes")
        assert "No redeem token is stored." in forgotten.text


async def test_published_ports_are_kept_and_http_ones_only_while_an_admin_allows(
    store: Store, catalogue: Catalogue
) -> None:
    """PORT_PUBLISH_PORTS: a Setup's tcp port keeps its host port; an http one is
    published only with PORT_PUBLISH_HTTP, and given up when that is turned off."""
    from port.apps.published import allocate

    ports = [
        {"name": "web", "port": 8080, "protocol": "http", "path": "/"},
        {"name": "db", "port": 5432, "protocol": "tcp", "path": "/"},
    ]
    async with catalogue.sessions() as session, session.begin():
        await add_app(
            session, identifier="both", flavours=(("cpu", "img/cpu:1", []),), run={"ports": ports}
        )
    await sign_in(store.client, "alice")
    setup_page = (await store.install("both", update_policy="NONE")).headers["location"]
    await store.reconciler.reconcile()
    window = range(30000, 30010)
    async with catalogue.sessions() as session, session.begin():
        both = {
            r.name: r.host_port for r in await allocate(session, window, frozenset({"tcp", "http"}))
        }
    assert sorted(both) == ["db", "web"]
    page = (await store.client.get(f"{setup_page}/live")).text
    assert (
        f"Port web (http, open to anyone who reaches the host): <code>http://127.0.0.1:{both['web']}/</code>"
        in page
    )
    assert (
        f"Port db (tcp, open to anyone who reaches the host): <code>127.0.0.1:{both['db']}</code>"
        in page
    )
    async with catalogue.sessions() as session, session.begin():
        tcp_only = {r.name: r.host_port for r in await allocate(session, window)}
    assert tcp_only == {"db": both["db"]}  # kept; the http one given up
    await store.press(setup_page, "stop")
    await store.reconciler.reconcile()
    async with catalogue.sessions() as session, session.begin():
        stopped = {r.name: r.host_port for r in await allocate(session, window)}
    assert stopped == tcp_only  # a stopped Setup keeps its port


async def test_the_buttons_stop_start_restart_update_and_delete(store: Store) -> None:
    await sign_in(store.client, "alice")
    setup_page = (await store.install(version="1.0.0", update_policy="NONE")).headers["location"]
    await store.reconciler.reconcile()
    stopped = await store.press(setup_page, "stop")
    assert stopped.status_code == 200
    await store.reconciler.reconcile()
    assert store.backend.containers == {}
    assert "Start" in (await store.client.get(setup_page)).text
    await store.press(setup_page, "start")
    await store.reconciler.reconcile()
    [first] = store.backend.containers
    await store.press(setup_page, "restart")
    await store.reconciler.reconcile()
    assert list(store.backend.containers) != [first]
    page = await store.client.get(setup_page)
    assert "<option>1.1.0</option>" in page.text  # where it could move
    moved = await store.press(setup_page, "update", version="1.1.0")
    assert "Update requested" in moved.text
    confirm = await store.client.get(f"{setup_page}/delete")
    assert "cannot be undone" in confirm.text
    gone = await store.client.post(
        setup_page, data={"form_token": form_token(confirm), "action": "delete"}
    )
    assert gone.status_code == 200  # followed to My apps
    assert setup_page not in gone.text
    assert store.backend.containers == {}  # removed at once


async def test_a_flavour_that_cannot_run_here_says_why_before_anyone_clicks(store: Store) -> None:
    await sign_in(store.client, "alice")
    form = await store.client.get("/apps/gpuonly/install")
    assert "not here: no CUDA GPU" in form.text
    assert "No flavour of this release can run on this machine." in form.text
    refused = await store.install("gpuonly")
    assert refused.status_code == 409
    assert "cuda</strong>: no CUDA GPU" in refused.text


async def test_bad_fields_come_back_next_to_the_field_keeping_what_was_typed(
    store: Store,
) -> None:
    await sign_in(store.client, "alice")
    bad_env = await store.install(env="GREETING=hello\nnot a variable\n")
    assert bad_env.status_code == 400
    assert 'id="env-error"' in bad_env.text
    assert "line 2: write NAME=value" in bad_env.text
    assert "GREETING=hello" in bad_env.text  # nothing typed is lost
    reserved = await store.install(env="PORT_SETUP_ID=1")
    assert 'id="env-error"' in reserved.text
    bad_range = await store.install(update_policy="RANGE", version_range="not a range")
    assert 'id="version_range-error"' in bad_range.text
    assert store.backend.containers == {}


async def test_another_user_never_sees_or_touches_it(store: Store) -> None:
    client = store.client
    await sign_in(client, "alice")
    setup_page = (await store.install()).headers["location"]
    alices_page = await client.get(setup_page)
    with another_browser(client):
        await sign_in(client, "bob")
        assert setup_page not in (await client.get("/setups")).text
        assert (await client.get(setup_page)).status_code == 404
        assert (await client.get(f"{setup_page}/live")).status_code == 404
        bobs = await client.get("/setups")
        refused = await client.post(
            setup_page, data={"form_token": form_token(bobs), "action": "delete"}
        )
        assert refused.status_code == 404
        # alice's form token is worth nothing with bob's session.
        forged = await client.post(
            setup_page, data={"form_token": form_token(alices_page), "action": "delete"}
        )
        assert forged.status_code == 403
    assert (await client.get(setup_page)).status_code == 200  # still there
    with another_browser(client):
        assert (await client.get(setup_page, follow_redirects=False)).status_code == 303
        assert (await client.get(f"{setup_page}/live")).status_code == 401


async def test_an_admin_sees_everyones_apps(store: Store) -> None:
    client = store.client
    await sign_in(client, "alice")
    setup_page = (await store.install()).headers["location"]
    with another_browser(client):
        await sign_in(client, "admin", store.admin_password)
        assert setup_page not in (await client.get("/setups")).text  # not theirs
        everyone = await client.get("/setups", params={"everyone": "1"})
        assert setup_page in everyone.text
        assert "alice" in everyone.text


ASSET = re.compile(r'(?:<script[^>]*\ssrc|<link[^>]*\shref|<img[^>]*\ssrc)="([^"]+)"')
INLINE_SCRIPT = re.compile(r"<script(?![^>]*\ssrc=)[^>]*>")


async def test_no_page_loads_anything_from_elsewhere_or_runs_inline_script(store: Store) -> None:
    """Every page a signed-in admin can open: assets only from Port, no inline script,
    no framing."""
    client = store.client
    await sign_in(client, "admin", store.admin_password)
    setup_page = (await store.install()).headers["location"]
    await store.reconciler.reconcile()
    paths = [
        "/",
        "/?q=star",
        "/apps/stardist",
        "/apps/stardist/install",
        "/setups",
        "/setups?everyone=1",
        setup_page,
        f"{setup_page}/live",
        f"{setup_page}/delete",
        "/account",
        "/admin/repos",
        "/admin/users",
        "/apps/nope",
    ]
    with another_browser(client):
        await _check_page(client, "/sign-in")  # signed out
    for path in paths:
        await _check_page(client, path)


async def _check_page(client: AsyncTestClient[Litestar], path: str) -> None:
    page = await client.get(path)
    assert page.status_code in (200, 404), path
    policy = page.headers["content-security-policy"]
    script_policy = next(p for p in policy.split("; ") if p.startswith("script-src"))
    assert script_policy == "script-src 'self'", path
    assert "frame-ancestors 'none'" in policy
    assert page.headers["x-frame-options"] == "DENY"
    assert INLINE_SCRIPT.search(page.text) is None, path
    for asset in ASSET.findall(page.text):
        assert asset.startswith("/static/"), (path, asset)
        assert (await client.get(asset)).status_code == 200, asset
