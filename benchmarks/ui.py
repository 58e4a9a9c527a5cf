"""Pages benchmark: the signed-in storefront against a plain Litestar floor.

Builds the catalogue of benchmarks/api.py (--apps apps x 10 releases x 2 flavours),
starts `port serve`, signs in as the first admin as a browser does, and loads three
pages from a second process (benchmarks/loadgen.py) with the session cookie: the
catalogue's first page, a search, and an app's page. The floor, measured in the same
run: a plain Litestar route under the same uvicorn answering each page's very bytes.
Prints requests/s and p50 of both and their ratio (target: Port >= 0.5 x floor), and
the bytes a browser with a cold cache fetches for the catalogue page and its assets
(target < 300 KB).

Usage: python benchmarks/ui.py [--apps 1000] [--seconds 5]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import tempfile
import urllib.parse
import urllib.request
from http.cookiejar import CookieJar
from pathlib import Path

from benchmarks.api import admin_password, benchmark_catalogue, load, plain_litestar, serve, stop
from benchmarks.report import Target, report

HERE = Path(__file__).parent
PAGES = {"catalogue": "/", "search": "/?q=app05", "app": "/apps/app0500"}
ASSET = re.compile(r'(?:<script[^>]*\ssrc|<link[^>]*\shref|<img[^>]*\ssrc)="(/[^"]+)"')

FLOOR_APP = """
import json, sys
from pathlib import Path
from litestar import Litestar, Response, get

pages = {path: Path(file).read_bytes() for path, file in json.loads(sys.argv[2]).items()}

@get(["/", "/{path:path}"])
async def page(path: str = "/", q: str | None = None) -> Response[bytes]:
    key = path + (f"?q={q}" if q else "")  # Litestar's path parameters keep their "/"
    return Response(pages[key], media_type="text/html")

app = Litestar([page])
"""


def sign_in(base: str, password: str) -> tuple[urllib.request.OpenerDirector, str]:
    """An opener with the admin's session, and the cookie header it sends."""
    jar = CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    form = opener.open(f"{base}/sign-in", timeout=30).read().decode()
    token = re.search(r'name="form_token" value="([0-9a-f]+)"', form)
    if token is None:
        raise RuntimeError("no sign-in form")
    data = urllib.parse.urlencode(
        {"form_token": token.group(1), "name": "admin", "password": password, "next": "/"}
    ).encode()
    opener.open(f"{base}/sign-in", data=data, timeout=60).read()
    session = next((c for c in jar if c.name == "port_session"), None)
    if session is None:
        raise RuntimeError("sign-in failed")
    return opener, f"Cookie: {session.name}={session.value}"


def floor(
    root: Path, env: dict[str, str], pages: dict[str, Path]
) -> tuple[subprocess.Popen[str], int]:
    """A plain Litestar route per page under the same uvicorn, answering its bytes."""
    files = json.dumps({path: str(file) for path, file in pages.items()})
    return plain_litestar(root, env, FLOOR_APP, files)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--apps", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="port-ui-bench-") as tmp:
        root = Path(tmp)
        built = benchmark_catalogue(root, args.apps)
        env = {k: v for k, v in os.environ.items() if not k.startswith("PORT_")}
        log = root / "port.log"
        server, port = serve(root, env, log)
        base = f"http://127.0.0.1:{port}"
        try:
            password = admin_password(log)
            opener, cookie = sign_in(base, password)
            saved: dict[str, Path] = {}
            sizes: dict[str, int] = {}
            for name, path in PAGES.items():
                body = opener.open(base + path, timeout=60).read()
                if b"Sign out" not in body:
                    raise RuntimeError(f"{path} was not shown signed in")
                saved[path] = root / f"{name}.html"
                saved[path].write_bytes(body)
                sizes[name] = len(body)
            catalogue_html = saved["/"].read_text()
            assets = sorted(set(ASSET.findall(catalogue_html)))
            cold = len(saved["/"].read_bytes()) + sum(
                len(opener.open(base + asset, timeout=30).read()) for asset in assets
            )
            measured = {
                name: load(port, None, args.seconds, cookie, path=path)
                for name, path in PAGES.items()
            }
        finally:
            stop(server)

        plain_server, plain_port = floor(root, env, saved)
        try:
            for path, file in saved.items():
                with urllib.request.urlopen(f"http://127.0.0.1:{plain_port}{path}") as got:
                    if got.read() != file.read_bytes():
                        raise RuntimeError(f"the floor does not answer {path}'s bytes")
            plain = {
                name: load(plain_port, None, args.seconds, path=path)
                for name, path in PAGES.items()
            }
        finally:
            stop(plain_server)

    figures: dict[str, object] = {
        "apps": args.apps,
        "catalogue_build_s": round(built, 1),
        "catalogue_page_cold_bytes": cold,
        "assets": assets,
    }
    for name in PAGES:
        figures[name] = {
            "port_signed_in": measured[name],
            "floor_plain_litestar": plain[name],
            "port_over_floor_rps": round(measured[name]["rps"] / plain[name]["rps"], 3),
            "page_bytes": sizes[name],
        }
    print(json.dumps(figures, indent=2))
    pages = [
        Target(
            f"{name} page / plain route",
            measured[name]["rps"],
            "rps",
            0.5,
            plain[name]["rps"],
            True,
        )
        for name in PAGES
    ]
    report("ui", [*pages, Target("catalogue page + assets, cold", cold / 1000, "KB", 300)])


if __name__ == "__main__":
    main()
