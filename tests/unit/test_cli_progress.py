"""The progress line `port repo scan` draws on a terminal, and keeps off pipes."""

from __future__ import annotations

import io

from port.cli_catalogue import Progress


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_draws_one_line_on_a_terminal() -> None:
    screen = Terminal()
    progress = Progress("acme/apps", screen)
    progress("fetch", 3 << 20, 1 << 30)
    progress("read", 250, 1000)
    progress.close()
    frames = screen.getvalue().split("\r\x1b[2K")
    assert frames[1:] == ["acme/apps: fetch 3.0 MiB", "acme/apps: read 250/1000", ""]


def test_progress_is_silent_on_a_pipe() -> None:
    pipe = io.StringIO()
    progress = Progress("acme/apps", pipe)
    progress("read", 1, 2)
    progress.close()
    assert pipe.getvalue() == ""
