"""Running git on untrusted remotes: a hardened environment, a deadline, a size watch.

Every git process the indexer starts goes through ``run_git`` (or ``CatFileBatch``,
which uses the same ``git_argv``/``git_env``), so the rules live in one place:

- git never prompts: no terminal prompt, askpass programs that fail, ssh in batch mode,
  credential helpers cleared, stdin closed;
- only the allowed transports work (``protocol.allow=never`` plus an allow-list, and the
  same list in ``GIT_ALLOW_PROTOCOL``), whatever URL reaches git;
- no hooks, no fsmonitor, no replace refs, no inherited ``GIT_DIR``-style variables;
- every call has a deadline; the whole process group is killed when it passes, so ssh
  or upload-pack children do not linger;
- a download can be watched and killed as soon as its directory grows past a limit.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import shutil
import signal
import subprocess
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from indexer.errors import GitTimeoutError, IndexerError, RepoTooLargeError
from indexer.limits import Limits, describe_size
from indexer.urls import redact

log = logging.getLogger(__name__)

REMOTE_PROTOCOLS = ("https", "ssh", "git")
# Environment variables of the caller's own git context that must not leak into ours.
_KEEP_GIT_VARS = frozenset({"GIT_SSL_CAINFO", "GIT_SSL_CAPATH", "GIT_HTTP_USER_AGENT"})
_WATCH_INTERVAL = 0.1


@dataclass(frozen=True, slots=True)
class GitOutput:
    """What a finished git process left: exit status, raw stdout, decoded stderr."""

    returncode: int
    stdout: bytes
    stderr: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    def message(self) -> str:
        """git's error text, shortened and with credentials redacted: safe to show."""
        lines = [ln.strip() for ln in self.stderr.splitlines() if ln.strip()]
        text = "; ".join(ln.removeprefix("fatal: ").removeprefix("error: ") for ln in lines[-3:])
        text = redact(text)
        return text[:400] or f"git exited with status {self.returncode}"


@functools.cache
def _false_program() -> str:
    return shutil.which("false") or "/bin/false"


def git_config(allow_local: bool) -> list[str]:
    """``-c`` options that pin down transports, hooks and credential handling."""
    file_allow = "always" if allow_local else "never"
    pairs = [
        "protocol.allow=never",
        *(f"protocol.{name}.allow=always" for name in REMOTE_PROTOCOLS),
        f"protocol.file.allow={file_allow}",
        "core.hooksPath=/dev/null",
        "core.fsmonitor=false",
        f"core.askPass={_false_program()}",
        "credential.helper=",  # empty value clears helpers configured elsewhere
        "gc.autoDetach=false",  # no background gc outliving the call (and its deadline)
        "maintenance.autoDetach=false",
        "fetch.recurseSubmodules=false",
        "submodule.recurse=false",
    ]
    return [arg for pair in pairs for arg in ("-c", pair)]


def git_argv(args: Sequence[str], *, allow_local: bool) -> list[str]:
    return ["git", *git_config(allow_local), *args]


def git_env(limits: Limits) -> dict[str, str]:
    """The environment of every git process: never prompt, fixed language, no replace refs."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("GIT_") or key in _KEEP_GIT_VARS
    }
    protocols = [*REMOTE_PROTOCOLS, "file"] if limits.allow_local else list(REMOTE_PROTOCOLS)
    connect_timeout = max(1, min(30, int(limits.timeout_seconds)))
    env.update(
        {
            "GIT_TERMINAL_PROMPT": "0",
            "GIT_ASKPASS": _false_program(),
            "SSH_ASKPASS": _false_program(),
            "SSH_ASKPASS_REQUIRE": "never",
            "GCM_INTERACTIVE": "never",
            "GIT_SSH_COMMAND": f"ssh -o BatchMode=yes -o ConnectTimeout={connect_timeout}",
            "GIT_SSH_VARIANT": "ssh",
            "GIT_ALLOW_PROTOCOL": ":".join(protocols),
            "GIT_PROTOCOL_FROM_USER": "0",
            "GIT_NO_REPLACE_OBJECTS": "1",
            "LC_ALL": "C",
            "LANGUAGE": "C",
        }
    )
    return env


def kill_group(proc: subprocess.Popen[bytes]) -> None:
    """Kill a process started with ``start_new_session`` and everything it spawned."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


def tree_size(path: Path) -> int:
    """Bytes in the files under ``path`` (what a download has written so far)."""
    total = 0
    stack = [path]
    while stack:
        try:
            entries = os.scandir(stack.pop())
        except OSError:
            continue
        with entries:
            for entry in entries:
                try:
                    if entry.is_dir(follow_symlinks=False):
                        stack.append(Path(entry.path))
                    else:
                        total += entry.stat(follow_symlinks=False).st_size
                except OSError:
                    continue
    return total


SizeCallback = Callable[[int], None]
"""Told the bytes a download has written so far, every watch interval (progress)."""


class _SizeWatch:
    """Kills a process when a directory it writes to grows past a limit."""

    def __init__(
        self,
        proc: subprocess.Popen[bytes],
        path: Path,
        max_bytes: int,
        on_size: SizeCallback | None = None,
    ) -> None:
        self.proc, self.path, self.max_bytes, self.on_size = proc, path, max_bytes, on_size
        self.exceeded = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="git-size-watch", daemon=True)

    def __enter__(self) -> _SizeWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(_WATCH_INTERVAL):
            size = tree_size(self.path)
            if self.on_size is not None:
                self.on_size(size)
            if size > self.max_bytes:
                self.exceeded = True
                kill_group(self.proc)
                return


def run_git(
    args: Sequence[str],
    *,
    limits: Limits,
    what: str,
    cwd: Path | None = None,
    watch: Path | None = None,
    on_size: SizeCallback | None = None,
) -> GitOutput:
    """Run one git command to completion under ``limits``.

    ``what`` names the operation in errors (it must already be redacted). ``watch`` is a
    directory whose growth past ``limits.max_repo_bytes`` kills the command; ``on_size``
    hears its size while it grows. Raises
    ``GitTimeoutError`` / ``RepoTooLargeError``; a non-zero exit is returned, not raised,
    because only the caller knows whether it means "remote unreachable" or "no".
    """
    try:
        proc = subprocess.Popen(
            git_argv(args, allow_local=limits.allow_local),
            cwd=cwd or "/",
            env=git_env(limits),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,  # one process group: a timeout kills ssh etc. too
        )
    except OSError as exc:
        raise IndexerError(f"cannot run git for {what}: {exc.strerror}") from exc
    watcher = _SizeWatch(proc, watch, limits.max_repo_bytes, on_size) if watch is not None else None
    try:
        with watcher or contextlib.nullcontext():
            stdout, stderr = proc.communicate(timeout=limits.timeout_seconds)
    except subprocess.TimeoutExpired:
        kill_group(proc)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.communicate(timeout=5)  # reap; a stray child holding the pipe must not hang us
        raise GitTimeoutError(
            f"git {what} did not finish within {limits.timeout_seconds:g} seconds"
        ) from None
    finally:
        if proc.poll() is None:  # interrupted: never leave git running
            kill_group(proc)
            proc.wait()
    if watcher is not None and watcher.exceeded:
        raise RepoTooLargeError(
            f"git {what} was stopped: the repository grew past the limit of "
            f"{describe_size(limits.max_repo_bytes)}"
        )
    log.debug("git %s exited with %d", what, proc.returncode)
    return GitOutput(proc.returncode, stdout, stderr.decode("utf-8", "replace"))
