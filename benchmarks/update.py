"""Update benchmark: from a webhook to the new release's Pod RUNNING and the old one gone.

In the same run, with the image already on the engine (Debian's busybox-static, built
FROM scratch), interleaved round by round:

- floor: a bare `git fetch` of the new tag into a mirror of the repository, plus
  `docker run -d` of the image (until the command returns: the container runs);
- Port: `port serve` on SQLite with a Setup on policy MINOR; the new tag is pushed, then
  one signed GitHub `push` delivery is POSTed to /webhooks/github; timed until the
  Setup's `setupEvents` stream says UPDATE_SUCCEEDED (index job, plan, rollout: pull,
  start, the health gate of PORT_UPDATE_GRACE_SECONDS, old Pod stopped).

Prints medians and Port / (floor + grace) (target: within 1.5x). Needs git and a Docker
engine (`make services` starts one).

Usage: python benchmarks/update.py [--rounds 5] [--grace 1]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import hmac
import json
import secrets
import shutil
import statistics
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

import docker
from websockets.sync.client import connect
from websockets.typing import Subprotocol

from benchmarks.report import Target, report
from port import db
from port.accounts.service import create_token
from port.catalogue.repos import add_repo
from port.settings import Settings
from tests.deployfakes import add_user
from tests.integration.dockerfixtures import BUSYBOX, build_image
from tests.integration.gitfixtures import WorkRepo, image_yaml
from tests.serverproc import Server, free_port, start, stop

SECRET = secrets.token_hex(16)  # the webhook secret of the benchmark repo
FOREVER = ['CMD ["sh", "-c", "while true; do sleep 1; done"]']
EVENTS = "subscription($id: ID!) { setupEvents(setupId: $id) { kind message } }"
SCAN = "mutation($id: ID!) { scanRepo(input: {id: $id}) { run { status } } }"
CREATE = """mutation { createSetup(input: {app: "busy", start: true, updatePolicy: MINOR}) {
  setup { id } noFittingFlavour { message } } }"""


async def _catalogue(settings: Settings, url: str) -> str:
    await asyncio.to_thread(db.upgrade, settings.sqlalchemy_url)
    engine = db.create_engine(settings.sqlalchemy_url)
    try:
        async with db.sessionmaker(engine)() as session, session.begin():
            await add_repo(session, url, allow_local=True, webhook_secret=SECRET)
            alice = await add_user(session, "alice", is_admin=True)
            return (await create_token(session, alice, "bench"))[1]
    finally:
        await engine.dispose()


def webhook(server: Server, url: str, version: str) -> None:
    payload = {
        "ref": f"refs/tags/v{version}",
        "repository": {"clone_url": url, "html_url": url},
        "commits": [],
    }
    body = json.dumps(payload).encode()
    signature = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    request = urllib.request.Request(  # noqa: S310 - our own server on 127.0.0.1
        f"{server.base}/webhooks/github",
        data=body,
        headers={
            "Content-Type": "application/json",
            "X-GitHub-Event": "push",
            "X-GitHub-Delivery": secrets.token_hex(8),
            "X-Hub-Signature-256": signature,
        },
    )
    with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310
        if answer.status != 202:
            raise SystemExit(f"webhook answered {answer.status}")


def until_event(server: Server, token: str, setup_id: str, kinds: set[str], about: str = "") -> str:
    """Wait on setupEvents for one of ``kinds`` whose message mentions ``about`` (the
    stream first replays recent events: earlier rounds' must not count)."""
    url = server.base.replace("http://", "ws://") + "/graphql"
    with connect(url, subprotocols=[Subprotocol("graphql-transport-ws")]) as socket:
        socket.send(
            json.dumps({"type": "connection_init", "payload": {"Authorization": f"Bearer {token}"}})
        )
        socket.recv(timeout=10)
        subscribe = {"query": EVENTS, "variables": {"id": setup_id}}
        socket.send(json.dumps({"id": "1", "type": "subscribe", "payload": subscribe}))
        while True:
            message = json.loads(socket.recv(timeout=120))
            if message.get("type") != "next":
                raise SystemExit(f"setupEvents failed: {message}")
            event = message["payload"]["data"]["setupEvents"]
            if event["kind"] in kinds and about in event["message"]:
                return str(event["kind"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--grace", type=float, default=1.0)
    args = parser.parse_args()
    client = docker.from_env()
    instance = f"bench{secrets.token_hex(3)}"
    network = f"{instance}-net"
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        context = root / "context"
        context.mkdir()
        shutil.copy(BUSYBOX, context / "busybox")
        images = [f"port-bench/updated-{n}:{instance}" for n in ("a", "b")]
        build_image(client, context, images[0], FOREVER)
        client.api.tag(images[0], *images[1].split(":"))
        client.networks.create(network, driver="bridge")
        bare = root / "served" / "remote.git"
        work = WorkRepo(root / "work", bare)
        daemon_port = free_port()
        daemon = subprocess.Popen(
            [
                "git",
                "daemon",
                "--reuseaddr",
                f"--base-path={root / 'served'}",
                "--export-all",
                "--listen=127.0.0.1",
                f"--port={daemon_port}",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        url = f"git://127.0.0.1:{daemon_port}/remote.git"
        hook_url = "https://127.0.0.1/remote.git"  # how a forge would name the same remote
        work.commit("1.0.0", {"port.yaml": image_yaml("busy", "1.0.0", images[0])})
        work.tag("v1.0.0")
        work.push()
        mirror = root / "mirror.git"
        for _ in range(50):  # the daemon takes a moment to listen
            if subprocess.run(["git", "ls-remote", url], capture_output=True).returncode == 0:
                break
            time.sleep(0.1)
        subprocess.run(["git", "clone", "--quiet", "--mirror", url, str(mirror)], check=True)
        data = root / "data"
        token = asyncio.run(_catalogue(Settings(data_dir=data), url))
        env = {
            "PORT_INSTANCE": instance,
            "PORT_DOCKER_NETWORK": network,
            "PORT_ACCESS_LOG": "false",
            "PORT_STOP_TIMEOUT_SECONDS": "1",
            "PORT_UPDATE_GRACE_SECONDS": str(args.grace),
            "PORT_POLL_SECONDS": "0",
        }
        server = start(data, env=env)
        floors, ports = [], []
        try:
            repo_id = base64.b64encode(b"Repo:1").decode()  # the only repository: row 1
            server.post(SCAN, token, {"id": repo_id})
            created = server.post(CREATE, token)["data"]["createSetup"]
            if created["setup"] is None:
                raise SystemExit(f"createSetup: {created['noFittingFlavour']['message']}")
            setup_id = created["setup"]["id"]
            until_event(server, token, setup_id, {"POD_RUNNING"})
            for round_ in range(1, args.rounds + 1):
                version = f"1.{round_}.0"
                image = images[round_ % 2]
                work.commit(version, {"port.yaml": image_yaml("busy", version, image)})
                work.tag(f"v{version}")
                work.push()
                began = time.perf_counter()  # floor: fetch the tag, run the image
                subprocess.run(["git", "-C", str(mirror), "fetch", "--quiet"], check=True)
                name = f"{instance}-floor-{round_}"
                subprocess.run(
                    ["docker", "run", "-d", "--name", name, "--network", network, image],
                    check=True,
                    capture_output=True,
                )
                floors.append(time.perf_counter() - began)
                subprocess.run(["docker", "rm", "-f", name], check=True, capture_output=True)

                began = time.perf_counter()  # Port: webhook to the old Pod gone
                webhook(server, hook_url, version)
                kind = until_event(
                    server, token, setup_id, {"UPDATE_SUCCEEDED", "UPDATE_ROLLED_BACK"}, version
                )
                ports.append(time.perf_counter() - began)
                if kind != "UPDATE_SUCCEEDED":
                    raise SystemExit(f"round {round_}: {kind}")
        finally:
            stop(server)
            daemon.terminate()
            daemon.wait()
            for container in client.containers.list(
                all=True, filters={"label": f"port.instance={instance}"}
            ):
                container.remove(force=True)
            client.networks.get(network).remove()
            for image in images:
                client.images.remove(image, force=True)
    floor, port = statistics.median(floors), statistics.median(ports)
    print(f"rounds: {args.rounds}, grace {args.grace:g} s (medians)")
    print(f"floor  git fetch + docker run -d:            {floor * 1000:7.1f} ms")
    print(f"Port   webhook -> new Pod, old one stopped:  {port * 1000:7.1f} ms")
    print(f"Port minus grace / floor: {(port - args.grace) / floor:.2f}")
    report(
        "update",
        [Target("webhook -> new Pod / (fetch + run + grace)", port, "s", 1.5, floor + args.grace)],
    )


if __name__ == "__main__":
    main()
