"""The ``port`` command line. Its command names and JSON shapes are a contract.

A command imports what it needs when it runs: the server (Litestar, Strawberry) only for
`port serve` and `port worker`; each group of commands (`port repo`, `port user`,
`port setup`, ...) lives in a module of its own (cli_catalogue, cli_accounts,
cli_deploy) that is imported only when one of its commands runs. So `port --help` starts
at once, and a command pays only for what it uses.
"""

from __future__ import annotations

import importlib
import logging
import sys
from pathlib import Path
from typing import Any

import click

from port.errors import PortError


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
    "repo": (
        "port.cli_catalogue:repo_group",
        "Register, scan and inspect git repositories of apps.",
    ),
    "apps": (
        "port.cli_catalogue:apps_command",
        "List the catalogue: apps, releases (newest first) and flavours.",
    ),
    "demo": (
        "port.cli_catalogue:demo",
        "Index the bundled example repositories and print the catalogue (`make demo`).",
    ),
    "user": (
        "port.cli_accounts:user_group",
        "Users of the API (the command line acts as an admin).",
    ),
    "token": ("port.cli_accounts:token_group", "API tokens: `Authorization: Bearer <token>`."),
    "setup": ("port.cli_deploy:setup_group", "Setups: a user's intent to run an app."),
    "pod": ("port.cli_deploy:pod_group", "Pods: the containers of Setups."),
    "secrets": (
        "port.cli_deploy:secrets_group",
        "The secret key that seals Setups' secrets, and users' Arkitekt redeem tokens.",
    ),
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
    from port.serve import serve  # the server's weight, only when it serves
    from port.settings import get_settings

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
    from sqlalchemy.exc import SQLAlchemyError

    from port.clitools import unusable_database
    from port.serve import work  # the wiring's weight, only when it works
    from port.settings import get_settings

    root = logging.getLogger()
    root.setLevel(min(root.level, logging.INFO))  # a daemon's log is its only output
    try:
        work(get_settings())
    except PortError as exc:
        raise click.ClickException(str(exc)) from exc
    except (SQLAlchemyError, OSError) as exc:  # at start: no database to work on
        raise unusable_database(get_settings(), exc) from exc


@main.group("db")
def db_group() -> None:
    """The catalogue database."""


@db_group.command("upgrade")
def db_upgrade() -> None:
    """Apply every pending migration."""
    from port import db
    from port.settings import get_settings

    db.upgrade(get_settings().sqlalchemy_url)
    click.echo("database is up to date")


@db_group.command("revision")
@click.option("-m", "--message", required=True, help="What the migration does.")
def db_revision(message: str) -> None:
    """Write a new migration from the difference between models and migrations."""
    from port import db

    click.echo(db.new_revision(message))


@main.group("manifest")
def manifest_group() -> None:
    """Tools for app authors."""


@manifest_group.command("validate")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
def manifest_validate(paths: tuple[Path, ...]) -> None:
    """Check port.yaml or Arkitekt deployments files; exit 1 on any error."""
    from manifests.validate import validate_path

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
