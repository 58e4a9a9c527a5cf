"""`port serve` as a real uvicorn process: start, announce, answer, stop gracefully."""

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


def start(data: Path, *args: str) -> Server:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PORT_")}
    env |= {"PORT_DATA_DIR": str(data), "PORT_PORT": str(port), "PORT_ALLOW_LOCAL_REPOS": "true"}
    process = subprocess.Popen(
        [str(PORT), "serve", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
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
    server.process.send_signal(signal.SIGTERM)
    code = server.process.wait(timeout=30)
    assert server.process.stdout is not None
    server.output += server.process.stdout.readlines()
    # uvicorn re-raises the signal once shut down, so the exit status says "terminated".
    assert code in (0, -signal.SIGTERM), "".join(server.output)
    assert any("Application shutdown complete" in line for line in server.output)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Server]:
    server = start(tmp_path, "--with-examples")
    try:
        yield server
    finally:
        if server.process.poll() is None:
            server.process.kill()


def test_serve_with_examples_answers_and_stops_gracefully(served: Server, tmp_path: Path) -> None:
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

    # Started again on the same data: no second admin, no second token in the output.
    again = start(tmp_path)
    try:
        assert not any(line.strip().startswith("port_") for line in again.output)
    finally:
        stop(again)
