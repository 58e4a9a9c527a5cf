"""Hostile URLs, unreachable and slow remotes, size limits: the indexer's outer walls."""

from __future__ import annotations

import logging
import os
import re
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from indexer.errors import GitTimeoutError, RemoteError, RepoTooLargeError, UnsafeUrlError
from indexer.gitcmd import run_git
from indexer.mirror import ensure_mirror, ls_remote
from indexer.result import RepoSpec
from indexer.scan import Limits, index_repo
from tests.harness import free_port
from tests.integration.gitfixtures import GitDaemon, MakeRemote, Remote, port_yaml

pytestmark = pytest.mark.git


@pytest.fixture
def trap(tmp_path: Path) -> Path:
    """A file that a successful injection would create."""
    return tmp_path / "pwned"


def hostile_urls(trap: Path) -> list[str]:
    return [
        f"ext::sh -c touch% {trap}",
        f"ext::sh -c 'touch {trap}'",
        f"--upload-pack=touch {trap}",
        f"-oProxyCommand=touch {trap}",
        f"ssh://-oProxyCommand=touch%20{trap}/x",
        f"git@-oProxyCommand=touch%20{trap}:x",
        "fd::17",
        "fd::17/foo",
        "http::https://example.invalid/x",
        "gopher://example.invalid/x",
        "file:///etc",
        "/etc",
        "https://example.invalid/a\nb",
    ]


@pytest.mark.parametrize("index", range(len(hostile_urls(Path("/t")))))
def test_hostile_urls_are_refused_before_git_runs(tmp_path: Path, trap: Path, index: int) -> None:
    url = hostile_urls(trap)[index]
    mirror = tmp_path / "mirror"

    with pytest.raises(UnsafeUrlError):
        index_repo(RepoSpec(url=url), mirror, None, Limits(timeout_seconds=10))

    with pytest.raises(UnsafeUrlError):
        ls_remote(url, Limits(timeout_seconds=10))
    assert not trap.exists()
    assert not mirror.exists()


def test_git_itself_refuses_helpers_even_if_a_url_slipped_through(trap: Path) -> None:
    """Second wall: the protocol allow-list, for a URL that never met check_url."""
    out = run_git(
        ["ls-remote", "--", f"ext::sh -c touch% {trap}"],
        limits=Limits(allow_local=True, timeout_seconds=10),
        what="ls-remote",
    )
    assert not out.ok
    assert "not allowed" in out.stderr
    assert not trap.exists()


def test_file_urls_need_allow_local(local_remote: Remote) -> None:
    local_remote.work.commit("one", {"port.yaml": port_yaml("hello", "1.0.0")})
    local_remote.work.tag("v1.0.0")
    local_remote.work.push()

    with pytest.raises(UnsafeUrlError, match="local"):
        index_repo(local_remote.spec(), local_remote.mirror, None, Limits(timeout_seconds=10))
    result = index_repo(local_remote.spec(), local_remote.mirror, None, local_remote.limits)
    assert len(result.releases) == 1


def test_plain_paths_work_only_with_allow_local(local_remote: Remote) -> None:
    local_remote.work.commit("one")
    local_remote.work.push()
    spec = RepoSpec(url=str(local_remote.work.bare))

    with pytest.raises(UnsafeUrlError):
        index_repo(spec, local_remote.mirror, None, Limits(timeout_seconds=10))
    assert index_repo(spec, local_remote.mirror, None, local_remote.limits).head is not None


def test_unreachable_remote_is_a_remote_error() -> None:
    url = f"git://127.0.0.1:{free_port()}/nothing.git"

    with pytest.raises(RemoteError, match=re.escape("127.0.0.1")):
        ls_remote(url, Limits(timeout_seconds=10))


def test_missing_repository_on_a_live_daemon_is_a_remote_error(
    git_daemon: GitDaemon, tmp_path: Path
) -> None:
    url = f"git://127.0.0.1:{git_daemon.port}/does-not-exist.git"

    with pytest.raises(RemoteError):
        index_repo(RepoSpec(url=url), tmp_path / "m", None, Limits(timeout_seconds=10))
    assert not (tmp_path / "m").exists()


def test_missing_local_repository_is_a_remote_error(tmp_path: Path) -> None:
    url = f"file://{tmp_path}/nope.git"

    with pytest.raises(RemoteError, match=re.escape("nope.git")):
        index_repo(RepoSpec(url=url), tmp_path / "m", None, Limits(allow_local=True))


def test_credentials_never_appear_in_errors_or_logs(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    url = f"https://alice:s3cr3t-t0ken@127.0.0.1:{free_port()}/repo.git"

    with pytest.raises(RemoteError) as raised:
        index_repo(RepoSpec(url=url), tmp_path / "m", None, Limits(timeout_seconds=10))

    assert "s3cr3t" not in str(raised.value)
    assert "https://***@127.0.0.1" in str(raised.value)
    assert "s3cr3t" not in caplog.text


def test_credentials_are_not_stored_in_the_mirror(local_remote: Remote) -> None:
    local_remote.work.commit("one")
    local_remote.work.push()

    repo = ensure_mirror(local_remote.url, local_remote.mirror, local_remote.limits)

    assert repo.bare
    assert "url" not in (local_remote.mirror / "config").read_text()


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A TCP port that accepts connections and never says a word."""
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    thread.join()
    for conn in held:
        conn.close()
    server.close()


def test_a_hanging_remote_times_out(silent_server: int, tmp_path: Path) -> None:
    url = f"git://127.0.0.1:{silent_server}/repo.git"
    started = time.monotonic()

    with pytest.raises(GitTimeoutError, match="1 seconds"):
        index_repo(RepoSpec(url=url), tmp_path / "m", None, Limits(timeout_seconds=1))

    assert time.monotonic() - started < 10


def test_a_download_is_stopped_when_its_directory_outgrows_the_limit(
    silent_server: int, tmp_path: Path
) -> None:
    """The size watch kills git mid-transfer, without waiting for the timeout."""
    target = tmp_path / "growing"
    target.mkdir()
    (target / "pack").write_bytes(b"\0" * 200_000)
    started = time.monotonic()

    with pytest.raises(RepoTooLargeError, match="stopped"):
        run_git(
            ["ls-remote", "--", f"git://127.0.0.1:{silent_server}/repo.git"],
            limits=Limits(timeout_seconds=30, max_repo_bytes=100_000),
            what="ls-remote",
            watch=target,
        )
    assert time.monotonic() - started < 10


def big_blob(size: int) -> bytes:
    return os.urandom(size)  # incompressible: the pack is as large as the data


def test_too_large_clone_is_refused_and_removed(make_remote: MakeRemote) -> None:
    remote = make_remote()
    remote.work.commit(
        "big", {"port.yaml": port_yaml("hello", "1.0.0"), "blob.bin": big_blob(400_000)}
    )
    remote.work.tag("v1.0.0")
    limits = Limits(
        allow_local=remote.limits.allow_local, timeout_seconds=30, max_repo_bytes=100_000
    )

    with pytest.raises(RepoTooLargeError, match="limit"):
        remote.scan(limits=limits)
    assert not remote.mirror.exists()
    assert not any(p.name.endswith(".tmp") for p in remote.mirror.parent.iterdir())


def test_fetch_that_grows_past_the_limit_removes_the_mirror(make_remote: MakeRemote) -> None:
    remote = make_remote()
    remote.work.commit("small", {"port.yaml": port_yaml("hello", "1.0.0")})
    remote.work.tag("v1.0.0")
    limits = Limits(
        allow_local=remote.limits.allow_local, timeout_seconds=30, max_repo_bytes=200_000
    )
    first = remote.scan(limits=limits)
    remote.work.commit("big", {"blob.bin": big_blob(400_000)})

    with pytest.raises(RepoTooLargeError):
        remote.scan(first, limits=limits)
    assert not remote.mirror.exists()


def test_inherited_git_variables_do_not_leak_into_git(
    local_remote: Remote, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    local_remote.work.commit("one", {"port.yaml": port_yaml("hello", "1.0.0")})
    local_remote.work.tag("v1.0.0")
    monkeypatch.setenv("GIT_DIR", str(tmp_path / "elsewhere"))
    monkeypatch.setenv("GIT_CONFIG_PARAMETERS", "'protocol.allow'='always'")

    result = local_remote.scan()

    assert len(result.releases) == 1
