"""Proxy benchmark: an app through Port's app proxy against the same app reached directly.

Builds a web app image (busybox httpd FROM scratch: a small page and a 10 MB file), a
git repository whose port.yaml serves it on port 8080, and runs `port serve` on it
with the Docker engine. Signs in as the first admin, installs and starts the app, and
enters its origin as a browser does (Open, the one-time code, the origin's cookie).
Then a second process (benchmarks/loadgen.py) loads the page and the file through
the proxy (Port's port, the app's Host and cookie) and directly from the container's
address: the floor, measured in the same run. Prints requests/s, p50 and MB/s of
both and their ratios (targets: Port >= 0.5 x direct requests/s for the page, and
>= 0.5 x direct MB/s for the file).

busybox httpd closes its connection after every answer; the proxy keeps the client's
open, and opens one to the app per request, as the direct client does.

Needs root and a Docker engine (`make services`). Usage:
    python benchmarks/proxy.py [--seconds 5] [--connections 8]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import docker
import httpx

from benchmarks.api import PORT, admin_password, free_port, load, start, stop
from benchmarks.report import Target, report
from port.demo_images import BUSYBOX, is_static_elf
from port.deploy.backends.firewall import Firewall

IMAGE = "localhost:5000/port-bench/web:1"
PAGE = b"<!doctype html><title>bench</title><p>" + b"The app's page. " * 60 + b"</p>\n"
BIG_MB = 10
SERVE = (
    f"mkdir -p /www && dd if=/dev/zero of=/www/big bs=1048576 count={BIG_MB} 2>/dev/null "
    "&& exec httpd -f -p 8080 -h /www"
)
MANIFEST = f"""apiVersion: port/v1
app: {{identifier: web, name: Web}}
ports: [{{name: web, port: 8080, protocol: http, path: /}}]
flavours:
  plain: {{image: "{IMAGE}"}}
"""
FORM_TOKEN = re.compile(r'name="form_token" value="([0-9a-f]+)"')


def build_image(client: Any, context: Path) -> None:
    if not is_static_elf(BUSYBOX):
        raise SystemExit(f"{BUSYBOX} is not a static executable: install busybox-static")
    shutil.copy(BUSYBOX, context / "busybox")
    (context / "index.html").write_bytes(PAGE)
    (context / "Dockerfile").write_text(
        "FROM scratch\nCOPY busybox /bin/busybox\nCOPY index.html /www/index.html\n"
        'ENTRYPOINT ["/bin/busybox"]\n'
        f"CMD {json.dumps(['sh', '-c', SERVE])}\n"
    )
    client.images.build(path=str(context), tag=IMAGE, rm=True, forcerm=True)


def app_repository(root: Path) -> str:
    repo = root / "web"
    repo.mkdir()
    (repo / "port.yaml").write_text(MANIFEST)
    env = os.environ | {"GIT_AUTHOR_NAME": "b", "GIT_AUTHOR_EMAIL": "b@example.org"}
    env |= {"GIT_COMMITTER_NAME": "b", "GIT_COMMITTER_EMAIL": "b@example.org"}
    for args in (
        ["init", "--quiet", "--initial-branch=main"],
        ["add", "port.yaml"],
        ["commit", "--quiet", "-m", "web 1.0.0"],
        ["tag", "v1.0.0"],
    ):
        subprocess.run(["git", "-C", str(repo), *args], check=True, env=env)
    return f"file://{repo}"


def port_command(env: dict[str, str], *args: str) -> None:
    subprocess.run([str(PORT), *args], env=env, check=True, capture_output=True, timeout=120)


def enter(base: str, password: str) -> tuple[int, str, str]:
    """Sign in, install and start the app, enter its origin: (setup id, the app's
    Host, the origin's cookie header)."""
    number = httpx.URL(base).port
    with httpx.Client(base_url=base, timeout=60) as port:
        form = port.get("/sign-in").text
        token = FORM_TOKEN.search(form)
        assert token, form
        signed = port.post(
            "/sign-in", data={"form_token": token[1], "name": "admin", "password": password}
        )
        assert signed.status_code == 303, signed.text
        form = port.get("/apps/web/install").text
        token = FORM_TOKEN.search(form)
        assert token, form
        installed = port.post(
            "/apps/web/install",
            data={"form_token": token[1], "update_policy": "NONE", "start": "yes"},
        )
        assert installed.status_code == 303, installed.text
        setup_id = int(installed.headers["location"].rsplit("/", 1)[1])
        host = f"web-{setup_id}.apps.localhost:{number}"
        deadline = time.monotonic() + 120
        with httpx.Client(base_url=f"http://127.0.0.1:{number}", headers={"Host": host}) as app:
            while time.monotonic() < deadline:
                link = httpx.URL(port.get(f"/setups/{setup_id}/open").headers["location"])
                entered = app.get(f"{link.path}?{link.query.decode()}")
                cookie = entered.headers.get("set-cookie", "").split(";")[0]
                page = app.get("/", headers={"Cookie": cookie})
                if page.status_code == 200 and page.content == PAGE:
                    return setup_id, host, f"Cookie: {cookie}"
                time.sleep(0.5)  # starting: the app's status page, 503
    raise RuntimeError("the app did not serve its page through the proxy")


def container_address(client: Any, instance: str, setup_id: int) -> str:
    labels = [f"port.instance={instance}", f"port.setup={setup_id}"]
    (container,) = client.containers.list(filters={"label": labels})
    networks = container.attrs["NetworkSettings"]["Networks"]
    return str(next(iter(networks.values()))["IPAddress"])


def remove_instance(client: Any, instance: str) -> None:
    """What Port leaves for a restarted Port to adopt: its containers, networks, chains."""
    label = {"label": f"port.instance={instance}"}
    for container in client.containers.list(all=True, filters=label):
        container.remove(force=True)
    for network in client.networks.list(filters=label):
        network.remove()
    Firewall(instance, []).remove()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--connections", type=int, default=8)
    args = parser.parse_args()
    client = docker.from_env(timeout=60)
    instance = f"bench{secrets.token_hex(4)}"
    try:
        with tempfile.TemporaryDirectory(prefix="port-proxy-bench-") as tmp:
            root = Path(tmp)
            (root / "image").mkdir()
            build_image(client, root / "image")
            number = free_port()
            env = {k: v for k, v in os.environ.items() if not k.startswith("PORT_")} | {
                "PORT_DATA_DIR": str(root / "data"),
                "PORT_PORT": str(number),
                "PORT_ACCESS_LOG": "false",
                "PORT_ALLOW_LOCAL_REPOS": "true",
                "PORT_ALLOWED_REGISTRIES": '["localhost:5000"]',
                "PORT_INSTANCE": instance,
                "PORT_SERVER_URL": f"http://localhost:{number}",
            }
            url = app_repository(root)
            port_command(env, "db", "upgrade")
            port_command(env, "repo", "add", url)
            port_command(env, "repo", "scan", url)
            log = root / "port.log"
            server = start([str(PORT), "serve"], env, number, log)
            try:
                password = admin_password(log)
                setup_id, host, cookie = enter(f"http://localhost:{number}", password)
                direct = container_address(client, instance, setup_id)
                # What any answer of Port's server costs: its plainest route.
                healthz = load(number, None, args.seconds, path="/healthz")
                measured: dict[str, dict[str, dict[str, float]]] = {}
                for name, path in (("page", "/"), ("file", "/big")):
                    measured[name] = {
                        "port_proxy": load(
                            number,
                            None,
                            args.seconds,
                            f"Host: {host}",
                            cookie,
                            path=path,
                            connections=args.connections,
                        ),
                        "floor_direct": load(
                            8080,
                            None,
                            args.seconds,
                            path=path,
                            address=direct,
                            connections=args.connections,
                        ),
                    }
            finally:
                stop(server)
    finally:
        remove_instance(client, instance)
        client.images.remove(IMAGE, force=True)
        client.close()

    page, file = measured["page"], measured["file"]
    page_ratio = page["port_proxy"]["rps"] / page["floor_direct"]["rps"]
    file_ratio = file["port_proxy"]["mb_per_s"] / file["floor_direct"]["mb_per_s"]
    figures = {
        "page_bytes": len(PAGE),
        "file_mb": BIG_MB,
        "connections": args.connections,
        "port_healthz": healthz,
        "page": page
        | {
            "port_over_direct_rps": round(page_ratio, 3),
            "port_over_healthz_rps": round(page["port_proxy"]["rps"] / healthz["rps"], 3),
        },
        "file": file | {"port_over_direct_mb_per_s": round(file_ratio, 3)},
    }
    print(json.dumps(figures, indent=2))
    report(
        "proxy",
        [
            Target(
                "app page through Port / direct",
                page["port_proxy"]["rps"],
                "rps",
                0.5,
                page["floor_direct"]["rps"],
                True,
            ),
            Target(
                "app file through Port / direct",
                file["port_proxy"]["mb_per_s"],
                "MB/s",
                0.5,
                file["floor_direct"]["mb_per_s"],
                True,
            ),
        ],
    )


if __name__ == "__main__":
    main()
