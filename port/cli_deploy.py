"""`port setup ...` and `port pod ...`: Setups and Pods from the server's shell.

The command line acts as an admin (it has the database). A command that changes intent
(start, stop, restart, delete) then runs one reconcile pass itself, so its effect is
visible at once even when no `port serve` runs; a server's reconciler beside it cannot
twin a container, because a Pod's container name is fixed.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import sys
import time
from contextlib import AbstractAsyncContextManager, suppress
from typing import TYPE_CHECKING, Any

import click
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from port.clitools import Sessions, echo_json, say, with_db
from port.deploy import secrets, setups
from port.deploy.backends.base import BackendUnavailable, PodStatus
from port.deploy.grants import Consent, describe_capability
from port.deploy.models import Pod, Setup, SetupEvent, UpdatePolicy
from port.deploy.selection import ConsentNeeded
from port.errors import InvalidInput, NotFound
from port.principal import CLI
from port.settings import Settings

if TYPE_CHECKING:
    from port.deploy.reconciler import Reconciler

# The reconciler, the updater and the apps' addresses are imported by the commands that
# use them: a listing pays only for the models (`port setup list` starts at once).

START_WAIT_SECONDS = 30  # `setup create --start`: how long a Pod may take to run


def _env(pairs: tuple[str, ...]) -> dict[str, str]:
    env = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep:
            raise click.BadParameter(f"{pair!r}: use NAME=VALUE", param_hint="--env")
        env[name] = value
    return env


GRANT_HELP = (
    "Grant a capability the app asks for: NAME, or NAME=/host/path for a folder or a "
    "device. Repeatable."
)


def _consents(grants: tuple[str, ...]) -> list[Consent]:
    consents = [Consent.parse(g) for g in grants]
    if any(not c.name for c in consents):
        raise click.BadParameter("use NAME or NAME=/host/path", param_hint="--grant")
    return consents


def _flag(capability: dict[str, Any]) -> str:
    """The ``--grant`` that answers ``capability``, as a person would type it."""
    name, kind = capability.get("name"), capability.get("kind")
    return f"--grant {name}=/host/folder" if kind == "folder" else f"--grant {name}"


def _ask(app: str, needed: ConsentNeeded) -> list[Consent]:
    """Ask at the terminal for what the best fitting flavour needs granted; refusing a
    required capability ends the command (nothing was created)."""
    flavour, asks = next(iter(needed.asks.items()))
    say(f"{app} (flavour {flavour}) asks to be granted:", err=True)
    consents = []
    for capability in asks:
        say(f"  {describe_capability(capability)}", err=True)
        if capability.get("description"):
            say(f"    why: {capability['description']}", err=True)
        name, kind = str(capability["name"]), capability.get("kind")
        host: str | None = None
        if kind in ("folder", "device"):
            default = "" if kind == "folder" else str(capability.get("target"))
            host = click.prompt(
                f"  host {kind} to grant as {name} (empty: refuse)",
                default=default,
                show_default=bool(default),
                err=True,
            ).strip()
            granted = bool(host)
        else:
            granted = click.confirm(f"  grant {name}?", default=False, err=True)
        if not granted:
            raise click.ClickException(f"{name} was not granted: {app} cannot run without it")
        consents.append(Consent(name, host))
    return consents


def _refusal(app: str, needed: ConsentNeeded) -> click.ClickException:
    flavour, asks = next(iter(needed.asks.items()))
    wanted = "; ".join(describe_capability(c) for c in asks)
    flags = " ".join(_flag(c) for c in asks)
    return click.ClickException(
        f"{app} (flavour {flavour}) asks to be granted {wanted}. Nothing was created: "
        f"grant it with {flags}"
    )


UNSEEN_HELP = (
    "A secret variable, by name: its value is asked for without echo at a terminal, "
    "else read from this command's environment variable of that name. Repeatable."
)


def _secret_values(names: tuple[str, ...]) -> dict[str, str]:
    """Each named secret's value: typed unseen at a terminal, else from the environment
    (a value on the command line would sit in the shell's history and in `ps`)."""
    values = {}
    for name in names:
        if sys.stdin.isatty():
            values[name] = click.prompt(f"value of {name}", hide_input=True, err=True)
        elif name in os.environ:
            values[name] = os.environ[name]
        else:
            raise click.BadParameter(
                f"{name}: no terminal to ask at, and no environment variable {name}",
                param_hint="--secret",
            )
    return values


def _pod_document(pod: Pod) -> dict[str, Any]:
    return {
        "id": pod.id,
        "setup": pod.setup_id,
        "status": pod.status,
        "flavour": pod.flavour,
        "image": pod.image,
        "image_digest": pod.image_digest,
        "container": pod.container_id[:12] if pod.container_id else None,
        "exit_code": pod.exit_code,
        "restarts": pod.restarts,
        "message": pod.message,
        "retired": pod.retired,
        "selection": pod.selection,
        "grants": pod.grants,
    }


def _setup_document(
    setup: Setup,
    events: list[SetupEvent] | None = None,
    names: dict[int, list[str]] | None = None,
) -> dict[str, Any]:
    """A Setup as the commands print it; ``names``: its secrets' names, by Setup id."""
    names = names or {}
    active = setups.active_pods(setup)
    document = {
        "id": setup.id,
        "app": setup.app.identifier,
        "version": setup.release.version,
        "owner": setup.owner.name,
        "running": setup.wants_running,
        "status": setups.setup_status(setup.pods, setup.wants_running).value,
        "update_policy": setup.update_policy,
        "channel": setup.channel,
        "flavour": setup.flavour,
        "grants": setup.grants,
        "consent_needed": setup.consent_needed,
        "secrets": names.get(setup.id, []),
        "pods": [_pod_document(p) for p in active],
    }
    if events is not None:
        document["events"] = [
            {"at": e.at.isoformat(), "kind": e.kind, "message": e.message} for e in events
        ]
    return document


async def _names(sessions: Sessions, found: list[Setup]) -> dict[int, list[str]]:
    """The names of ``found``'s secrets, by Setup id."""
    async with sessions() as session:
        return await secrets.secret_names(session, [s.id for s in found])


async def _load(sessions: Sessions, setup_id: int | None = None) -> list[Setup]:
    query = setups.visible(CLI).options(
        selectinload(Setup.app),
        selectinload(Setup.release),
        selectinload(Setup.owner),
        selectinload(Setup.pods),
    )
    if setup_id is not None:
        query = query.where(Setup.id == setup_id)
    async with sessions() as session:
        return list(await session.scalars(query))


def _opened(sessions: Sessions, settings: Settings) -> AbstractAsyncContextManager[Reconciler]:
    """A reconciler on the configured backend (``Reconciler.opened``)."""
    from port.deploy.reconciler import Reconciler

    return Reconciler.opened(sessions, settings)


async def _reconcile(sessions: Sessions, settings: Settings) -> None:
    """One pass now; an unreachable engine is reported, the intent is kept."""
    async with _opened(sessions, settings) as reconciler:
        await reconciler.reconcile()


def _print_setups(rows: list[dict[str, Any]]) -> None:
    if not rows:
        click.echo("no setups: `port setup create APP --owner USER --start`")
    for row in rows:
        pods = ", ".join(f"pod {p['id']} {p['status']}" for p in row["pods"]) or "no pod"
        click.echo(
            f"{row['id']:>4}  {row['app']} {row['version']}  {row['owner']}  "
            f"{row['status']}  ({pods})"
        )


@click.group("setup")
def setup_group() -> None:
    """Setups: a user's intent to run an app. The command line acts as an admin."""


@setup_group.command("create")
@click.argument("app")
@click.option("--owner", required=True, help="The user it belongs to.")
@click.option("--version", help="A release (default: the newest current one).")
@click.option(
    "--channel", help="Follow a channel: its build now, each one it moves to (no --policy)."
)
@click.option("--flavour", help="Pin a flavour (default: the best fit for this engine).")
@click.option(
    "--policy",
    type=click.Choice([p.value for p in UpdatePolicy], case_sensitive=False),
    default="NONE",
    show_default=True,
    help="Which new releases it follows.",
)
@click.option("--range", "version_range", help="With --policy RANGE: e.g. '>=1.2.0 <2.0.0'.")
@click.option("--prereleases", is_flag=True, help="Follow pre-releases too.")
@click.option("--env", "env_pairs", multiple=True, metavar="NAME=VALUE", help="Repeatable.")
@click.option("--grant", "grants", multiple=True, metavar="NAME[=HOST_SIDE]", help=GRANT_HELP)
@click.option("--secret", "secret_names", multiple=True, metavar="NAME", help=UNSEEN_HELP)
@click.option("--start", is_flag=True, help="Start it at once.")
def setup_create(
    app: str,
    owner: str,
    version: str | None,
    channel: str | None,
    flavour: str | None,
    policy: str,
    version_range: str | None,
    prereleases: bool,
    env_pairs: tuple[str, ...],
    grants: tuple[str, ...],
    secret_names: tuple[str, ...],
    start: bool,
) -> None:
    """Create a Setup of APP for a user; prints its id. What the app asks to be granted
    is asked for at a terminal, else refused with the --grant options to give."""
    request = setups.SetupRequest(
        app=app,
        version=version,
        channel=channel,
        flavour=flavour,
        update_policy=UpdatePolicy(policy.upper()),
        version_range=version_range,
        include_prereleases=prereleases,
        env=_env(env_pairs),
        grants=tuple(_consents(grants)),
        secrets=_secret_values(secret_names),
    )

    async def work(sessions: Sessions, settings: Settings) -> int | ConsentNeeded:
        async with _opened(sessions, settings) as reconciler:
            caps = await reconciler.capabilities()
        async with sessions() as session, session.begin():
            try:
                setup = await setups.create_setup(
                    session, CLI, request, caps, settings, owner=owner
                )
            except ConsentNeeded as needed:
                return needed
            if start:
                await setups.start_setup(session, setup, caps, settings)
            setup_id = setup.id
        if start:
            await _reconcile(sessions, settings)
            if (why := await _not_started(sessions, settings, setup_id)) is not None:
                raise StartFailed(setup_id, why)
        return setup_id

    try:
        while isinstance(created := with_db(work), ConsentNeeded):
            if not sys.stdin.isatty():
                raise _refusal(app, created)
            more = _ask(app, created)
            request = dataclasses.replace(request, grants=(*request.grants, *more))
        click.echo(created)
    except StartFailed as failed:
        click.echo(failed.setup_id)
        raise click.ClickException(
            f"setup {failed.setup_id} was created, but its Pod did not start: {failed.why}"
        ) from None


class StartFailed(Exception):
    def __init__(self, setup_id: int, why: str) -> None:
        self.setup_id, self.why = setup_id, why


async def _not_started(sessions: Sessions, settings: Settings, setup_id: int) -> str | None:
    """None once the Setup's Pod runs; why not, when it failed or is still not running
    after ``START_WAIT_SECONDS`` (reconcile passes meanwhile, as a server would)."""
    deadline = time.monotonic() + START_WAIT_SECONDS
    while True:
        [setup] = await _load(sessions, setup_id)
        pods = setups.active_pods(setup)
        status = setups.setup_status(setup.pods, setup.wants_running)
        if status is PodStatus.RUNNING:
            return None
        if status is PodStatus.FAILED:
            return (pods[-1].message if pods else None) or "it failed"
        if time.monotonic() > deadline:
            return f"still {status.value} after {START_WAIT_SECONDS} s"
        await asyncio.sleep(0.5)
        await _reconcile(sessions, settings)


@setup_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
def setup_list(as_json: bool) -> None:
    """Every Setup with its active Pods."""

    async def work(sessions: Sessions, _settings: Settings) -> list[dict[str, Any]]:
        found = await _load(sessions)
        names = await _names(sessions, found)
        return [_setup_document(s, names=names) for s in found]

    rows = with_db(work)
    if as_json:
        echo_json(rows)
    else:
        _print_setups(rows)


@setup_group.command("show")
@click.argument("setup_id", type=int, metavar="ID")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
def setup_show(setup_id: int, as_json: bool) -> None:
    """One Setup, its Pods and its last events."""

    from port.apps.addresses import AppOrigins
    from port.apps.published import published_address, published_of
    from port.apps.targets import address_of

    async def work(sessions: Sessions, settings: Settings) -> dict[str, Any]:
        found = await _load(sessions, setup_id)
        if not found:
            raise NotFound(f"no setup {setup_id}")
        async with sessions() as session:
            address = await address_of(session, AppOrigins.of(settings), found[0])
            published = (await published_of(session, [setup_id])).get(setup_id, [])
            events = list(
                await session.scalars(
                    select(SetupEvent)
                    .where(SetupEvent.setup_id == setup_id)
                    .order_by(SetupEvent.id.desc())
                    .limit(20)
                )
            )
        names = await _names(sessions, found)
        return _setup_document(found[0], list(reversed(events)), names) | {
            "address": address,
            "published_ports": [
                {
                    "name": p.name,
                    "protocol": p.protocol,
                    "port": p.container_port,
                    "address": published_address(settings, p),
                }
                for p in published
            ],
        }

    document = with_db(work)
    if as_json:
        echo_json(document)
        return
    _print_setups([document])
    if document["address"]:
        say(f"      address: {document['address']} (its owner signs in to Port)")
    for port in document["published_ports"]:
        say(f"      port {port['name']} ({port['protocol']}, no sign-in): {port['address']}")
    for consent in document["grants"]:
        say(
            f"      granted: {consent['name']}"
            + (f" = {consent['host']}" if "host" in consent else "")
        )
    if waiting := document["consent_needed"]:
        say(
            f"      update to {waiting['version']} waits for your consent: "
            f"`port setup grant {setup_id} --grant ...` (see the last event)"
        )
    for pod in document["pods"]:
        say(f"      pod {pod['id']}: {pod['flavour']} {pod['image']} {pod['status']}")
        if pod["message"]:
            say(f"        {pod['message']}")
        for grant in pod["grants"]:
            given = " -> ".join(str(grant[k]) for k in ("source", "target") if k in grant)
            say(f"        given {grant['kind']} {grant['name']} {given}".rstrip())
    for event in document["events"]:
        say(f"      {event['at']}  {event['kind']}: {event['message']}")


@setup_group.command("secret")
@click.argument("setup_id", type=int, metavar="ID")
@click.argument("names", nargs=-1, required=True, metavar="NAME...")
@click.option("--remove", is_flag=True, help="Remove them instead.")
def setup_secret(setup_id: int, names: tuple[str, ...], remove: bool) -> None:
    """Set secret variables of a Setup (asked for unseen, or read from the environment),
    or remove them. Pods started from now on get them: `port pod restart` a running one."""
    values: dict[str, str | None] = dict.fromkeys(names) if remove else dict(_secret_values(names))

    async def work(sessions: Sessions, settings: Settings) -> None:
        async with sessions() as session, session.begin():
            setup = await setups.get_setup(session, CLI, setup_id)
            await secrets.set_secrets(session, setup, values, settings)

    with_db(work)
    say(f"setup {setup_id}: {'removed' if remove else 'set'} {', '.join(names)}")


@setup_group.command("grant")
@click.argument("setup_id", type=int, metavar="ID")
@click.option("--grant", "grants", multiple=True, metavar="NAME[=HOST_SIDE]", help=GRANT_HELP)
def setup_grant(setup_id: int, grants: tuple[str, ...]) -> None:
    """Replace a Setup's grants with these (none given: withdraw all). An update that
    waits for consent is queued again; a running Pod keeps what it started with."""
    consents = _consents(grants)

    async def work(sessions: Sessions, settings: Settings) -> str | None:
        async with sessions() as session, session.begin():
            setup = await setups.get_setup(session, CLI, setup_id)
            waiting = (setup.consent_needed or {}).get("version")
            await setups.set_grants(session, setup, consents, settings)
            return waiting

    queued = with_db(work)
    say(f"setup {setup_id} grants: {', '.join(grants) or 'none'}")
    if queued:
        say(f"update to {queued} queued: `port worker` (or `port serve`) rolls it out")


def _change(setup_id: int, action: str) -> None:
    async def work(sessions: Sessions, settings: Settings) -> list[dict[str, Any]]:
        async with sessions() as session, session.begin():
            setup = await setups.get_setup(session, CLI, setup_id)
            if action == "start":
                async with _opened(sessions, settings) as reconciler:
                    caps = await reconciler.capabilities()
                await setups.start_setup(session, setup, caps, settings)
            elif action == "stop":
                setups.stop_setup(session, setup)
            else:
                await session.delete(setup)
        try:
            await _reconcile(sessions, settings)
        except BackendUnavailable as exc:
            say(f"warning: {exc}; the change is kept and applied later", err=True)
        found = await _load(sessions, setup_id)
        names = await _names(sessions, found)
        return [_setup_document(s, names=names) for s in found]

    rows = with_db(work)
    if rows:
        _print_setups(rows)
    else:
        say(f"setup {setup_id} deleted")


@setup_group.command("start")
@click.argument("setup_id", type=int, metavar="ID")
def setup_start(setup_id: int) -> None:
    """Start a Setup (a new Pod with the best-fitting flavour)."""
    _change(setup_id, "start")


@setup_group.command("stop")
@click.argument("setup_id", type=int, metavar="ID")
def setup_stop(setup_id: int) -> None:
    """Stop a Setup: its containers are stopped and removed."""
    _change(setup_id, "stop")


@setup_group.command("delete")
@click.argument("setup_id", type=int, metavar="ID")
def setup_delete(setup_id: int) -> None:
    """Delete a Setup and remove its containers."""
    _change(setup_id, "delete")


@setup_group.command("update")
@click.argument("setup_id", type=int, metavar="ID")
@click.argument("version")
def setup_update(setup_id: int, version: str) -> None:
    """Move a Setup to VERSION now: health-gated, rolled back when the new Pod fails."""

    from port.deploy.updater import Updater, manual_target

    async def work(sessions: Sessions, settings: Settings) -> str:
        async with sessions() as session:  # checked here, run here: no job is queued
            await manual_target(session, await setups.get_setup(session, CLI, setup_id), version)
        async with _opened(sessions, settings) as reconciler:
            return await Updater(sessions, settings, reconciler).run(setup_id, version, manual=True)

    click.echo(with_db(work))


@setup_group.command("updates")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
def setup_updates(as_json: bool) -> None:
    """Dry run: which Setups their policy would move now, and to what."""

    from port.deploy.updater import pending_updates

    async def work(sessions: Sessions, _settings: Settings) -> list[dict[str, Any]]:
        async with sessions() as session:
            rows = await _load(sessions)
            found = await pending_updates(session, rows)
        return [
            {
                "setup": s.id,
                "app": s.app.identifier,
                "current": s.release.version,
                "target": target.version,
                "policy": s.follows,
            }
            for s, target in found
        ]

    rows = with_db(work)
    if as_json:
        echo_json(rows)
        return
    if not rows:
        click.echo("no setup would update")
    for row in rows:
        click.echo(
            f"{row['setup']:>4}  {row['app']}  {row['current']} -> {row['target']}  "
            f"({row['policy']})"
        )


@click.group("pod")
def pod_group() -> None:
    """Pods: the containers of Setups."""


@pod_group.command("list")
@click.option("--all", "show_all", is_flag=True, help="Retired Pods too.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
def pod_list(show_all: bool, as_json: bool) -> None:
    """Pods, oldest first."""

    async def work(sessions: Sessions, _settings: Settings) -> list[dict[str, Any]]:
        query = select(Pod).order_by(Pod.id)
        if not show_all:
            query = query.where(Pod.retired.is_(False))
        async with sessions() as session:
            return [_pod_document(p) for p in await session.scalars(query)]

    rows = with_db(work)
    if as_json:
        echo_json(rows)
        return
    for row in rows:
        click.echo(
            f"{row['id']:>4}  setup {row['setup']}  {row['status']}  {row['flavour']}  "
            f"{row['container'] or '-'}  restarts {row['restarts']}"
            + (f"  ({row['message']})" if row["message"] else "")
        )


@pod_group.command("restart")
@click.argument("pod_id", type=int, metavar="ID")
def pod_restart(pod_id: int) -> None:
    """A fresh container for a Pod."""

    async def work(sessions: Sessions, settings: Settings) -> str:
        async with sessions() as session, session.begin():
            setups.restart_pod(session, await setups.get_pod(session, CLI, pod_id))
        await _reconcile(sessions, settings)
        async with sessions() as session:
            return (await setups.get_pod(session, CLI, pod_id)).status

    say(f"pod {pod_id}: {with_db(work)}")


@pod_group.command("logs")
@click.argument("pod_id", type=int, metavar="ID")
@click.option("--tail", default=100, show_default=True, help="Lines of the past to show.")
@click.option("--follow", "-f", is_flag=True, help="Keep printing new lines (Ctrl-C stops).")
def pod_logs(pod_id: int, tail: int, follow: bool) -> None:
    """A Pod's output."""

    async def work(sessions: Sessions, settings: Settings) -> None:
        async with sessions() as session:
            pod = await setups.get_pod(session, CLI, pod_id)
        if pod.container_id is None:
            raise InvalidInput(f"pod {pod_id} has no container ({pod.status})")
        async with _opened(sessions, settings) as reconciler:
            if not follow:
                click.echo(await reconciler.backend.logs(pod.container_id, tail), nl=False)
                return
            async for line in reconciler.backend.follow_logs(pod.container_id, tail):
                click.echo(line)

    with suppress(KeyboardInterrupt):  # Ctrl-C ends --follow; that is not an error
        with_db(work)


@click.group("secrets")
def secrets_group() -> None:
    """The secret key that seals Setups' secrets, and users' Arkitekt redeem tokens."""


@secrets_group.command("new-key")
def secrets_new_key() -> None:
    """Print a fresh key for PORT_SECRET_KEY (keep it as you keep the database)."""
    from port.secretbox import new_key

    click.echo(new_key())


@secrets_group.command("rotate")
def secrets_rotate() -> None:
    """Seal every stored secret again with PORT_SECRET_KEY; run with the old key in
    PORT_PREVIOUS_SECRET_KEYS, then drop it (docs/arkitekt.md)."""

    async def work(sessions: Sessions, settings: Settings) -> int:
        async with sessions() as session, session.begin():
            return await secrets.rotate(session, settings)

    say(f"{with_db(work)} secrets sealed with the current key")


@secrets_group.command("redeem-token")
@click.option("--user", "user_name", required=True, help="Whose token it is.")
@click.option("--forget", is_flag=True, help="Forget the stored token instead.")
def secrets_redeem_token(user_name: str, forget: bool) -> None:
    """Store a user's Arkitekt redeem token (asked for unseen, or read from
    FAKTS_REDEEM_TOKEN): the Pods of their Arkitekt apps get it."""
    from port.accounts.models import User

    token = None if forget else _secret_values((secrets.REDEEM_TOKEN,))[secrets.REDEEM_TOKEN]

    async def work(sessions: Sessions, settings: Settings) -> None:
        async with sessions() as session, session.begin():
            user = await session.scalar(select(User).where(User.name == user_name))
            if user is None:
                raise NotFound(f"no user {user_name}")
            await secrets.set_redeem_token(session, user.id, token, settings)

    with_db(work)
    say(f"{user_name}'s redeem token {'forgotten' if forget else 'stored'}")
