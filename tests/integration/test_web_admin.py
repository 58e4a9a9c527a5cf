"""The admin pages over HTTP: repositories (add with errors at their field, scan, the
index runs with every located error, webhook URLs) and users (add, password, admin,
deactivate), and that nobody else may use them (on both databases)."""

from __future__ import annotations

import html

from sqlalchemy import delete, select

from port.accounts.models import User
from port.catalogue.models import App, Release, Repo
from port.catalogue.repos import add_repo
from port.catalogue.scanning import scan_repo
from port.deploy.models import Setup
from port.jobs.models import Job
from tests.harness import Api
from tests.integration.gitfixtures import Remote, port_yaml
from tests.pages import add_user, another_browser, form_token, sign_in


async def test_an_admin_adds_a_repository_and_reads_its_located_errors(
    api: Api, local_remote: Remote
) -> None:
    work = local_remote.work
    work.commit("good", {"port.yaml": port_yaml("stardist", "1.0.0")})
    work.tag("v1.0.0")
    work.commit("broken", {"port.yaml": "apiVersion: port/v1\nversion: [not a version\n"})
    work.tag("v1.1.0")
    work.push()
    client = api.client
    await sign_in(client, "admin", api.admin_password)
    page = await client.get("/admin/repos")
    assert "No repository yet" in page.text
    refused = await client.post(
        "/admin/repos",
        data={
            "form_token": form_token(page),
            "url": "ftp://example.org/lab/app.git",
            "branch": "main",
            "webhook_secret": "long enough secret",
        },
    )
    assert refused.status_code == 400
    assert 'id="url-error"' in refused.text  # next to the URL field
    assert 'value="main"' in refused.text  # what was typed stays
    assert "long enough secret" not in refused.text  # a secret is never shown again
    bad_branch = await client.post(
        "/admin/repos",
        data={"form_token": form_token(page), "url": local_remote.url, "branch": "-x"},
    )
    assert 'id="branch-error"' in bad_branch.text
    added = await client.post(
        "/admin/repos",
        data={"form_token": form_token(page), "url": local_remote.url},
        follow_redirects=False,
    )
    assert added.status_code == 303
    repo_page = added.headers["location"]
    async with api.catalogue.sessions() as session:
        repo_id = await session.scalar(select(Repo.id))
        [job] = (await session.scalars(select(Job))).all()  # the first scan, queued
    assert repo_page == f"/admin/repos/{repo_id}"
    assert job.key == f"repo:{repo_id}"
    assert repo_id is not None
    await scan_repo(api.catalogue.sessions, api.catalogue.settings, repo_id)  # as the worker
    shown = await client.get(repo_page)
    assert "Succeeded" in shown.text
    assert "added stardist 1.0.0" in shown.text
    assert "<code>port.yaml:3:1</code> at <code>v1.1.0</code>: YAML syntax error" in shown.text
    assert "/webhooks/github" in shown.text
    listing = await client.get("/admin/repos")
    assert "1 error" in listing.text
    scanned = await client.post(
        f"{repo_page}/scan", data={"form_token": form_token(shown)}, follow_redirects=False
    )
    assert scanned.status_code == 303


async def test_an_admin_manages_users(api: Api) -> None:
    client = api.client
    await sign_in(client, "admin", api.admin_password)
    page = await client.get("/admin/users")
    bad = await client.post(
        "/admin/users",
        data={"form_token": form_token(page), "name": "Not Valid", "password": "x" * 12},
    )
    assert 'id="name-error"' in bad.text
    short = await client.post(
        "/admin/users",
        data={"form_token": form_token(page), "name": "carol", "password": "short"},
    )
    assert 'id="password-error"' in short.text
    assert "carol" not in (await client.get("/admin/users")).text  # nothing half made
    made = await client.post(
        "/admin/users",
        data={"form_token": form_token(page), "name": "carol", "password": "carol's password"},
    )
    assert made.status_code == 200
    assert ">carol<" in made.text
    with another_browser(client):
        assert (await sign_in(client, "carol", "carol's password")).status_code == 303
    async with api.catalogue.sessions() as session:
        ids = {u.name: u.id for u in (await session.scalars(select(User))).all()}
    for action, extra in (("password", {"password": "a brand new one"}), ("admin", {})):
        await client.post(
            f"/admin/users/{ids['carol']}",
            data={"form_token": form_token(page), "action": action} | extra,
        )
    with another_browser(client):
        assert (await sign_in(client, "carol", "carol's password")).status_code == 401
        assert (await sign_in(client, "carol", "a brand new one")).status_code == 303
        assert "Users" in (await client.get("/")).text  # an admin now
    await client.post(
        f"/admin/users/{ids['carol']}",
        data={"form_token": form_token(page), "action": "deactivate"},
    )
    with another_browser(client):
        assert (await sign_in(client, "carol", "a brand new one")).status_code == 401
    own_password = await client.post(
        f"/admin/users/{ids['admin']}",
        data={"form_token": form_token(page), "action": "password", "password": "x" * 12},
    )
    assert "on your account page" in own_password.text  # not without the current one
    myself = await client.post(
        f"/admin/users/{ids['admin']}",
        data={"form_token": form_token(page), "action": "deactivate"},
    )
    assert myself.status_code == 400
    assert "cannot deactivate yourself" in myself.text


async def test_only_admins_run_the_store(api: Api) -> None:
    await add_user(api.catalogue, "alice")
    client = api.client
    for path in ("/admin/repos", "/admin/users"):
        assert (await client.get(path, follow_redirects=False)).status_code == 303  # sign in
    await sign_in(client, "alice")
    home = await client.get("/")
    assert 'href="/admin/users"' not in home.text
    for path in ("/admin/repos", "/admin/users", "/admin/repos/1"):
        assert (await client.get(path)).status_code == 403, path
    for path, data in (
        ("/admin/repos", {"url": "https://example.org/x.git"}),
        ("/admin/users", {"name": "mallory"}),
        ("/admin/users/1", {"action": "not-admin"}),
    ):
        refused = await client.post(path, data={"form_token": form_token(home)} | data)
        assert refused.status_code == 403, path
    async with api.catalogue.sessions() as session:
        assert (await session.scalars(select(Repo))).all() == []


async def test_a_repository_in_use_is_not_deleted_and_one_unused_is(
    api: Api, local_remote: Remote
) -> None:
    work = local_remote.work
    work.commit("good", {"port.yaml": port_yaml("stardist", "1.0.0")})
    work.tag("v1.0.0")
    work.push()
    async with api.catalogue.sessions() as session, session.begin():
        repo = await add_repo(session, local_remote.url, allow_local=True)
        repo_id = repo.id
    await scan_repo(api.catalogue.sessions, api.catalogue.settings, repo_id)
    alice = await add_user(api.catalogue, "alice")
    async with api.catalogue.sessions() as session, session.begin():
        app_id = await session.scalar(select(App.id))
        release_id = await session.scalar(select(Release.id))
        session.add(Setup(owner_id=alice, app_id=app_id, release_id=release_id))
    client = api.client
    await sign_in(client, "admin", api.admin_password)
    confirm = await client.get(f"/admin/repos/{repo_id}/delete")
    assert "cannot be undone" in confirm.text
    refused = await client.post(
        f"/admin/repos/{repo_id}/delete", data={"form_token": form_token(confirm)}
    )
    assert refused.status_code == 409
    assert "alice's stardist" in html.unescape(refused.text)  # who would lose what
    async with api.catalogue.sessions() as session, session.begin():
        await session.execute(delete(Setup))
    gone = await client.post(
        f"/admin/repos/{repo_id}/delete", data={"form_token": form_token(confirm)}
    )
    assert gone.status_code == 200  # followed to the list
    assert "No repository yet" in gone.text


async def test_an_admin_changes_a_repositorys_settings(api: Api, local_remote: Remote) -> None:
    async with api.catalogue.sessions() as session, session.begin():
        repo_id = (
            await add_repo(
                session, local_remote.url, allow_local=True, webhook_secret="the old secret"
            )
        ).id
    client = api.client
    await sign_in(client, "admin", api.admin_password)
    page = await client.get(f"/admin/repos/{repo_id}")
    bad = await client.post(
        f"/admin/repos/{repo_id}",
        data={"form_token": form_token(page), "branch": "-x", "tag_prefix": "sd-"},
    )
    assert bad.status_code == 400
    assert 'id="branch-error"' in bad.text
    assert 'value="sd-"' in bad.text  # what was typed stays
    saved = await client.post(
        f"/admin/repos/{repo_id}",
        data={
            "form_token": form_token(page),
            "branch": "main",
            "manifest_path": "apps/port.yaml",
            "tag_prefix": "sd-",
            "webhook_secret": "",
        },
    )
    assert saved.status_code == 200
    async with api.catalogue.sessions() as session:
        repo = await session.get(Repo, repo_id)
        assert repo is not None
        assert (repo.branch, repo.manifest_path, repo.tag_prefix) == (
            "main",
            "apps/port.yaml",
            "sd-",
        )
        assert repo.webhook_secret == "the old secret"  # empty: kept
        assert len((await session.scalars(select(Job))).all()) == 1  # a scan queued
    await client.post(
        f"/admin/repos/{repo_id}",
        data={"form_token": form_token(page), "manifest_path": "port.yaml", "remove_secret": "yes"},
    )
    async with api.catalogue.sessions() as session:
        repo = await session.get(Repo, repo_id)
        assert repo is not None
        assert repo.webhook_secret is None
    assert "the old secret" not in (await client.get(f"/admin/repos/{repo_id}")).text
