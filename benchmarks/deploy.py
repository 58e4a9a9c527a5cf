"""Deploy benchmark: from createSetup+startSetup to a RUNNING Pod, against `docker run -d`.

Builds a busybox image FROM scratch (Debian's busybox-static), then, in the same run:

- floor: `docker run -d` of that image on the same network, until the command returns
  (the container is running then);
- Port: `port serve` on a fresh SQLite catalogue; one GraphQL request
  `createSetup(input: {app, start: true})`, then the `setupEvents` subscription (a
  websocket, graphql-transport-ws) until its POD_RUNNING event: pushed, so no polling
  load slows the server being measured. The Setup is deleted (untimed) before the next
  round.

Prints the median of each, and Port / floor (target: within 1.3x). Needs a Docker
engine (`make services` starts one).

Usage: python benchmarks/deploy.py [--rounds 10]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import docker
from websockets.sync.client import connect
from websockets.typing import Subprotocol

from benchmarks.report import Target, report
from port import db
from port.accounts.service import create_token
from port.settings import Settings
from tests.deployfakes import add_app, add_user
from tests.integration.dockerfixtures import BUSYBOX, build_image
from tests.serverproc import Server, start, stop

FOREVER = ['CMD ["sh", "-c", "while true; do sleep 1; done"]']
CREATE = """mutation { createSetup(input: {app: "busy", start: true}) {
  setup { id } noFittingFlavour { message } } }"""
EVENTS = "subscription($id: ID!) { setupEvents(setupId: $id) { kind } }"
DELETE = "mutation($id: ID!) { deleteSetup(input: {id: $id}) { deletedId } }"


async def _catalogue(settings: Settings, image: str) -> str:
    await asyncio.to_thread(db.upgrade, settings.sqlalchemy_url)
    engine = db.create_engine(settings.sqlalchemy_url)
    try:
        async with db.sessionmaker(engine)() as session, session.begin():
            await add_app(session, identifier="busy", flavours=(("cpu", image, []),))
            alice = await add_user(session, "alice")
            return (await create_token(session, alice, "bench"))[1]
    finally:
        await engine.dispose()


def floor_round(image: str, network: str) -> float:
    name = f"bench-floor-{secrets.token_hex(4)}"
    began = time.perf_counter()
    subprocess.run(
        ["docker", "run", "-d", "--name", name, "--network", network, image],
        check=True,
        capture_output=True,
    )
    took = time.perf_counter() - began
    subprocess.run(["docker", "rm", "-f", name], check=True, capture_output=True)
    return took


def _until_running(server: Server, token: str, setup_id: str) -> None:
    url = server.base.replace("http://", "ws://") + "/graphql"
    with connect(
        url, subprotocols=[Subprotocol("graphql-transport-ws")], open_timeout=10
    ) as socket:
        socket.send(
            json.dumps({"type": "connection_init", "payload": {"Authorization": f"Bearer {token}"}})
        )
        json.loads(socket.recv(timeout=10))  # connection_ack
        subscribe = {"query": EVENTS, "variables": {"id": setup_id}}
        socket.send(json.dumps({"id": "1", "type": "subscribe", "payload": subscribe}))
        while True:
            message = json.loads(socket.recv(timeout=60))
            if message.get("type") != "next":
                raise SystemExit(f"setupEvents failed: {message}")
            if message["payload"]["data"]["setupEvents"]["kind"] == "POD_RUNNING":
                return


def port_round(server: Server, token: str) -> float:
    began = time.perf_counter()
    created = server.post(CREATE, token)["data"]["createSetup"]
    if created["setup"] is None:
        raise SystemExit(f"createSetup: {created['noFittingFlavour']['message']}")
    setup_id = created["setup"]["id"]
    _until_running(server, token, setup_id)
    took = time.perf_counter() - began
    server.post(DELETE, token, {"id": setup_id})
    return took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args()
    client = docker.from_env()
    instance = f"bench{secrets.token_hex(3)}"
    network = f"{instance}-net"
    with tempfile.TemporaryDirectory() as tmp:
        context = Path(tmp, "context")
        context.mkdir()
        shutil.copy(BUSYBOX, context / "busybox")
        image = f"port-bench/forever:{instance}"
        build_image(client, context, image, FOREVER)
        client.networks.create(network, driver="bridge")
        data = Path(tmp, "data")
        settings = Settings(data_dir=data, instance=instance)
        token = asyncio.run(_catalogue(settings, image))
        env = {
            "PORT_INSTANCE": instance,
            "PORT_DOCKER_NETWORK": network,
            "PORT_ACCESS_LOG": "false",
            "PORT_STOP_TIMEOUT_SECONDS": "1",
        }
        server = start(data, env=env)
        try:
            floor_round(image, network)  # warm both up: first container, first requests
            port_round(server, token)
            floors, ports = [], []
            for _ in range(args.rounds):  # interleaved: noise hits both alike
                floors.append(floor_round(image, network))
                ports.append(port_round(server, token))
        finally:
            stop(server)
            client.networks.get(network).remove()
            client.images.remove(image, force=True)
    floor, port = statistics.median(floors), statistics.median(ports)
    print(f"rounds: {args.rounds} (medians; min-max in brackets)")
    print(
        f"floor  docker run -d:                      {floor * 1000:7.1f} ms "
        f"[{min(floors) * 1000:.0f}-{max(floors) * 1000:.0f}]"
    )
    print(
        f"Port   createSetup(start) -> Pod RUNNING:  {port * 1000:7.1f} ms "
        f"[{min(ports) * 1000:.0f}-{max(ports) * 1000:.0f}]"
    )
    report("deploy", [Target("createSetup -> RUNNING / docker run -d", port, "s", 1.3, floor)])


if __name__ == "__main__":
    main()
