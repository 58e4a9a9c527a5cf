"""`make run` and `port serve` as real uvicorn processes: start, announce, answer, stop."""

from __future__ import annotations

import os
import signal
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.serverproc import Server, start, stop


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Server]:
    """`make run`, the newcomer's command, on a data folder of its own."""
    root = Path(__file__).resolve().parents[2]
    server = start(
        tmp_path, "make", "--no-print-directory", "-C", str(root), "run", f"DATA={tmp_path}"
    )
    try:
        yield server
    finally:
        if server.process.poll() is None:
            os.killpg(server.process.pid, signal.SIGKILL)


def test_make_run_serves_the_examples_and_stops_gracefully(served: Server, tmp_path: Path) -> None:
    assert any(f"{served.base}/graphql" in line for line in served.output)  # where to go
    assert any("Authorization: Bearer" in line for line in served.output)  # how to log in
    with urllib.request.urlopen(f"{served.base}/readyz", timeout=10) as ready:  # noqa: S310
        assert ready.read() == b"ok"
    apps = served.post("{ apps { totalCount edges { node { identifier } } } }")
    assert apps["data"] == {
        "apps": {
            "totalCount": 4,
            "edges": [
                {"node": {"identifier": name}} for name in ("fiji", "napari", "renamer", "stardist")
            ],
        }
    }
    token = served.token()
    me = served.post("{ me { name isAdmin } }", token)
    assert me["data"] == {"me": {"name": "admin", "isAdmin": True}}
    stop(served)

    # Started again on the same data: no second admin, no token in the output.
    again = start(tmp_path)
    try:
        assert not any(line.strip().startswith("port_") for line in again.output)
        assert again.post("{ apps { totalCount } }")["data"] == {"apps": {"totalCount": 4}}
    finally:
        stop(again)
