"""The install form: which release, which flavour (automatic with its reason, or
pinned), what it may be granted, which updates to follow, the app's environment; then
a Setup that starts.

It creates the Setup through ``Operations.create``, as ``createSetup`` does, so the same
rules refuse the same things; a flavour that cannot run here says why before anyone
clicks, and a refusal comes back next to the field it is about.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from litestar import Request, get, post
from litestar.datastructures import State
from litestar.exceptions import NotFoundException
from litestar.params import FromPath, FromQuery
from litestar.response import Redirect, Template
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from manifests.specs import EnvVar, Run
from port.catalogue.models import App, Release
from port.catalogue.queries import latest_release, listed, newest_first
from port.deploy.models import UpdatePolicy
from port.deploy.policy import channel_build, check_range
from port.deploy.selection import (
    AllGranted,
    Candidate,
    Capabilities,
    ConsentNeeded,
    NoFittingFlavour,
)
from port.deploy.selection import select as select_flavour
from port.deploy.setups import SetupRequest, check_env
from port.errors import ClientError, InvalidInput
from port.web.badges import FlavourView, flavour_view
from port.web.grants import Ask, asks_of, consents_from
from port.web.served import Served, render, served_of
from port.web.visitor import Viewer, form_of, to_sign_in, viewer_of

# One line each, in the words of docs/updates.md.
POLICIES: tuple[tuple[UpdatePolicy, str], ...] = (
    (UpdatePolicy.MINOR, "New features and fixes: 1.x, never 2.0 (recommended)."),
    (UpdatePolicy.PATCH, "Fixes only: 1.2.x."),
    (UpdatePolicy.MAJOR, "Every newer release, 2.0 included."),
    (UpdatePolicy.RANGE, "Releases within a range you write, such as >=1.2.0 <2.0.0."),
    (UpdatePolicy.NONE, "Stay on this release until you update it yourself."),
)
ENV_LINES_MAX = 100


@dataclass(frozen=True, slots=True)
class Choice:
    """What automatic choice would take for the newest release, and why."""

    flavour: str | None
    reason: str


def _automatic(release: Release | None, caps: Capabilities | None) -> Choice:
    if release is None or not release.flavours:
        return Choice(None, "This app has no release to install.")
    if caps is None:
        return Choice(None, "Port chooses when it starts, by what this machine has.")
    try:
        # The choice once what it asks for is granted: the form asks for that below.
        candidates = [Candidate.of(f) for f in release.flavours]
        chosen = select_flavour(candidates, caps, grants=AllGranted())
    except NoFittingFlavour:
        return Choice(None, "No flavour of this release can run on this machine.")
    others = len(release.flavours) - 1
    why = "the only flavour" if not others else "the best fit for this machine"
    if chosen.score.accelerated:
        why += ", with the accelerator it has"
    return Choice(chosen.flavour, f"{chosen.flavour}: {why}.")


def parse_env(text: str) -> dict[str, str]:
    """``NAME=value`` lines (blank lines and ``#`` comments skipped); InvalidInput names
    the line that is not one."""
    env: dict[str, str] = {}
    lines = text.splitlines()
    if len(lines) > ENV_LINES_MAX:
        raise InvalidInput(f"at most {ENV_LINES_MAX} lines of variables")
    for number, line in enumerate(lines, start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        name, equals, value = stripped.partition("=")
        if not equals:
            raise InvalidInput(f"line {number}: write NAME=value")
        env[name.strip()] = value
    return env


async def _app(served: Served, identifier: str) -> App:
    async with served.sessions() as session:
        app = await session.scalar(
            select(App)
            .where(App.identifier == identifier, listed())
            .options(selectinload(App.releases).selectinload(Release.flavours))
        )
    if app is None:
        raise NotFoundException(detail=f"There is no app {identifier!r} in this store.")
    return app


async def _form(
    served: Served,
    viewer: Viewer,
    app: App,
    code: int = 200,
    *,
    values: dict[str, str] | None = None,
    error: str | None = None,
    field: str | None = None,
    reasons: dict[str, tuple[str, ...]] | None = None,
    version: str | None = None,
) -> Template:
    try:
        caps: Capabilities | None = await served.reconciler.capabilities()
    except ClientError:
        caps = None
    installable = [r for r in newest_first(app.releases) if r.current and not r.withdrawn]
    channels = sorted((r.channel, r.version) for r in installable if r.channel is not None)
    newest = latest_release(app.releases)
    if newest is None and channels and not version:
        version = f"{CHANNEL}{channels[0][0]}"  # what the list shows first: a channel
    chosen = values or {}
    # The version chosen (a form sent back, or ?version= when the list changed): its
    # flavours, variables and what it asks are the ones shown.
    release = _chosen(app, chosen.get("version", version))
    flavours: list[FlavourView] = (
        [flavour_view(f, caps) for f in release.flavours] if release is not None else []
    )
    variables = _declared(release)
    asks = _asks(release)
    prefilled = "\n".join(f"{v.name}=" for v in variables if v.required and v.value is None)
    return render(
        "install.html",
        viewer,
        code,
        app=app,
        releases=[r.version for r in installable if r.channel is None],
        channels=channels,
        newest=newest.version if newest is not None else None,
        flavours=flavours,
        automatic=_automatic(release, caps),
        policies=POLICIES,
        values={
            "version": chosen.get("version", version or ""),
            "flavour": chosen.get("flavour", ""),
            "update_policy": chosen.get("update_policy", UpdatePolicy.MINOR.value),
            "version_range": chosen.get("version_range", ""),
            "env": chosen.get("env", prefilled),
            "start": chosen.get("start", "" if values is not None else "yes"),
            **{a.field: chosen.get(a.field, a.default) for a in asks},
        },
        asks=asks,
        variables=variables,
        error=error,
        field=field,
        reasons=reasons or {},
    )


CHANNEL = "channel:"  # the version field's value of a channel: follow it


def _channel_of(version: str | None) -> str | None:
    """The channel a version field's value follows, if it names one."""
    return version.removeprefix(CHANNEL) if version and version.startswith(CHANNEL) else None


def _chosen(app: App, version: str | None) -> Release | None:
    """The release the form asks for: the one named, a channel's build, else the newest."""
    channel = _channel_of(version)
    if channel is not None:
        return channel_build(app.releases, channel)
    named = [r for r in app.releases if version and r.version == version]
    return named[0] if named else latest_release(app.releases)


def _asks(release: Release | None) -> list[Ask]:
    return asks_of(f.capabilities for f in release.flavours) if release is not None else []


def _declared(release: Release | None) -> list[EnvVar]:
    """The variables the release's flavours declare, each name once (the first
    flavour's wording)."""
    found: dict[str, EnvVar] = {}
    for flavour in release.flavours if release is not None else ():
        for var in Run.from_json(flavour.run).env:
            found.setdefault(var.name, var)
    return list(found.values())


@get("/apps/{identifier:str}/install", name="install", include_in_schema=False)
async def install_form(
    request: Request[Any, Any, Any],
    state: State,
    identifier: FromPath[str],
    version: FromQuery[str | None] = None,
) -> Template | Redirect:
    """The form for the newest release, or for ``version`` (the version list asks for
    it when changed: htmx swaps in the form of that release)."""
    served = served_of(state)
    viewer = await viewer_of(request, served)
    if viewer is None:
        return to_sign_in(request)
    app = await _app(served, identifier)
    return await _form(served, viewer, app, version=version[:300] if version else None)


def _checked(fields: dict[str, str], app: App) -> tuple[SetupRequest, bool]:
    """The request the form asks for, and whether to start it; InvalidInput names the
    field it is about, so the page shows it there."""
    version = fields.get("version") or None
    channel = _channel_of(version)
    if channel is not None:
        version = None
    try:
        policy = UpdatePolicy(fields.get("update_policy", ""))
    except ValueError:
        raise InvalidInput("Choose which updates to follow.", field="policy") from None
    if channel is not None:
        policy = UpdatePolicy.NONE  # a Setup on a channel follows it: the choice is moot
    version_range = None
    if policy is UpdatePolicy.RANGE:
        try:
            version_range = check_range(fields.get("version_range"))
        except InvalidInput as exc:
            raise InvalidInput(str(exc), field="version_range") from None
    try:
        env = check_env(parse_env(fields.get("env", "")))
    except InvalidInput as exc:
        raise InvalidInput(str(exc), field="env") from None
    try:
        secrets = parse_env(fields.get("secrets", ""))
    except InvalidInput as exc:
        raise InvalidInput(f"secrets: {exc}", field="secrets") from None
    request = SetupRequest(
        app=app.identifier,
        version=version,
        channel=channel,
        flavour=fields.get("flavour") or None,
        update_policy=policy,
        version_range=version_range,
        env=env,
        secrets=secrets,
        grants=consents_from(fields, _asks(_chosen(app, fields.get("version")))),
    )
    return request, fields.get("start") == "yes"


@post("/apps/{identifier:str}/install", include_in_schema=False)
async def install(
    request: Request[Any, Any, Any], state: State, identifier: FromPath[str]
) -> Template | Redirect:
    served = served_of(state)
    viewer = await viewer_of(request, served)
    if viewer is None:
        return to_sign_in(request)
    fields = await form_of(request, served.settings, viewer.secret)
    app = await _app(served, identifier)
    # Whatever happens next, a page never shows a secret back: it is typed again.
    shown = {k: v for k, v in fields.items() if k != "secrets"}
    try:
        setup_request, start = _checked(fields, app)
        setup_id = await served.operations.create(viewer.principal, setup_request, start=start)
    except ConsentNeeded as refused:
        error = "It needs what it asks for granted: grant it below, or choose another flavour."
        return await _form(
            served, viewer, app, 409, values=shown, error=error, reasons=refused.reasons
        )
    except NoFittingFlavour as refused:
        error = "No flavour of this release can run on this machine."
        return await _form(
            served, viewer, app, 409, values=shown, error=error, reasons=refused.reasons
        )
    except ClientError as refused:
        field = refused.field if isinstance(refused, InvalidInput) else None
        return await _form(served, viewer, app, 400, values=shown, error=str(refused), field=field)
    return Redirect(f"/setups/{setup_id}", status_code=303)
