"""Signing in to the pages, over HTTP on a real server: passwords, sessions and their
cookies, forms that only Port's own pages can send, slowed-down guessing, and the
account page with its tokens (on both databases)."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from litestar.testing import AsyncTestClient
from sqlalchemy import select, update

from port.accounts import service as accounts
from port.accounts.models import User, WebSession
from port.orm import utcnow
from port.principal import CLI
from port.work.jobs import periodic_tasks
from port.work.server import create_app
from tests.deployfakes import FakeBackend
from tests.harness import Api, Catalogue, eventually
from tests.pages import PASSWORD, add_user, another_browser, form_token, session_cookie, sign_in


async def test_a_user_signs_in_sees_their_name_and_signs_out(api: Api) -> None:
    await add_user(api.catalogue, "alice")
    client = api.client
    signed = await sign_in(client, "alice", next_page="/apps/anything")
    assert signed.status_code == 303
    assert signed.headers["location"] == "/apps/anything"  # back where they were going
    cookie = session_cookie(signed)
    assert "HttpOnly" in cookie
    assert "SameSite=lax" in cookie
    assert "Secure" not in cookie  # served over http here
    home = await client.get("/")
    assert "alice" in home.text
    assert "Sign out" in home.text
    out = await client.post("/sign-out", data={"form_token": form_token(home)})
    assert out.status_code == 200  # followed to the catalogue
    assert "Sign out" not in out.text
    assert "Sign in" in out.text
    async with api.catalogue.sessions() as session:
        assert (await session.scalars(select(WebSession))).all() == []  # ended, not forgotten


async def test_wrong_and_unknown_names_get_the_same_answer(api: Api) -> None:
    await add_user(api.catalogue, "alice")
    wrong = await sign_in(api.client, "alice", "not the password")
    unknown = await sign_in(api.client, "mallory", "not the password")
    assert wrong.status_code == unknown.status_code == 401
    assert "Wrong name or password." in wrong.text
    assert "Wrong name or password." in unknown.text
    assert "port_session" not in str(wrong.headers.get_list("set-cookie"))
    # A user without a password (the API-only kind) cannot sign in either.
    async with api.catalogue.sessions() as session, session.begin():
        await accounts.create_user(session, "robot")
    assert (await sign_in(api.client, "robot", "")).status_code == 401


async def test_each_sign_in_starts_a_new_session(api: Api) -> None:
    """Session fixation: a cookie someone planted before sign-in is worth nothing after."""
    await add_user(api.catalogue, "alice")
    client = api.client
    client.cookies.set("port_session", "planted-by-an-attacker")
    first = session_cookie(await sign_in(client, "alice"))
    assert "planted-by-an-attacker" not in first
    # Signing in again while signed in (a second tab, say): the session it shows ends.
    kept = first.split(";")[0].removeprefix("port_session=")
    client.cookies.clear()
    page = await client.get("/sign-in")
    client.cookies.set("port_session", kept)
    again = await client.post(
        "/sign-in",
        data={"form_token": form_token(page), "name": "alice", "password": PASSWORD},
        follow_redirects=False,
    )
    second = session_cookie(again)
    assert first.split(";")[0] != second.split(";")[0]
    async with api.catalogue.sessions() as session:
        assert len((await session.scalars(select(WebSession))).all()) == 1  # the old one ended


async def test_forms_without_their_token_or_from_elsewhere_are_refused(api: Api) -> None:
    await add_user(api.catalogue, "alice")
    client = api.client
    await sign_in(client, "alice")
    home = await client.get("/")
    for data, headers in (
        ({}, {}),  # no token: a form another site made
        ({"form_token": "0" * 64}, {}),  # a made-up one
        ({"form_token": form_token(home)}, {"Origin": "https://evil.example"}),
    ):
        refused = await client.post("/sign-out", data=data, headers=headers)
        assert refused.status_code == 403, data
        assert "did not come from Port" in refused.text or "another site" in refused.text
    assert "Sign out" in (await client.get("/")).text  # still signed in
    # The sign-in form itself needs the token of its own cookie.
    with another_browser(client) as fresh:
        page = await fresh.get("/sign-in")
        fresh.cookies.clear()  # a cross-site post arrives without the SameSite=Strict cookie
        forged = await fresh.post(
            "/sign-in",
            data={"form_token": form_token(page), "name": "alice", "password": PASSWORD},
        )
        assert forged.status_code == 403


async def test_guessing_is_slowed_down(api: Api) -> None:
    """Unknown names are counted like real ones (tests/unit/test_sign_in_throttle.py)."""
    await add_user(api.catalogue, "alice")
    for _ in range(api.catalogue.settings.sign_in_free_failures):
        assert (await sign_in(api.client, "alice", "guess-guess")).status_code == 401
    slowed = await sign_in(api.client, "alice", "guess-guess")
    assert slowed.status_code == 429
    assert "Too many failed sign-ins" in slowed.text
    assert int(slowed.headers["retry-after"]) >= 1
    # Even the right password waits: the guesser learns nothing by trying it now.
    assert (await sign_in(api.client, "alice")).status_code == 429


async def test_a_session_ends_when_idle_too_long_or_too_old(api: Api) -> None:
    await add_user(api.catalogue, "alice")
    settings = api.catalogue.settings
    for column, age in (
        ("last_seen_at", timedelta(minutes=settings.session_idle_minutes)),
        ("created_at", timedelta(hours=settings.session_max_hours)),
    ):
        await sign_in(api.client, "alice")
        assert "Sign out" in (await api.client.get("/")).text
        async with api.catalogue.sessions() as session, session.begin():
            await session.execute(update(WebSession).values({column: utcnow() - age}))
        await signed_out(api, f"a session past its {column}")


async def signed_out(api: Api, what: str) -> None:
    """The browser is signed out; a change made outside this server's pages (the CLI,
    another process) reaches it within RECHECK_SECONDS."""

    async def page() -> str:
        return (await api.client.get("/")).text

    await eventually(page, what, until=lambda text: "Sign out" not in text, within=5)


async def test_a_new_password_or_a_deactivation_signs_the_user_out(api: Api) -> None:
    await add_user(api.catalogue, "alice")
    await sign_in(api.client, "alice")
    assert "Sign out" in (await api.client.get("/")).text
    async with api.catalogue.sessions() as session, session.begin():
        alice = await accounts.get_user(session, "alice")
        await accounts.set_password(session, alice, "another password!", by=CLI)
    await signed_out(api, "signed out by a new password")
    assert (await sign_in(api.client, "alice")).status_code == 401  # the old one is gone
    await sign_in(api.client, "alice", "another password!")
    async with api.catalogue.sessions() as session, session.begin():
        alice = await accounts.get_user(session, "alice")
        _token, secret = await accounts.create_token(session, alice, "laptop")
    assert "Sign out" in (await api.client.get("/")).text
    async with api.catalogue.sessions() as session, session.begin():
        alice = await accounts.get_user(session, "alice")
        await accounts.set_active(session, alice, False, by=CLI)
    await signed_out(api, "signed out by a deactivation")
    assert (await sign_in(api.client, "alice", "another password!")).status_code == 401
    me = await api.gql("{ me { name } }", token=secret)
    assert me["_status"] == 401  # a deactivated user's tokens stop working too


async def test_the_account_page_creates_shows_once_and_revokes_tokens(api: Api) -> None:
    await add_user(api.catalogue, "alice")
    await add_user(api.catalogue, "bob")
    client = api.client
    assert (await client.get("/account", follow_redirects=False)).headers["location"] == (
        "/sign-in?next=%2Faccount"
    )
    await sign_in(client, "alice")
    account = await client.get("/account")
    made = await client.post(
        "/account/tokens", data={"form_token": form_token(account), "name": "laptop"}
    )
    assert made.status_code == 201
    secret = re.search(r'<code id="new-token">(port_[^<]+)</code>', made.text)
    assert secret is not None
    me = await api.gql("{ me { name } }", token=secret.group(1))
    assert me["data"] == {"me": {"name": "alice"}}
    again = await client.get("/account")
    assert secret.group(1) not in again.text  # shown once
    assert "laptop" in again.text
    revoke = re.search(r'action="(/account/tokens/\d+/revoke)"', again.text)
    assert revoke is not None
    # bob cannot revoke alice's token, even with his own valid form.
    with another_browser(client) as other:
        await sign_in(other, "bob")
        bobs = await other.get("/account")
        assert ">laptop<" not in bobs.text
        refused = await other.post(revoke.group(1), data={"form_token": form_token(bobs)})
        assert refused.status_code == 404
    assert (await api.gql("{ me { name } }", token=secret.group(1)))["_status"] == 200
    await client.post(revoke.group(1), data={"form_token": form_token(again)})
    assert (await api.gql("{ me { name } }", token=secret.group(1)))["_status"] == 401


async def test_changing_ones_password_needs_the_current_one(api: Api) -> None:
    await add_user(api.catalogue, "alice")
    client = api.client
    await sign_in(client, "alice")
    account = await client.get("/account")
    fields = {"form_token": form_token(account), "new_password": "a new password"}
    wrong = await client.post(
        "/account/password",
        data=fields | {"current_password": "nope", "repeat_password": "a new password"},
    )
    assert wrong.status_code == 400
    assert 'id="current-error"' in wrong.text  # next to the field it is about
    short = await client.post(
        "/account/password",
        data={"form_token": fields["form_token"], "current_password": PASSWORD}
        | {"new_password": "short", "repeat_password": "short"},
    )
    assert 'id="new-error"' in short.text
    assert "10 to 256 characters" in short.text
    done = await client.post(
        "/account/password",
        data=fields | {"current_password": PASSWORD, "repeat_password": "a new password"},
    )
    assert done.status_code == 200  # followed to the account page, signed in anew
    assert "Sign out" in done.text
    with another_browser(client) as other:
        assert (await sign_in(other, "alice", "a new password")).status_code == 303


async def test_over_https_the_cookie_is_secure_and_host_only(catalogue: Catalogue) -> None:
    settings = catalogue.settings.model_copy(update={"server_url": "https://port.example.org"})
    await add_user(catalogue, "alice")
    app = create_app(settings, backend=FakeBackend("port"))
    async with AsyncTestClient(app=app, base_url="https://port.example.org") as client:
        signed = await sign_in(client, "alice")
        cookie = next(
            h for h in signed.headers.get_list("set-cookie") if h.startswith("__Host-port_session=")
        )
        assert "Secure" in cookie
        assert "Path=/" in cookie
        assert "Domain" not in cookie


@pytest.mark.parametrize("target", ["https://evil.example/", "//evil.example/", "/\\evil"])
async def test_after_sign_in_port_never_sends_one_to_another_site(api: Api, target: str) -> None:
    await add_user(api.catalogue, "alice")
    signed = await sign_in(api.client, "alice", next_page=target)
    assert signed.headers["location"] == "/"


async def test_passwords_are_stored_as_argon2id_hashes(catalogue: Catalogue) -> None:
    await add_user(catalogue, "alice")
    async with catalogue.sessions() as session:
        stored = await session.scalar(select(User.password_hash).where(User.name == "alice"))
    assert stored is not None
    assert stored.startswith("$argon2id$")
    assert PASSWORD not in stored


async def test_the_shared_catalogue_shows_each_viewer_only_themselves(api: Api) -> None:
    await add_user(api.catalogue, "alice")
    await add_user(api.catalogue, "bob")
    client = api.client
    await sign_in(client, "alice")
    alices = await client.get("/")
    with another_browser(client):
        await sign_in(client, "bob")
        bobs = await client.get("/")  # the cards come from what alice's view computed
        assert ">bob<" in bobs.text
        assert "alice" not in bobs.text
        assert form_token(alices) not in bobs.text


async def test_ended_sessions_are_swept_even_if_their_cookie_never_comes_back(
    api: Api,
) -> None:
    await add_user(api.catalogue, "alice")
    for _ in range(2):
        with another_browser(api.client):
            await sign_in(api.client, "alice")
    idle = timedelta(minutes=api.catalogue.settings.session_idle_minutes)
    async with api.catalogue.sessions() as session, session.begin():
        first = await session.scalar(select(WebSession.id).order_by(WebSession.id))
        await session.execute(
            update(WebSession).where(WebSession.id == first).values(last_seen_at=utcnow() - idle)
        )
    [sweep] = [
        t
        for t in periodic_tasks(api.catalogue.sessions, api.catalogue.settings)
        if t.name == "sessions"
    ]
    await sweep.run()
    async with api.catalogue.sessions() as session:
        left = list(await session.scalars(select(WebSession.id)))
    assert len(left) == 1
    assert first not in left
