"""`port repo ...`, `port apps` and `port demo`: the catalogue from the server's shell.

Indexing (git, the manifest parsers) and the examples (Docker) are imported by the
commands that run them, so listing costs only the database.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any, TextIO

import click

from indexer.urls import redact
from manifests.errors import ManifestError
from port.catalogue import queries, repos
from port.catalogue.models import IndexRun, Repo
from port.clitools import Sessions, echo_json, say, shown_database, with_db
from port.settings import Settings, get_settings

if TYPE_CHECKING:
    from port.catalogue.scanning import ScanOutcome


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


@click.group("repo")
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
@click.option(
    "--channel",
    "channels",
    multiple=True,
    metavar="NAME",
    help="An OCI repository's channel whose builds to index (repeatable).",
)
def repo_add(
    url: str,
    branch: str | None,
    manifest_path: str,
    tag_prefix: str,
    webhook_secret_file: TextIO | None,
    channels: tuple[str, ...],
) -> None:
    """Register URL and print its id (it is scanned by `port repo scan`)."""
    secret = webhook_secret_file.read().strip() if webhook_secret_file else None

    async def work(sessions: Sessions, settings: Settings) -> int:
        async with sessions() as session, session.begin():
            repo = await repos.add_repo(
                session,
                url,
                allow_local=settings.allow_local_repos,
                allowed_networks=settings.repo_allowed_networks,
                branch=branch,
                manifest_path=manifest_path,
                tag_prefix=tag_prefix,
                webhook_secret=secret,
                channels=channels,
            )
            return repo.id

    click.echo(with_db(work))


@repo_group.command("channels")
@click.argument("target", metavar="URL_OR_ID")
@click.argument("channels", nargs=-1, metavar="[CHANNEL]...")
def repo_channels(target: str, channels: tuple[str, ...]) -> None:
    """Follow exactly CHANNELs of an OCI repository (none: stop following any). Its
    next scan indexes their builds, and withdraws those of channels no longer followed."""

    async def work(sessions: Sessions, _settings: Settings) -> list[str]:
        async with sessions() as session, session.begin():
            repo = await repos.find_repo(session, target)
            changed = await repos.update_repo(session, repo.id, channels=channels)
            return list(changed.channels)

    followed = with_db(work)
    say(f"follows {', '.join(followed)}" if followed else "follows no channel")


def _print_outcome(repo_url: str, outcome: ScanOutcome) -> None:
    run = outcome.run
    say(f"{redact(repo_url)}: run {run.id} {run.status}")
    if outcome.changes is None:
        say(f"  error: {run.message}", err=True)
        return
    for word, items in (
        ("added", outcome.changes.added),
        ("changed", outcome.changes.changed),
        ("withdrawn", outcome.changes.withdrawn),
    ):
        for item in items:
            say(f"  {word} {item}")
    for error in outcome.changes.errors:
        say(f"  error {error}")


@repo_group.command("scan")
@click.argument("targets", nargs=-1, metavar="[URL_OR_ID]...")
@click.option("--all", "scan_all", is_flag=True, help="Scan every registered repository.")
def repo_scan(targets: tuple[str, ...], scan_all: bool) -> None:
    """Index repositories; exit 1 if a remote could not be read."""
    if not targets and not scan_all:
        raise click.UsageError("name repositories to scan, or pass --all")

    from port.catalogue.jobs import scan_now

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
                outcome = await scan_now(sessions, settings, repo.id, progress, reason="cli")
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
                    "channels": list(r.channels or ()),
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
        say(f"{row['id']:>4}  {row['url']}  {row['branch'] or '(default branch)'}  {head}")


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
        say(f"run {run['id']} {run['status']} {run['started_at']} {counts} {errors}")
        if run["message"]:
            say(f"  {run['message']}")
        for e in run["errors"]:
            say(f"  {ManifestError(**e)}")


def _print_catalogue(apps: list[dict[str, Any]]) -> None:
    if not apps:
        click.echo("the catalogue is empty: `port repo add URL` then `port repo scan --all`")
    for app in apps:
        say(f"{app['identifier']}  {app['name']}  ({app['repo']})")
        for release in app["releases"]:
            marks = " withdrawn" if release["withdrawn"] else ""
            marks += "" if release["current"] else " (history)"
            flavours = ", ".join(f"{f['name']}={f['image']}" for f in release["flavours"])
            say(f"  {release['version']}{marks}: {flavours}")


async def _catalogue(sessions: Sessions) -> list[dict[str, Any]]:
    async with sessions() as session:
        return [queries.app_document(app) for app in await queries.list_apps(session)]


@click.command("apps")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
def apps_command(as_json: bool) -> None:
    """List the catalogue: apps, releases (newest first) and flavours."""
    apps = with_db(lambda sessions, _settings: _catalogue(sessions))
    if as_json:
        echo_json(apps)
    else:
        _print_catalogue(apps)


@click.command("demo")
@click.option(
    "--release",
    "releases",
    multiple=True,
    metavar="APP=VERSION",
    help="Cut one more release of an example app (napari=0.5.1), with its image: an "
    "update for Setups that follow it. Repeatable.",
)
def demo(releases: tuple[str, ...]) -> None:
    """Index the bundled example repositories and print the catalogue (`make demo`).

    With a Docker engine, the example apps' images are built first, so they can run."""
    from port.demo import index_examples, release_examples
    from port.demo_images import build_example_images

    extra: dict[str, tuple[str, ...]] = {}
    for pair in releases:
        app, sep, version = pair.partition("=")
        if not sep or not version:
            raise click.BadParameter(f"{pair!r}: use APP=VERSION", param_hint="--release")
        extra[app] = (*extra.get(app, ()), version)

    if extra:

        async def release(sessions: Sessions, settings: Settings) -> list[str]:
            build_example_images(settings, sys.stdout, extra)
            return await release_examples(sessions, settings, extra)

        for url in with_db(release):
            say(f"queued an index run of {url}")
        click.echo("`make run` (its job worker) indexes them and updates the Setups that follow")
        return

    async def work(sessions: Sessions, settings: Settings) -> list[dict[str, Any]]:
        build_example_images(settings, sys.stdout)
        for url, outcome in await index_examples(sessions, settings, Progress):
            _print_outcome(url, outcome)
        click.echo("")
        return await _catalogue(sessions)

    _print_catalogue(with_db(work))
    click.echo("")
    say(f"catalogue: {shown_database(get_settings())}")
