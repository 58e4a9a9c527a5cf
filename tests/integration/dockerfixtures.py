"""Real Docker for backend tests: tiny busybox images, a registry push, a second engine.

No image can be pulled from the internet here, so every test image is built ``FROM
scratch`` with Debian's statically linked busybox (package ``busybox-static``) as its
only file. Images are tagged ``port-test/<name>:<session>`` and removed at the end of
the session; containers carry a per-test ``port.instance`` label, so a test sees only
its own and the finaliser removes them all (``scripts/services.sh`` starts the engine
and the registry on 127.0.0.1:5000).

``SecondEngine`` is a dockerd of its own (own socket, data and exec roots, own network
namespace) that a test may stop and start again without disturbing the engine every
other test uses, or the host.
"""

from __future__ import annotations

import contextlib
import http.client
import http.server
import json
import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker
import docker.errors

from port.demo_images import is_static_elf
from port.deploy.backends.firewall import Firewall
from port.settings import Settings

BUSYBOX = Path("/bin/busybox")
IMAGE_PREFIX = "port-test"

WEBAPP = """mkdir -p /www/cgi-bin && cd /www/cgi-bin
printf '#!/bin/busybox sh\\necho Content-Type: text/plain\\necho\\nenv\\n' > env
printf '#!/bin/busybox sh\\necho Content-Type: text/plain\\necho\\nwc -c\\n' > count
cat > cookie <<'END'
#!/bin/busybox sh
echo 'Content-Type: text/plain'
echo 'Set-Cookie: tossed=1; Domain=apps.localhost; Path=/'
echo 'Set-Cookie: own=1; Path=/'
echo
echo set
END
cat > fetch <<'END'
#!/bin/busybox sh
echo 'Content-Type: text/plain'
echo
target=${QUERY_STRING%%/*} path=/${QUERY_STRING#*/}
request="GET $path HTTP/1.0\\r\\nHost: $target\\r\\n\\r\\n"
if answer=$(printf "$request" | nc -w 3 "${target%:*}" "${target#*:}" 2>&1); then
  echo "$answer" | sed '1,/^\\r*$/d'
else
  echo unreachable
fi
END
chmod +x env count cookie fetch
echo "hello from setup $PORT_SETUP_ID: $GREETING" > /www/index.html
dd if=/dev/zero of=/www/big bs=1048576 count=50 2>/dev/null
exec httpd -f -p 8080 -h /www"""

# name -> Dockerfile lines after `FROM scratch` + busybox. ENTRYPOINT is busybox itself,
# so CMD names an applet ("sh", "env", ...).
BEHAVIOURS = {
    # Runs until stopped; a line at start, then one every 0.2 s.
    "forever": [
        'CMD ["sh", "-c", "echo started; i=0; while true; do i=$((i+1)); echo tick $i; '
        'sleep 0.2; done"]'
    ],
    # Prints a line and exits at once with code 3.
    "exit3": ['CMD ["sh", "-c", "echo failing on purpose; exit 3"]'],
    # Runs until stopped and passes its HEALTHCHECK within a second.
    "healthy": [
        'HEALTHCHECK --interval=1s --timeout=2s --retries=3 CMD ["/bin/busybox", "true"]',
        'CMD ["sh", "-c", "echo started; while true; do sleep 1; done"]',
    ],
    # Ignores SIGTERM: only the SIGKILL after the stop timeout ends it.
    "deaf": ['CMD ["sh", "-c", "trap \'\' TERM; echo started; while true; do sleep 1; done"]'],
    # Serves "hello from setup N" over HTTP on port 8080 (busybox httpd).
    "web": [
        'CMD ["sh", "-c", "mkdir -p /www && echo hello from setup $PORT_SETUP_ID > '
        '/www/index.html && exec httpd -f -p 8080 -h /www"]'
    ],
    # A web app (busybox httpd on 8080, port.yaml's `ports`): its page says which Setup
    # and $GREETING; CGI scripts echo the request's headers (env), count an upload's
    # bytes (count), try to set a cookie for the whole apps domain (cookie) and fetch
    # `?host:port/path` from inside the container (fetch; busybox's nc: its static wget
    # crashes resolving names); /big is 50 MB of zeros.
    "webapp": [f"CMD {json.dumps(['sh', '-c', WEBAPP])}"],
    # Echoes every byte it gets on tcp port 7000, connection after connection.
    "echo": ['CMD ["sh", "-c", "exec nc -ll -p 7000 -e /bin/busybox cat"]'],
    # Prints its environment, then waits to be stopped.
    "env": ['CMD ["sh", "-c", "env; echo env printed; while true; do sleep 1; done"]'],
}


def build_image(client: Any, context: Path, tag: str, lines: list[str]) -> None:
    """Build ``tag``: busybox FROM scratch plus ``lines``; ``context`` holds the busybox."""
    dockerfile = "\n".join(
        ["FROM scratch", "COPY busybox /bin/busybox", 'ENTRYPOINT ["/bin/busybox"]', *lines]
    )
    name = f"Dockerfile.{tag.replace('/', '_').replace(':', '_')}"
    (context / name).write_text(dockerfile + "\n")
    client.images.build(path=str(context), dockerfile=name, tag=tag, rm=True, forcerm=True)


@dataclass
class TestImages:
    """The session's images, by behaviour name (see ``BEHAVIOURS``)."""

    __test__ = False  # not a test class, whatever pytest thinks of the name

    client: Any
    context: Path
    session: str
    tags: dict[str, str] = field(default_factory=dict)
    pushed: list[str] = field(default_factory=list)  # repositories in a registry

    @classmethod
    def build(cls, client: Any, context: Path) -> TestImages:
        if not is_static_elf(BUSYBOX):
            raise RuntimeError(f"{BUSYBOX} is not a static executable: install busybox-static")
        shutil.copy(BUSYBOX, context / "busybox")
        images = cls(client, context, secrets.token_hex(4))
        for name, lines in BEHAVIOURS.items():
            images.tags[name] = images.add(name, lines)
        return images

    def add(self, name: str, lines: list[str]) -> str:
        """Build one more image of the test set; its tag."""
        tag = f"{IMAGE_PREFIX}/{name}:{self.session}"
        build_image(self.client, self.context, tag, lines)
        return tag

    def __getitem__(self, name: str) -> str:
        return self.tags[name]

    def push_unique(self, registry: str, name: str, tag: str | None = None) -> tuple[str, str]:
        """Push an image with a layer no other image has to ``registry`` and remove it here.

        Returns (the image by tag, the same image by tag and digest). The random layer
        makes a pull download bytes (an already present layer would report none). The
        same ``tag`` twice: the second push replaces what it names (a rebuilt tag).
        """
        token = secrets.token_hex(4)
        blob = self.context / f"blob-{token}"
        blob.write_bytes(os.urandom(512 * 1024))
        local = f"{IMAGE_PREFIX}/{name}:{token}"
        build_image(
            self.client, self.context, local, [f"COPY {blob.name} /blob", *BEHAVIOURS["forever"]]
        )
        repository = f"{registry}/{IMAGE_PREFIX}/{name}"
        self.pushed.append(repository)
        tag = tag or token
        self.client.api.tag(local, repository, tag)
        digest = None
        try:
            for line in self.client.api.push(repository, tag, stream=True, decode=True):
                if "error" in line:
                    raise RuntimeError(f"push of {repository}:{tag} failed: {line['error']}")
                digest = (line.get("aux") or {}).get("Digest", digest)
        finally:
            self.client.images.remove(f"{repository}:{tag}", force=True)
            self.client.images.remove(local)
        if digest is None:
            raise RuntimeError(f"push of {repository}:{tag} reported no digest")
        return f"{repository}:{tag}", f"{repository}:{tag}@{digest}"

    def remove(self) -> None:
        """Remove every image of this session, and what tests pulled of its pushes."""
        for image in self.client.images.list():
            refs = [*image.tags, *image.attrs.get("RepoDigests", ())]
            ours = any(ref.startswith(f"{IMAGE_PREFIX}/") for ref in image.tags) and any(
                tag.endswith(f":{self.session}") for tag in image.tags
            )
            if ours or any(
                ref.startswith(f"{repo}:") or ref.startswith(f"{repo}@")
                for repo in self.pushed
                for ref in refs
            ):
                # An image still used by a container another finaliser removes stays.
                with contextlib.suppress(docker.errors.APIError):
                    self.client.images.remove(image.id, force=True)


def remove_instance(client: Any, instance: str) -> list[str]:
    """Force-remove every container of ``instance``, then its networks and firewall
    chains; the containers' short ids."""
    removed = []
    label = {"label": f"port.instance={instance}"}
    for row in client.api.containers(all=True, filters=label):
        with contextlib.suppress(docker.errors.NotFound):  # gone already: fine
            client.api.remove_container(row["Id"], force=True)
            removed.append(row["Id"][:12])
    for network in client.api.networks(filters=label):
        with contextlib.suppress(docker.errors.NotFound):
            client.api.remove_network(network["Id"])
    if os.geteuid() == 0 and shutil.which("iptables"):
        Firewall(instance, []).remove()
    return removed


def describe_containers(client: Any, instance: str | None = None) -> str:
    """Status, logs and `docker inspect` of every container of ``instance`` (None: all)."""
    filters = {"label": f"port.instance={instance}"} if instance else {}
    parts = []
    for row in client.api.containers(all=True, filters=filters):
        cid = row["Id"]
        try:
            logs = client.api.logs(cid, tail=50).decode(errors="replace")
            attrs = client.api.inspect_container(cid)
        except docker.errors.NotFound:
            continue
        parts.append(
            f"--- container {cid[:12]} {row.get('Names')} {row.get('Status')}\n"
            f"--- logs (last 50 lines)\n{logs}\n"
            f"--- inspect\n{json.dumps(attrs, indent=2, default=str)}"
        )
    return "\n".join(parts) or f"no containers (instance {instance or 'any'})"


class SecondEngine:
    """A dockerd of its own, on its own socket, that a test may stop and start again.

    It has its own data root, exec root (and so its own containerd) and pidfile, and
    runs in a network namespace of its own: its bridges, veths and iptables rules live
    and die there, and the host's interfaces (``docker0`` among them: a dockerd with
    ``--bridge=none`` in the host's namespace deletes it) are never touched. ``nsenter
    --net``, not ``ip netns exec``, which remounts /sys and hides the cgroups dockerd
    needs. The directory is short and under /tmp because unix socket paths are limited
    to about 100 characters.
    """

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="port-engine-", dir="/tmp"))
        self.socket = self.root / "docker.sock"
        self.url = f"unix://{self.socket}"
        self.log = self.root / "dockerd.log"
        self.netns = f"port-engine-{secrets.token_hex(4)}"
        self._proc: subprocess.Popen[bytes] | None = None
        subprocess.run(["ip", "netns", "add", self.netns], check=True)
        subprocess.run(
            ["ip", "netns", "exec", self.netns, "ip", "link", "set", "lo", "up"], check=True
        )

    def start(self, timeout: float = 30) -> None:
        """Start dockerd and wait until it answers."""
        if self._proc is not None and self._proc.poll() is None:
            return
        command = [
            "nsenter",
            f"--net=/var/run/netns/{self.netns}",
            "dockerd",
            f"--host={self.url}",
            f"--data-root={self.root / 'data'}",
            f"--exec-root={self.root / 'exec'}",
            f"--pidfile={self.root / 'docker.pid'}",
            "--bridge=none",
        ]
        with self.log.open("ab") as log:
            self._proc = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while True:
            if self._proc.poll() is not None:
                raise RuntimeError(f"dockerd exited with {self._proc.returncode}: {self.tail()}")
            try:
                client = docker.DockerClient(base_url=self.url, timeout=5)
                try:
                    client.ping()
                    return
                finally:
                    client.close()
            except docker.errors.DockerException as exc:
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"dockerd did not answer in {timeout} s: {self.tail()}"
                    ) from exc
                time.sleep(0.1)

    def stop(self, timeout: float = 30) -> None:
        """SIGTERM dockerd (it stops its containers and containerd) and wait for its end."""
        if self._proc is None or self._proc.poll() is not None:
            return
        self._proc.send_signal(signal.SIGTERM)
        try:
            self._proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()

    def client(self) -> Any:
        return docker.DockerClient(base_url=self.url, timeout=30)

    def load(self, source: Any, image: str) -> None:
        """Copy ``image`` from the ``source`` engine (``docker save | docker load``)."""
        data = b"".join(source.images.get(image).save(named=True))
        client = self.client()
        try:
            client.images.load(data)
        finally:
            client.close()

    def tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def destroy(self) -> None:
        """Stop the engine, remove its directories and its namespace (with its bridges)."""
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)
        subprocess.run(["ip", "netns", "delete", self.netns], capture_output=True)


class DelayingRegistry:
    """A registry on 127.0.0.1 that forwards to ``upstream`` and holds every blob back
    until ``release()`` (at most ``hold_seconds``): a pull that a test can keep going.

    ``pulling`` is set when the first blob is asked for, so the test knows the pull is
    under way. Plain threads and http.client: what a slow registry looks like to Docker.
    """

    def __init__(self, upstream: str, hold_seconds: float = 60) -> None:
        self.upstream = upstream
        self.hold_seconds = hold_seconds
        self.pulling = threading.Event()
        self.released = threading.Event()
        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self.address = f"127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> DelayingRegistry:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.release()
        self._server.shutdown()
        self._server.server_close()

    def release(self) -> None:
        self.released.set()

    def _handler(self) -> type[http.server.BaseHTTPRequestHandler]:
        registry = self

        class Forward(http.server.BaseHTTPRequestHandler):
            def log_message(self, *_args: object) -> None:
                pass

            def _forward(self) -> None:
                if "/blobs/" in self.path:
                    registry.pulling.set()
                    registry.released.wait(registry.hold_seconds)
                upstream = http.client.HTTPConnection(registry.upstream, timeout=30)
                try:
                    headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
                    upstream.request(self.command, self.path, headers=headers)
                    answer = upstream.getresponse()
                    body = answer.read()
                    self.send_response(answer.status)
                    for key, value in answer.getheaders():
                        if key.lower() not in ("transfer-encoding", "connection"):
                            self.send_header(key, value)
                    self.end_headers()
                    if self.command != "HEAD":
                        self.wfile.write(body)
                finally:
                    upstream.close()

            do_GET = do_HEAD = _forward

        return Forward


def host_state(client: Any) -> dict[str, list[str]]:
    """What the suite must leave as it found it: interfaces (``docker0`` among them; not
    the veths of other people's containers), network namespaces, the engine's networks
    and the iptables rules of the filter and nat tables."""

    def lines(*command: str) -> list[str]:
        if shutil.which(command[0]) is None:
            return [f"{command[0]}: not installed"]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        return sorted(done.stdout.splitlines())

    interfaces = [
        line.split(":")[1].strip().split("@")[0]
        for line in lines("ip", "-o", "link", "show")
        if line.count(":") >= 2
    ]
    return {
        "interfaces": sorted(i for i in interfaces if not i.startswith("veth")),
        "namespaces": lines("ip", "netns", "list"),
        "networks": sorted(n.name for n in client.networks.list()),
        "iptables filter": lines("iptables", "-w", "5", "-S"),
        "iptables nat": lines("iptables", "-w", "5", "-t", "nat", "-S"),
    }


DockerSettings = Callable[..., Settings]
"""The ``docker_settings`` fixture: Settings with an instance of their own."""
