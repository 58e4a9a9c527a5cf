"""`make run` and `port serve` as real uvicorn processes: start, announce, answer, stop."""

from __future__ import annotations

import os
import signal
import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness import require
from tests.serverproc import PORT, Server, remove_what_it_ran, start, stop


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
        remove_what_it_ran(server)


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


def test_an_example_release_is_cut_and_indexed_from_the_command_line(tmp_path: Path) -> None:
    """`make example-release` cuts a tag; a `port repo scan` in its own process stores
    it. Repro: a scan that changed a registered repo failed in the CLI (a model of
    another domain was never imported: NoReferencedTableError)."""
    if not os.environ.get("PORT_TEST_DOCKER"):
        require("a Docker engine (PORT_TEST_DOCKER, see `make services`)")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PORT_")} | {
        "PORT_DATA_DIR": str(tmp_path),
        "PORT_ALLOW_LOCAL_REPOS": "true",
        "PORT_ALLOWED_REGISTRIES": '["localhost:5000"]',
        "PORT_INSTANCE": "e2ecli",
    }

    def port(*args: str) -> str:
        done = subprocess.run(
            [str(PORT), *args], env=env, capture_output=True, text=True, timeout=120, check=False
        )
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    try:
        port("db", "upgrade")
        assert "built example image localhost:5000/port-examples/napari:0.5.0" in port("demo")
        port("user", "add", "alice")
        port("setup", "create", "napari", "--owner", "alice")  # a Setup of the app: kept
        queued = port("demo", "--release", "napari=0.5.1")
        assert "built example image localhost:5000/port-examples/napari:0.5.1" in queued
        napari = f"file://{tmp_path}/examples/napari"
        assert f"queued an index run of {napari}" in queued
        assert "added napari 0.5.1" in port("repo", "scan", napari)
    finally:
        remove_what_it_ran(None, instance="e2ecli")
