"""`make run` and `port serve` as real uvicorn processes: start, announce, answer, stop."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

PORT = Path(sys.executable).with_name("port")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Server:
    process: subprocess.Popen[str]
    base: str
    output: list[str]

    def post(self, query: str, token: str | None = None) -> dict[str, object]:
        request = urllib.request.Request(  # noqa: S310 - a URL we built, on 127.0.0.1
            f"{self.base}/graphql",
            data=json.dumps({"query": query}).encode(),
            headers={"Content-Type": "application/json"}
            | ({"Authorization": f"Bearer {token}"} if token else {}),
        )
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            body: dict[str, object] = json.loads(response.read())
            return body

    def token(self) -> str:
        for line in self.output:
            if line.strip().startswith("port_"):
                return line.strip()
        raise AssertionError("no admin token announced:\n" + "".join(self.output))


def start(data: Path, *argv: str) -> Server:
    """Run ``argv`` (default: `port serve`) until uvicorn listens on a free port."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PORT_")}
    env |= {"PORT_DATA_DIR": str(data), "PORT_PORT": str(port), "PORT_ALLOW_LOCAL_REPOS": "true"}
    process = subprocess.Popen(
        list(argv) or [str(PORT), "serve"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # make and its children stop together
    )
    server = Server(process, f"http://127.0.0.1:{port}", [])
    assert process.stdout is not None
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line and process.poll() is not None:
            raise AssertionError("port serve exited:\n" + "".join(server.output))
        server.output.append(line)
        if "Uvicorn running on" in line:
            return server
    process.kill()
    raise AssertionError("port serve did not start:\n" + "".join(server.output))


def stop(server: Server) -> None:
    """SIGTERM, as an orchestrator stops it: requests finish, the lifespan ends cleanly."""
    os.killpg(server.process.pid, signal.SIGTERM)
    code = server.process.wait(timeout=30)
    assert server.process.stdout is not None
    server.output += server.process.stdout.readlines()
    # uvicorn re-raises the signal once shut down, so the exit status says "terminated"
    # (make, stopped by the same signal, reports its own status: 2).
    assert code in (0, -signal.SIGTERM, 2), "".join(server.output)
    assert any("Application shutdown complete" in line for line in server.output)


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
