"""The ``port`` command line. Its command names and JSON shapes are a contract.

A command imports what it needs when it runs: the server (Litestar, Strawberry) only for
`port serve` and `port worker`, the deployment commands only for `port setup` and
`port pod` (a lazy group), so `port --help` and the catalogue commands start quickly.
"""

from __future__ import annotations

import importlib
import logging
import sys
from pathlib import Path
from typing import Any, TextIO

import click
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from indexer.urls import redact
from manifests.errors import ManifestError
from manifests.validate import validate_path
from port import db
from port.accounts import service as accounts
from port.accounts.models import Token
from port.accounts.principal import CLI
from port.catalogue import queries, repos
from port.catalogue.models import IndexRun, Repo
from port.catalogue.scanning import ScanOutcome, scan_repo
from port.clitools import Sessions, echo_json, with_db
from port.demo import index_examples
from port.errors import PortError
from port.settings import Settings, get_settings


class Progress:
    """A one-line progress display of an index run; silent when the stream is no terminal."""

    def __init__(self, label: str, stream: TextIO | None = None) -> None:
        self.label = label
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty()

    @staticmethod
    def line(stage: str, done: int, total: int) -> str:
        if stage == "fetch":  # bytes on disk while git downloads
            return f"fetch {done / (1 << 20):.1f} MiB"
        return f"{stage} {done}/{total}"

    def __call__(self, stage: str, done: int, total: int) -> None:
        if self.enabled:
            self.stream.write(f"\r\x1b[2K{self.label}: {self.line(stage, done, total)}")
            self.stream.flush()

    def close(self) -> None:
        if self.enabled:
            self.stream.write("\r\x1b[2K")
            self.stream.flush()


class LazyGroup(click.Group):
    """A group whose ``lazy`` subcommands are imported only when one is run; `--help`
    lists them from their one-line help without importing them."""

    def __init__(self, *args: Any, lazy: dict[str, tuple[str, str]], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lazy = lazy  # name -> ("module:attribute", one-line help)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*super().list_commands(ctx), *self.lazy])

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.lazy or cmd_name in self.commands:
            return super().get_command(ctx, cmd_name)
        module_name, attribute = self.lazy[cmd_name][0].split(":")
        command: click.Command = getattr(importlib.import_module(module_name), attribute)
        return command

    def _short_help(self, name: str, width: int) -> str:
        if name in self.commands:
            return self.commands[name].get_short_help_str(width)
        return self.lazy[name][1]

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, self._short_help(name, formatter.width)) for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


LAZY = {
    "setup": ("port.cli_deploy:setup_group", "Setups: a user's intent to run an app."),
    "pod": ("port.cli_deploy:pod_group", "Pods: the containers of Setups."),
}


@click.group(cls=LazyGroup, lazy=LAZY)
@click.version_option(package_name="port", message="port %(version)s")
@click.option("-v", "--verbose", is_flag=True, help="Log what Port does to stderr.")
def main(verbose: bool) -> None:
    """Port: a self-hosted, git-fed app store for containerised apps."""
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


@main.command("serve")
@click.option("--host", help="Address to listen on (default: PORT_HOST, 127.0.0.1).")
@click.option("--port", type=int, help="Port to listen on (default: PORT_PORT, 8080).")
@click.option(
    "--with-examples",
    is_flag=True,
    help="Fill an empty catalogue from the bundled example repositories first.",
)
def serve_command(host: str | None, port: int | None, with_examples: bool) -> None:
    """Serve the GraphQL API (migrates the database first)."""
    from port.serve import serve

    settings = get_settings()
    changes = {k: v for k, v in (("host", host), ("port", port)) if v is not None}
    try:
        serve(settings.model_copy(update=changes), examples=with_examples)
    except PortError as exc:
        raise click.ClickException(str(exc)) from exc


@main.command("worker")
def worker_command() -> None:
    """Run background jobs (index runs) and repository polling, without the API.

    Runs until SIGINT/SIGTERM; the current job gets a few seconds to finish, else its
    lease expires and another worker takes it over. Logs to stderr. See docs/jobs.md.
    """
    from port.serve import work

    root = logging.getLogger()
    root.setLevel(min(root.level, logging.INFO))  # a daemon's log is its only output
    try:
        work(get_settings())
    except PortError as exc:
        raise click.ClickException(str(exc)) from exc
    except (SQLAlchemyError, OSError) as exc:  # at start: no database to work on
        shown = make_url(get_settings().sqlalchemy_url).render_as_string(hide_password=True)
        raise click.ClickException(
            f"the catalogue database {shown} is not usable: {type(exc).__name__}: {exc}"
        ) from exc


@main.group("db")
def db_group() -> None:
    """The catalogue database."""


@db_group.command("upgrade")
def db_upgrade() -> None:
    """Apply every pending migration."""
    settings = get_settings()
    db.upgrade(settings.sqlalchemy_url)
    click.echo("database is up to date")


@db_group.command("revision")
@click.option("-m", "--message", required=True, help="What the migration does.")
def db_revision(message: str) -> None:
    """Write a new migration from the difference between models and migrations."""
    click.echo(db.new_revision(message))


@main.group("repo")
def repo_group() -> None:
    """Register, scan and inspect git repositories of apps."""


@repo_group.command("add")
@click.argument("url")
@click.option("--branch", help="Branch to read Arkitekt files from (default: remote HEAD).")
@click.option("--manifest-path", default="port.yaml", show_default=True)
@click.option("--tag-prefix", default="", help="Only tags like PREFIX1.2.3 are releases.")
@click.option(
    "--webhook-secret-file",
    type=click.File(),
    help="File holding the forge webhook's secret (a file, so it stays out of shell history).",
)
def repo_add(
    url: str,
    branch: str | None,
    manifest_path: str,
    tag_prefix: str,
    webhook_secret_file: TextIO | None,
) -> None:
    """Register URL and print its id (it is scanned by `port repo scan`)."""
    secret = webhook_secret_file.read().strip() if webhook_secret_file else None

    async def work(sessions: Sessions, settings: Settings) -> int:
        async with sessions() as session, session.begin():
            repo = await repos.add_repo(
                session,
                url,
                allow_local=settings.allow_local_repos,
                branch=branch,
                manifest_path=manifest_path,
                tag_prefix=tag_prefix,
                webhook_secret=secret,
            )
            return repo.id

    click.echo(with_db(work))


def _print_outcome(repo_url: str, outcome: ScanOutcome) -> None:
    run = outcome.run
    click.echo(f"{redact(repo_url)}: run {run.id} {run.status}")
    if outcome.changes is None:
        click.echo(f"  error: {run.message}", err=True)
        return
    for word, items in (
        ("added", outcome.changes.added),
        ("changed", outcome.changes.changed),
        ("withdrawn", outcome.changes.withdrawn),
    ):
        for item in items:
            click.echo(f"  {word} {item}")
    for error in outcome.changes.errors:
        click.echo(f"  error {error}")


@repo_group.command("scan")
@click.argument("targets", nargs=-1, metavar="[URL_OR_ID]...")
@click.option("--all", "scan_all", is_flag=True, help="Scan every registered repository.")
def repo_scan(targets: tuple[str, ...], scan_all: bool) -> None:
    """Index repositories; exit 1 if a remote could not be read."""
    if not targets and not scan_all:
        raise click.UsageError("name repositories to scan, or pass --all")

    async def work(sessions: Sessions, settings: Settings) -> bool:
        async with sessions() as session:
            chosen: list[Repo] = (
                await repos.list_repos(session)
                if scan_all
                else [await repos.find_repo(session, t) for t in targets]
            )
        ok = True
        for repo in chosen:
            progress = Progress(redact(repo.url))
            try:
                outcome = await scan_repo(sessions, settings, repo.id, progress)
            finally:
                progress.close()
            _print_outcome(repo.url, outcome)
            ok = ok and outcome.changes is not None
        return ok

    if not with_db(work):
        sys.exit(1)


def _run_document(run: IndexRun) -> dict[str, Any]:
    return {
        "id": run.id,
        "status": run.status,
        "started_at": run.started_at.isoformat(),
        "finished_at": run.finished_at.isoformat() if run.finished_at else None,
        "branch": run.branch,
        "commit": run.commit,
        "added": run.added,
        "changed": run.changed,
        "withdrawn": run.withdrawn,
        "message": run.message,
        "errors": [
            {
                "file": e.file,
                "ref": e.ref,
                "line": e.line,
                "column": e.column,
                "path": e.path,
                "message": e.message,
            }
            for e in run.errors
        ],
    }


@repo_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
def repo_list(as_json: bool) -> None:
    """List registered repositories."""

    async def work(sessions: Sessions, _settings: Settings) -> list[dict[str, Any]]:
        async with sessions() as session:
            return [
                {
                    "id": r.id,
                    "url": redact(r.url),
                    "branch": r.branch,
                    "manifest_path": r.manifest_path,
                    "tag_prefix": r.tag_prefix,
                    "head": r.head,
                    "created_at": r.created_at.isoformat(),
                }
                for r in await repos.list_repos(session)
            ]

    rows = with_db(work)
    if as_json:
        echo_json(rows)
        return
    for row in rows:
        head = (row["head"] or "not scanned")[:12]
        click.echo(f"{row['id']:>4}  {row['url']}  {row['branch'] or '(default branch)'}  {head}")


@repo_group.command("runs")
@click.argument("target", metavar="URL_OR_ID")
@click.option("--limit", default=20, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
def repo_runs(target: str, limit: int, as_json: bool) -> None:
    """Show the newest index runs of a repository."""

    async def work(sessions: Sessions, _settings: Settings) -> list[dict[str, Any]]:
        async with sessions() as session:
            repo = await repos.find_repo(session, target)
            return [_run_document(run) for run in await repos.list_runs(session, repo, limit)]

    runs = with_db(work)
    if as_json:
        echo_json(runs)
        return
    for run in runs:
        counts = f"+{len(run['added'])} ~{len(run['changed'])} -{len(run['withdrawn'])}"
        errors = f"{len(run['errors'])} errors"
        click.echo(f"run {run['id']} {run['status']} {run['started_at']} {counts} {errors}")
        if run["message"]:
            click.echo(f"  {run['message']}")
        for e in run["errors"]:
            click.echo(f"  {ManifestError(**e)}")


def _print_catalogue(apps: list[dict[str, Any]]) -> None:
    if not apps:
        click.echo("the catalogue is empty: `port repo add URL` then `port repo scan --all`")
    for app in apps:
        click.echo(f"{app['identifier']}  {app['name']}  ({app['repo']})")
        for release in app["releases"]:
            marks = " withdrawn" if release["withdrawn"] else ""
            marks += "" if release["current"] else " (history)"
            flavours = ", ".join(f"{f['name']}={f['image']}" for f in release["flavours"])
            click.echo(f"  {release['version']}{marks}: {flavours}")


async def _catalogue(sessions: Sessions) -> list[dict[str, Any]]:
    async with sessions() as session:
        return [queries.app_document(app) for app in await queries.list_apps(session)]


@main.command("apps")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
def apps_command(as_json: bool) -> None:
    """List the catalogue: apps, releases (newest first) and flavours."""
    apps = with_db(lambda sessions, _settings: _catalogue(sessions))
    if as_json:
        echo_json(apps)
    else:
        _print_catalogue(apps)


@main.group("manifest")
def manifest_group() -> None:
    """Tools for app authors."""


@manifest_group.command("validate")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
def manifest_validate(paths: tuple[Path, ...]) -> None:
    """Check port.yaml or Arkitekt deployments files; exit 1 on any error."""
    failed = False
    for path in paths:
        parsed = validate_path(path)
        for error in parsed.errors:
            click.echo(str(error), err=True)
        failed = failed or bool(parsed.errors)
        if not parsed.errors:
            versions = ", ".join(f"{r.app.identifier} {r.version}" for r in parsed.releases)
            click.echo(f"{path}: ok{' (' + versions + ')' if versions else ''}")
    if failed:
        sys.exit(1)


@main.command("demo")
def demo() -> None:
    """Index the bundled example repositories and print the catalogue (`make demo`)."""

    async def work(sessions: Sessions, settings: Settings) -> list[dict[str, Any]]:
        for url, outcome in await index_examples(sessions, settings, Progress):
            _print_outcome(url, outcome)
        click.echo("")
        return await _catalogue(sessions)

    _print_catalogue(with_db(work))
    shown = make_url(get_settings().sqlalchemy_url).render_as_string(hide_password=True)
    click.echo(f"\ncatalogue: {shown}")


@main.group("user")
def user_group() -> None:
    """Users of the API (the command line acts as an admin)."""


@user_group.command("add")
@click.argument("name")
@click.option("--admin", is_flag=True, help="May manage users, repos and every token.")
def user_add(name: str, admin: bool) -> None:
    """Add a user and print its id (`port token create --user NAME` gives it a token)."""

    async def work(sessions: Sessions, _settings: Settings) -> int:
        async with sessions() as session, session.begin():
            return (await accounts.create_user(session, name, is_admin=admin)).id

    click.echo(with_db(work))


@user_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
def user_list(as_json: bool) -> None:
    """List users."""

    async def work(sessions: Sessions, _settings: Settings) -> list[dict[str, Any]]:
        async with sessions() as session:
            return [
                {
                    "id": u.id,
                    "name": u.name,
                    "is_admin": u.is_admin,
                    "created_at": u.created_at.isoformat(),
                }
                for u in await accounts.list_users(session)
            ]

    rows = with_db(work)
    if as_json:
        echo_json(rows)
        return
    if not rows:
        click.echo("no users yet: `port user add NAME --admin`")
    for row in rows:
        click.echo(f"{row['id']:>4}  {row['name']}{'  (admin)' if row['is_admin'] else ''}")


@main.group("token")
def token_group() -> None:
    """API tokens: `Authorization: Bearer <token>`. Shown once, stored hashed."""


@token_group.command("create")
@click.option("--user", "user_name", required=True, help="The user the token acts as.")
@click.option("--name", "label", default="cli", show_default=True, help="What it is for.")
def token_create(user_name: str, label: str) -> None:
    """Print a new token, alone on stdout (`TOKEN=$(port token create --user NAME)`)."""

    async def work(sessions: Sessions, _settings: Settings) -> str:
        async with sessions() as session, session.begin():
            user = await accounts.get_user(session, user_name)
            token, secret = await accounts.create_token(session, user, label)
        click.echo(f"token {token.id} of {user_name}: keep it now, it is not shown again", err=True)
        return secret

    click.echo(with_db(work))


def _token_document(token: Token) -> dict[str, Any]:
    return {
        "id": token.id,
        "name": token.name,
        "prefix": token.prefix,
        "created_at": token.created_at.isoformat(),
        "last_used_at": token.last_used_at.isoformat() if token.last_used_at else None,
        "revoked_at": token.revoked_at.isoformat() if token.revoked_at else None,
    }


@token_group.command("list")
@click.option("--user", "user_name", required=True, help="Whose tokens.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
def token_list(user_name: str, as_json: bool) -> None:
    """List a user's tokens (never their secrets: the prefix tells them apart)."""

    async def work(sessions: Sessions, _settings: Settings) -> list[dict[str, Any]]:
        async with sessions() as session:
            user = await accounts.get_user(session, user_name)
            return [_token_document(t) for t in await accounts.list_tokens(session, user.id)]

    rows = with_db(work)
    if as_json:
        echo_json(rows)
        return
    for row in rows:
        state = f"revoked {row['revoked_at']}" if row["revoked_at"] else "active"
        used = row["last_used_at"] or "never"
        click.echo(f"{row['id']:>4}  {row['prefix']}...  {row['name']}  {state}, last used {used}")


@token_group.command("revoke")
@click.argument("token_id", type=int, metavar="ID")
def token_revoke(token_id: int) -> None:
    """Revoke a token: requests that show it fail from now on."""

    async def work(sessions: Sessions, _settings: Settings) -> None:
        async with sessions() as session, session.begin():
            await accounts.revoke_token(session, token_id, by=CLI)

    with_db(work)
    click.echo(f"token {token_id} revoked")
