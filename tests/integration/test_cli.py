"""The `port` command: names, output, JSON shapes and exit codes are a contract."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from manifests.native import parse_port_manifest
from port.catalogue.models import Repo
from port.cli import main
from port.settings import get_settings
from tests.harness import Catalogue, run_cli
from tests.integration.gitfixtures import Remote, port_yaml


def test_add_scan_list_runs_apps(port: CliRunner, local_remote: Remote) -> None:
    work = local_remote.work
    work.commit("1.0.0", {"port.yaml": port_yaml("stardist", "1.0.0", ("cuda", "cpu"))})
    work.tag("v1.0.0")
    work.commit("1.1.0", {"port.yaml": port_yaml("stardist", "1.10.0")})
    work.tag("v1.10.0")
    work.commit("broken", {"port.yaml": "apiVersion: port/v1\napp: {identifier: Bad!}\n"})
    work.tag("v2.0.0")
    work.push()

    repo_id = run_cli(port, "repo", "add", local_remote.url).output.strip()
    assert repo_id == "1"
    scanned = run_cli(port, "repo", "scan", repo_id).output  # manifest errors: still exit 0
    assert "added stardist 1.0.0" in scanned
    assert "added stardist 1.10.0" in scanned
    assert "error port.yaml@v2.0.0:2" in scanned

    [repo] = json.loads(run_cli(port, "repo", "list", "--json").output)
    assert (repo["id"], repo["url"]) == (1, local_remote.url)

    [last] = json.loads(run_cli(port, "repo", "runs", local_remote.url, "--json").output)
    assert last["status"] == "succeeded"
    assert {e["ref"] for e in last["errors"]} == {"v2.0.0"}

    [app] = json.loads(run_cli(port, "apps", "--json").output)
    assert app["identifier"] == "stardist"
    assert app["repo"] == local_remote.url
    assert [r["version"] for r in app["releases"]] == ["1.10.0", "1.0.0"]  # semver order
    oldest = app["releases"][1]
    assert (oldest["current"], oldest["withdrawn"]) == (True, False)
    assert [f["name"] for f in oldest["flavours"]] == ["cuda", "cpu"]
    assert oldest["flavours"][0]["selectors"][0]["kind"] == "cpu"
    assert "stardist" in run_cli(port, "apps").output


def test_scan_of_unreadable_remote_exits_non_zero(port: CliRunner, tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.git"
    run_cli(port, "repo", "add", f"file://{missing}")
    result = run_cli(port, "repo", "scan", "--all", code=1)
    assert "failed" in result.output


def test_hostile_and_duplicate_urls_are_refused(port: CliRunner, local_remote: Remote) -> None:
    result = run_cli(port, "repo", "add", "ext::sh -c touch% /tmp/pwned", code=1)
    assert "Error:" in result.output
    run_cli(port, "repo", "add", local_remote.url)
    assert "already registered" in run_cli(port, "repo", "add", local_remote.url, code=1).output
    unknown = run_cli(port, "repo", "scan", "https://git.example/unknown.git", code=1)
    assert "no repository" in unknown.output


def test_scan_without_targets_is_a_usage_error(port: CliRunner) -> None:
    run_cli(port, "repo", "scan", code=2)


def test_manifest_validate(port: CliRunner, tmp_path: Path) -> None:
    good = tmp_path / "port.yaml"
    good.write_text(port_yaml("napari", "0.1.0"))
    assert parse_port_manifest(good.read_text()).errors == []
    assert "ok (napari 0.1.0)" in run_cli(port, "manifest", "validate", str(good)).output

    bad = tmp_path / "bad.yaml"
    bad.write_text("apiVersion: port/v1\napp:\n  identifier: napari\nflavours: {}\n")
    result = run_cli(port, "manifest", "validate", str(good), str(bad), code=1)
    [line] = [x for x in result.output.splitlines() if "bad.yaml" in x]
    assert line.startswith(f"{bad}:4:")  # the file and the line of `flavours: {}`
    assert " flavours:" in line


def test_commands_refuse_an_unmigrated_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PORT_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("PORT_DATABASE_URL", raising=False)
    get_settings.cache_clear()
    try:
        result = run_cli(CliRunner(), "apps", code=1)
        assert "run `port db upgrade`" in result.output
        run_cli(CliRunner(), "db", "upgrade")
        assert "the catalogue is empty" in run_cli(CliRunner(), "apps").output
    finally:
        get_settings.cache_clear()


def test_credentials_never_reach_the_output(port: CliRunner) -> None:
    url = "https://bob:s3cr3t@git.example/acme/apps.git"
    run_cli(port, "repo", "add", url)
    again = run_cli(port, "repo", "add", url, code=1).output
    assert "already registered" in again
    listed = run_cli(port, "repo", "list", "--json").output
    missing = run_cli(port, "repo", "scan", "https://bob:s3cr3t@git.example/other.git", code=1)
    for output in (again, listed, missing.output):
        assert "s3cr3t" not in output
        assert "bob" not in output


def test_unusable_database_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PORT_DATABASE_URL", "postgresql://port:hunter2@127.0.0.1:1/port")
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(main, ["apps"])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 1
    assert "is not usable" in result.output
    assert "hunter2" not in result.output
    assert "Traceback" not in result.output


async def test_repo_add_reads_the_webhook_secret_from_a_file(
    port: CliRunner, catalogue: Catalogue, tmp_path: Path
) -> None:
    secret = tmp_path / "secret"
    secret.write_text("s3cret-of-the-hook\n")
    url = "https://github.com/acme/hooked"
    added = await asyncio.to_thread(
        run_cli, port, "repo", "add", url, "--webhook-secret-file", str(secret)
    )
    assert "s3cret-of-the-hook" not in added.output
    async with catalogue.sessions() as session:
        repo = await session.scalar(select(Repo).where(Repo.url == url))
    assert repo is not None
    assert repo.webhook_secret == "s3cret-of-the-hook"


async def test_text_from_manifests_cannot_drive_the_terminal(
    port: CliRunner, catalogue: Catalogue
) -> None:
    """Repro (issue 16, 8): an app's name with ANSI escapes reached `port apps` raw."""
    from tests.deployfakes import add_app

    async with catalogue.sessions() as session, session.begin():
        app = await add_app(session, identifier="evil")
        app.name = "\x1b[2J\x1b[31mgood app\u202etxt.exe"  # stored before names were checked
    shown = await asyncio.to_thread(run_cli, port, "apps")
    assert "\x1b" not in shown.output
    assert "\u202e" not in shown.output
    assert "evil  \\x1b[2J\\x1b[31mgood app\\u202etxt.exe  (https://example.org/evil.git)" in (
        shown.output
    )
    listed = json.loads((await asyncio.to_thread(run_cli, port, "apps", "--json")).output)
    assert listed[0]["name"] == app.name  # JSON keeps the value, escaped by JSON itself


INSIDE = [
    "git://127.0.0.1/x",
    "https://[::1]/x",
    "https://10.0.0.1/x",
    "https://169.254.169.254/x",  # a cloud's metadata service
    "https://0x7f000001/x",  # 127.0.0.1, as resolvers read it
    "https://2130706433/x",  # likewise
    "https://localhost/x",
    "git@127.0.0.1:acme/x.git",
]


def test_repo_urls_into_the_servers_network_are_refused(
    port: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Repro (issue 16, 14): with local repositories off, URLs of loopback, private and
    link-local hosts were registered (and git's errors told which ports were open)."""
    monkeypatch.setenv("PORT_ALLOW_LOCAL_REPOS", "false")
    get_settings.cache_clear()
    for url in INSIDE:
        refused = run_cli(port, "repo", "add", url, code=1).output
        assert "is not a public address" in refused, url
    assert json.loads(run_cli(port, "repo", "list", "--json").output) == []
    # A name that does not resolve passes (git cannot reach it either).
    run_cli(port, "repo", "add", "https://git.example.invalid/acme/x.git")
    monkeypatch.setenv("PORT_REPO_ALLOWED_NETWORKS", '["127.0.0.0/8"]')
    get_settings.cache_clear()
    run_cli(port, "repo", "add", "git://127.0.0.1/x")  # an admin's network: allowed


@pytest.mark.git
async def test_a_scan_checks_the_address_again_before_git_runs(
    catalogue: Catalogue, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """Registered while local repositories were allowed (or resolving elsewhere): the
    fetch from `git daemon` on 127.0.0.1 is refused before git connects, so nothing of
    the remote's port is told."""
    from port.catalogue import repos
    from port.catalogue.scanning import scan_repo
    from tests.integration.gitfixtures import WorkRepo

    daemon = request.getfixturevalue("git_daemon")
    bare = daemon.base / "checked.git"
    work = WorkRepo(tmp_path / "work", bare)
    work.commit("1.0.0", {"port.yaml": port_yaml("stardist", "1.0.0")})
    work.tag("v1.0.0")
    work.push()
    async with catalogue.sessions() as session, session.begin():
        repo = await repos.add_repo(session, daemon.url(bare), allow_local=True)
    strict = catalogue.settings.model_copy(update={"allow_local_repos": False})
    outcome = await scan_repo(catalogue.sessions, strict, repo.id)
    assert outcome.run.status == "failed"
    assert "127.0.0.1 is not a public address" in (outcome.run.message or "")
    assert not (catalogue.settings.data_dir / "mirrors").exists() or not any(
        (catalogue.settings.data_dir / "mirrors").iterdir()
    )
