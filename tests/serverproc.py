"""`port serve` (or `make run`) as a real uvicorn process: start, ask, stop."""

from __future__ import annotations

import itertools
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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
    reader: threading.Thread | None = None  # drains the output once the server is up

    def post(
        self, query: str, token: str | None = None, variables: dict[str, object] | None = None
    ) -> dict[str, Any]:
        request = urllib.request.Request(  # noqa: S310 - a URL we built, on 127.0.0.1
            f"{self.base}/graphql",
            data=json.dumps({"query": query, "variables": variables or {}}).encode(),
            headers={"Content-Type": "application/json"}
            | ({"Authorization": f"Bearer {token}"} if token else {}),
        )
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            body: dict[str, Any] = json.loads(response.read())
            return body

    def password(self) -> str:
        """The first admin's password, announced once at the first start."""
        for line, after in itertools.pairwise(self.output):
            if "as admin with the password" in line:
                return after.strip()
        raise AssertionError("no admin password announced:\n" + "".join(self.output))

    def token(self) -> str:
        for line in self.output:
            if line.strip().startswith("port_"):
                return line.strip()
        raise AssertionError("no admin token announced:\n" + "".join(self.output))


def start(data: Path, *argv: str, env: dict[str, str] | None = None) -> Server:
    """Run ``argv`` (default: `port serve`) until uvicorn listens on a free port.

    The process gets none of the caller's PORT_* variables, only ``env`` and its own.
    """
    port = free_port()
    environ = {k: v for k, v in os.environ.items() if not k.startswith("PORT_")}
    environ |= {
        "PORT_DATA_DIR": str(data),
        "PORT_PORT": str(port),
        "PORT": str(port),  # `make run PORT=...`: its own word for the same
        "PORT_ALLOW_LOCAL_REPOS": "true",
        # An instance of its own: its reconciler never touches another Port's containers.
        "PORT_INSTANCE": f"e2e{secrets.token_hex(4)}",
    }
    environ |= env or {}
    process = subprocess.Popen(
        list(argv) or [str(PORT), "serve"],
        env=environ,
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
        if "Application startup complete" in line:  # bound, then started
            server.reader = _drain(server)
            return server
    process.kill()
    raise AssertionError("port serve did not start:\n" + "".join(server.output))


def _drain(server: Server) -> threading.Thread:
    """Read the server's output as it comes: nobody reading a full pipe would stall the
    server's next log line, and with it whatever thread wrote it."""
    stream = server.process.stdout
    assert stream is not None

    def read() -> None:
        for line in stream:
            server.output.append(line)

    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    return thread


def stop(server: Server) -> None:
    """SIGTERM, as an orchestrator stops it: requests finish, the lifespan ends cleanly."""
    os.killpg(server.process.pid, signal.SIGTERM)
    code = server.process.wait(timeout=30)
    if server.reader is not None:
        server.reader.join(timeout=10)
    # uvicorn re-raises the signal once shut down, so the exit status says "terminated"
    # (make, stopped by the same signal, reports its own status: 2).
    assert code in (0, -signal.SIGTERM, 2), "".join(server.output)
    assert any("Application shutdown complete" in line for line in server.output)


def remove_what_it_ran(server: Server | None, instance: str | None = None) -> None:
    """A server's Pods outlive it (a restarted Port adopts them): removed here, with
    their networks, firewall chains and the example images it built. The instance is
    read from the server's output, or named (for commands run without a server).
    Nothing without the test engine (PORT_TEST_DOCKER)."""
    if not os.environ.get("PORT_TEST_DOCKER"):
        return
    import docker

    from port.demo_images import LABEL
    from tests.integration.dockerfixtures import remove_instance

    client = docker.from_env(timeout=30)
    instances = [instance] if instance else []
    for line in server.output if server else []:
        if line.startswith("Port instance "):
            instances.append(line.split()[2].rstrip(":"))
    try:
        for name in instances:
            remove_instance(client, name)
        for image in client.images.list(filters={"label": LABEL}):
            for tag in image.tags:
                client.images.remove(tag, force=True)
    finally:
        client.close()
