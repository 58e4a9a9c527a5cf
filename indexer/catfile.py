"""Reading many git objects through one long-lived ``git cat-file --batch`` process.

An index run reads a manifest at every semver tag. A checkout, or a ``git show`` per tag,
costs a process start each (milliseconds; seconds for a thousand tags). One
``cat-file --batch`` answers all of them on a pipe: the requests are written by a helper
thread while the answers are read, so git never waits for a round trip.
"""

from __future__ import annotations

import contextlib
import logging
import subprocess
import threading
import time
from collections.abc import Generator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO

from indexer.errors import GitTimeoutError, IndexerError
from indexer.gitcmd import git_argv, git_env, kill_group
from indexer.limits import Limits

log = logging.getLogger(__name__)

_CHUNK = 1 << 16


@dataclass(frozen=True, slots=True)
class GitObject:
    """One object as cat-file answered it. ``data`` is None when it exceeded the limit."""

    sha: str
    type: str  # "blob", "tree", "commit" or "tag"
    size: int
    data: bytes | None


class CatFileBatch:
    """One ``git cat-file --batch`` process for a repository, started on first use.

    ``read_many`` yields one answer per request, in order: a ``GitObject``, or None when
    the object (or the path at that revision) does not exist. Objects larger than
    ``max_bytes`` are skipped on the pipe and come back with ``data=None``. When no
    answer arrives within ``limits.timeout_seconds``, the process is killed and
    ``GitTimeoutError`` raised. Use it as a context manager so the process always ends.
    """

    def __init__(self, git_dir: Path, limits: Limits, max_bytes: int | None = None) -> None:
        self.git_dir = git_dir
        self.limits = limits
        self.max_bytes = limits.max_manifest_bytes if max_bytes is None else max_bytes
        self._proc: subprocess.Popen[bytes] | None = None
        self._busy_since: float | None = None
        self._timed_out = False
        self._reading = False

    def __enter__(self) -> CatFileBatch:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.stdin is not None:
            with contextlib.suppress(OSError):
                proc.stdin.close()  # end of input: cat-file exits on its own
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            kill_group(proc)
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()

    def read(self, rev: str) -> GitObject | None:
        """One object by name (``<sha>``, ``<commit>:<path>``), or None if missing."""
        (answer,) = self.read_many([rev])  # consume fully: an open generator would abandon
        return answer

    def read_many(self, revs: Sequence[str]) -> Generator[GitObject | None, None, None]:
        """Answers for ``revs`` in order; stop early and the process is restarted later."""
        for rev in revs:
            if not rev or "\n" in rev or "\r" in rev:
                raise ValueError(f"object name {rev!r} cannot be sent to cat-file")
        if not revs:
            return
        if self._reading:
            raise RuntimeError("CatFileBatch answers one read_many at a time")
        proc = self._start()
        stdin, stdout = proc.stdin, proc.stdout
        if stdin is None or stdout is None:
            raise IndexerError("git cat-file has no pipes")
        writer = threading.Thread(
            target=_write_all, args=(stdin, revs), name="cat-file-writer", daemon=True
        )
        stop = threading.Event()
        watchdog = threading.Thread(
            target=self._watch, args=(proc, stop), name="cat-file-watchdog", daemon=True
        )
        writer.start()
        watchdog.start()
        complete = False
        self._reading = True
        try:
            for _ in revs:
                yield self._answer(stdout)
            complete = True
        finally:
            self._reading = False
            stop.set()
            watchdog.join()
            writer.join(timeout=self.limits.timeout_seconds)
            if not complete:
                # Unread answers would be taken for the next request's: start afresh.
                self._abandon()

    def _start(self) -> subprocess.Popen[bytes]:
        if self._proc is not None:
            if self._proc.poll() is None:
                return self._proc
            self._abandon()  # it died: release its pipes before starting another
        self._timed_out = False
        try:
            self._proc = subprocess.Popen(
                git_argv(["cat-file", "--batch"], allow_local=self.limits.allow_local),
                cwd=self.git_dir,
                env=git_env(self.limits),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
        except OSError as exc:
            raise IndexerError(f"cannot run git cat-file: {exc.strerror}") from exc
        return self._proc

    def _abandon(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            kill_group(proc)
            proc.wait()
            for stream in (proc.stdin, proc.stdout):
                if stream is not None:
                    with contextlib.suppress(OSError):
                        stream.close()

    def _watch(self, proc: subprocess.Popen[bytes], stop: threading.Event) -> None:
        """Kill cat-file when one answer takes longer than the timeout."""
        timeout = self.limits.timeout_seconds
        interval = min(0.5, timeout / 4)
        while not stop.wait(interval):
            since = self._busy_since
            if since is not None and time.monotonic() - since > timeout:
                self._timed_out = True
                kill_group(proc)
                return

    def _answer(self, out: IO[bytes]) -> GitObject | None:
        self._busy_since = time.monotonic()
        header = out.readline()
        if not header.endswith(b"\n"):
            raise self._died()
        if header.endswith((b" missing\n", b" ambiguous\n")):
            self._busy_since = None
            return None
        try:
            sha, kind, size_text = header.split()
            size = int(size_text)
        except ValueError:
            raise IndexerError(f"git cat-file answered {header[:100]!r}") from None
        if size > self.max_bytes:
            if not _skip(out, size + 1):
                raise self._died()
            data = None
        else:
            data = out.read(size)
            if len(data) != size or out.read(1) != b"\n":
                raise self._died()
        self._busy_since = None
        return GitObject(sha.decode(), kind.decode(), size, data)

    def _died(self) -> IndexerError:
        self._abandon()
        if self._timed_out:
            return GitTimeoutError(
                f"git cat-file gave no answer within {self.limits.timeout_seconds:g} seconds"
            )
        return IndexerError("git cat-file stopped unexpectedly")


def _write_all(stdin: IO[bytes], revs: Sequence[str]) -> None:
    try:
        stdin.write("".join(f"{rev}\n" for rev in revs).encode())
        stdin.flush()
    except (BrokenPipeError, ValueError, OSError):
        pass  # the reader notices the dead process and reports it


def _skip(out: IO[bytes], count: int) -> bool:
    """Discard ``count`` bytes of an object too large to keep; False if the pipe ended."""
    while count > 0:
        chunk = out.read(min(count, _CHUNK))
        if not chunk:
            return False
        count -= len(chunk)
    return True
