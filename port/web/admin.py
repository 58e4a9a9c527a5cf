"""The pages that run the store: repositories (register, scan, read every index run
with its located errors, the webhook URLs to paste into a forge) and users (add, make
admin, set a password, deactivate).

Who may: repositories as ``port.catalogue.repos`` says (admins; any user while
PORT_REPO_ADMIN_ONLY is off, for the repositories they registered), users admins only,
as ``port.accounts.service`` says. A refused field comes back next to that field with
what was typed; a secret typed into a form is never shown again.
"""

from __future__ import annotations

from typing import Any

from litestar import Request, get, post
from litestar.datastructures import State
from litestar.exceptions import HTTPException
from litestar.params import FromPath
from litestar.response import Redirect, Template
from sqlalchemy import func, select

from indexer.urls import redact
from port.accounts import service as accounts
from port.accounts.models import User
from port.catalogue import repos as repo_service
from port.catalogue.jobs import enqueue_index
from port.catalogue.models import App, Repo
from port.errors import ClientError, Forbidden, InvalidInput, NotFound
from port.web.served import Served, render, served_of
from port.web.shared import Shared
from port.web.visitor import Viewer, form_of, known_sessions, to_sign_in, viewer_of
from port.webhooks.forges import webhook_urls

RUNS_SHOWN = 10


async def _manager(request: Request[Any, Any, Any], served: Served) -> Viewer | None:
    """The viewer if they may manage repositories; None: not signed in; 403 otherwise."""
    viewer = await viewer_of(request, served)
    if viewer is not None:
        try:
            repo_service.check_manager(viewer.principal, served.settings)
        except Forbidden as exc:
            raise HTTPException(status_code=403, detail="Only admins run this store.") from exc
    return viewer


async def _admin(request: Request[Any, Any, Any], served: Served) -> Viewer | None:
    viewer = await viewer_of(request, served)
    if viewer is not None and not viewer.is_admin:
        raise HTTPException(status_code=403, detail="Only admins manage users.")
    return viewer


# --- repositories ----------------------------------------------------------------------


async def _repos_page(
    served: Served,
    viewer: Viewer,
    code: int = 200,
    *,
    values: dict[str, str] | None = None,
    error: str | None = None,
    field: str | None = None,
) -> Template:
    async with served.sessions() as session:
        rows = await repo_service.list_repos(session)
        apps = dict(
            (await session.execute(select(App.repo_id, func.count()).group_by(App.repo_id))).all()
        )
        last = {r.id: (await repo_service.list_runs(session, r, limit=1)) for r in rows}
    shown = values or {}
    return render(
        "admin_repos.html",
        viewer,
        code,
        repos=[
            {
                "id": r.id,
                "url": redact(r.url),
                "apps": apps.get(r.id, 0),
                "last": last[r.id][0] if last[r.id] else None,
            }
            for r in rows
        ],
        values={
            key: shown.get(key, default)
            for key, default in (
                ("url", ""),
                ("branch", ""),
                ("manifest_path", "port.yaml"),
                ("tag_prefix", ""),
            )
        },
        error=error,
        field=field,
    )


@get("/admin/repos", name="admin-repos", include_in_schema=False)
async def repos_page(request: Request[Any, Any, Any], state: State) -> Template | Redirect:
    served = served_of(state)
    viewer = await _manager(request, served)
    if viewer is None:
        return to_sign_in(request)
    return await _repos_page(served, viewer)


def _catalogue_changed(served: Served, shared: Shared) -> None:
    """A repository changed on these pages: no kept answer (API or pages) survives it."""
    served.cache.bump()
    shared.clear()


@post("/admin/repos", include_in_schema=False)
async def add_repo(
    request: Request[Any, Any, Any], state: State, shared: Shared
) -> Template | Redirect:
    served = served_of(state)
    viewer = await _manager(request, served)
    if viewer is None:
        return to_sign_in(request)
    fields = await form_of(request, served.settings, viewer.secret)
    try:
        async with served.sessions() as session, session.begin():
            repo = await repo_service.add_repo(
                session,
                fields.get("url", "").strip(),
                allow_local=served.settings.allow_local_repos,
                allowed_networks=served.settings.repo_allowed_networks,
                branch=fields.get("branch", "").strip() or None,
                manifest_path=fields.get("manifest_path", "").strip() or "port.yaml",
                tag_prefix=fields.get("tag_prefix", "").strip(),
                webhook_secret=fields.get("webhook_secret") or None,
                added_by=viewer.principal.user_id,
            )
            await enqueue_index(session, repo.id, "page")  # the first scan, at once
            repo_id = repo.id
    except ClientError as refused:
        field = refused.field if isinstance(refused, InvalidInput) else "url"
        return await _repos_page(
            served, viewer, 400, values=fields, error=str(refused), field=field or "url"
        )
    _catalogue_changed(served, shared)
    served.wake_jobs()
    return Redirect(f"/admin/repos/{repo_id}", status_code=303)


async def _repo(served: Served, viewer: Viewer, repo_id: int) -> Repo:
    async with served.sessions() as session:
        repo = await session.get(Repo, repo_id)
    if repo is None:
        raise HTTPException(status_code=404, detail="There is no such repository.")
    return repo


@get("/admin/repos/{repo_id:int}", include_in_schema=False)
async def repo_page(
    request: Request[Any, Any, Any], state: State, repo_id: FromPath[int]
) -> Template | Redirect:
    served = served_of(state)
    viewer = await _manager(request, served)
    if viewer is None:
        return to_sign_in(request)
    return await _repo_page(served, viewer, repo_id)


async def _repo_page(
    served: Served,
    viewer: Viewer,
    repo_id: int,
    code: int = 200,
    *,
    values: dict[str, str] | None = None,
    error: str | None = None,
    field: str | None = None,
) -> Template:
    repo = await _repo(served, viewer, repo_id)
    async with served.sessions() as session:
        runs = await repo_service.list_runs(session, repo, limit=RUNS_SHOWN)
        apps = list(
            await session.scalars(
                select(App).where(App.repo_id == repo.id).order_by(App.identifier)
            )
        )
    may_change = True
    try:
        repo_service.check_changer(viewer.principal, repo.added_by_id)
    except Forbidden:
        may_change = False
    shown = values or {}
    return render(
        "admin_repo.html",
        viewer,
        code,
        values={
            "branch": shown.get("branch", repo.branch or ""),
            "manifest_path": shown.get("manifest_path", repo.manifest_path),
            "tag_prefix": shown.get("tag_prefix", repo.tag_prefix),
        },
        error=error,
        field=field,
        repo=repo,
        url=redact(repo.url),
        runs=runs,
        apps=apps,
        hooks=webhook_urls(served.settings.public_url),
        may_change=may_change,
    )


@post("/admin/repos/{repo_id:int}", include_in_schema=False)
async def change_repo(
    request: Request[Any, Any, Any], state: State, shared: Shared, repo_id: FromPath[int]
) -> Template | Redirect:
    """Change a repository's branch, manifest path, tag prefix or webhook secret (an
    empty secret field keeps the secret; "remove" drops it). A changed branch, path or
    prefix makes the next scan read everything again; one is queued."""
    served = served_of(state)
    viewer = await _manager(request, served)
    if viewer is None:
        return to_sign_in(request)
    fields = await form_of(request, served.settings, viewer.secret)
    repo = await _repo(served, viewer, repo_id)
    try:
        repo_service.check_changer(viewer.principal, repo.added_by_id)
    except Forbidden as exc:
        raise HTTPException(status_code=403, detail=str(exc)) from exc
    changes: dict[str, Any] = {
        "branch": fields.get("branch", "").strip() or None,
        "manifest_path": fields.get("manifest_path", "").strip() or "port.yaml",
        "tag_prefix": fields.get("tag_prefix", "").strip(),
    }
    if fields.get("remove_secret") == "yes":
        changes["webhook_secret"] = None
    elif fields.get("webhook_secret"):
        changes["webhook_secret"] = fields["webhook_secret"]
    try:
        async with served.sessions() as session, session.begin():
            await repo_service.update_repo(session, repo_id, **changes)
            await enqueue_index(session, repo_id, "page")
    except ClientError as refused:
        field = refused.field if isinstance(refused, InvalidInput) else None
        return await _repo_page(
            served, viewer, repo_id, 400, values=fields, error=str(refused), field=field
        )
    _catalogue_changed(served, shared)
    served.wake_jobs()
    return Redirect(f"/admin/repos/{repo_id}", status_code=303)


@post("/admin/repos/{repo_id:int}/scan", include_in_schema=False)
async def scan_repo(
    request: Request[Any, Any, Any], state: State, repo_id: FromPath[int]
) -> Redirect:
    """Queue an index run (the job worker runs it; the page lists it when done)."""
    served = served_of(state)
    viewer = await _manager(request, served)
    if viewer is None:
        return to_sign_in(request)
    await form_of(request, served.settings, viewer.secret)
    repo = await _repo(served, viewer, repo_id)
    try:
        repo_service.check_changer(viewer.principal, repo.added_by_id)
    except Forbidden as exc:
        raise HTTPException(status_code=403, detail=str(exc)) from exc
    async with served.sessions() as session, session.begin():
        await enqueue_index(session, repo.id, "page")
    served.wake_jobs()
    return Redirect(f"/admin/repos/{repo_id}?scanning=1", status_code=303)


@get("/admin/repos/{repo_id:int}/delete", include_in_schema=False)
async def confirm_repo_delete(
    request: Request[Any, Any, Any], state: State, repo_id: FromPath[int]
) -> Template | Redirect:
    served = served_of(state)
    viewer = await _manager(request, served)
    if viewer is None:
        return to_sign_in(request)
    repo = await _repo(served, viewer, repo_id)
    return render("admin_repo_delete.html", viewer, repo=repo, url=redact(repo.url), error=None)


@post("/admin/repos/{repo_id:int}/delete", include_in_schema=False)
async def delete_repo(
    request: Request[Any, Any, Any], state: State, shared: Shared, repo_id: FromPath[int]
) -> Template | Redirect:
    """Delete a repository, its apps and their releases; refused while users have Setups
    of its apps (they are named)."""
    served = served_of(state)
    viewer = await _manager(request, served)
    if viewer is None:
        return to_sign_in(request)
    await form_of(request, served.settings, viewer.secret)
    repo = await _repo(served, viewer, repo_id)
    try:
        repo_service.check_changer(viewer.principal, repo.added_by_id)
    except Forbidden as exc:
        raise HTTPException(status_code=403, detail=str(exc)) from exc
    try:
        await served.operations.delete_repo(repo_id)
    except ClientError as refused:
        return render(
            "admin_repo_delete.html",
            viewer,
            409,
            repo=repo,
            url=redact(repo.url),
            error=str(refused),
        )
    _catalogue_changed(served, shared)
    return Redirect("/admin/repos", status_code=303)


# --- users -----------------------------------------------------------------------------


async def _users_page(
    served: Served,
    viewer: Viewer,
    code: int = 200,
    *,
    name: str = "",
    error: str | None = None,
    field: str | None = None,
) -> Template:
    async with served.sessions() as session:
        users = await accounts.list_users(session)
    return render(
        "admin_users.html",
        viewer,
        code,
        users=users,
        name=name,
        error=error,
        field=field,
    )


@get("/admin/users", name="admin-users", include_in_schema=False)
async def users_page(request: Request[Any, Any, Any], state: State) -> Template | Redirect:
    served = served_of(state)
    viewer = await _admin(request, served)
    if viewer is None:
        return to_sign_in(request)
    return await _users_page(served, viewer)


@post("/admin/users", include_in_schema=False)
async def add_user(request: Request[Any, Any, Any], state: State) -> Template | Redirect:
    served = served_of(state)
    viewer = await _admin(request, served)
    if viewer is None:
        return to_sign_in(request)
    fields = await form_of(request, served.settings, viewer.secret)
    name = fields.get("name", "").strip()
    try:
        async with served.sessions() as session, session.begin():
            user = await accounts.create_user(session, name, is_admin=fields.get("admin") == "yes")
            if fields.get("password"):
                try:
                    await accounts.set_password(
                        session, user, fields["password"], by=viewer.principal
                    )
                except InvalidInput as exc:
                    raise InvalidInput(str(exc), field="password") from None
    except ClientError as refused:
        field = (refused.field if isinstance(refused, InvalidInput) else None) or "name"
        return await _users_page(served, viewer, 400, name=name, error=str(refused), field=field)
    return Redirect("/admin/users", status_code=303)


USER_ACTIONS = ("password", "admin", "not-admin", "deactivate", "activate")


@post("/admin/users/{user_id:int}", include_in_schema=False)
async def change_user(
    request: Request[Any, Any, Any], state: State, user_id: FromPath[int]
) -> Template | Redirect:
    served = served_of(state)
    viewer = await _admin(request, served)
    if viewer is None:
        return to_sign_in(request)
    fields = await form_of(request, served.settings, viewer.secret)
    action = fields.get("action", "")
    if action not in USER_ACTIONS:
        raise HTTPException(status_code=400, detail="There is no such button.")
    principal = viewer.principal
    try:
        async with served.sessions() as session, session.begin():
            user = await session.get(User, user_id)
            if user is None:
                raise NotFound("there is no such user")
            if action == "password":
                if principal.owns(user.id):  # not without the current one: see /account
                    raise InvalidInput("change your own password on your account page")
                await accounts.set_password(session, user, fields.get("password", ""), by=principal)
            elif action in ("admin", "not-admin"):
                await accounts.set_admin(session, user, action == "admin", by=principal)
            else:
                await accounts.set_active(session, user, action == "activate", by=principal)
        known_sessions(request).forget(user_id=user_id)  # their rights or sessions changed
    except ClientError as refused:
        return await _users_page(served, viewer, 400, error=str(refused), field="row")
    return Redirect("/admin/users", status_code=303)
