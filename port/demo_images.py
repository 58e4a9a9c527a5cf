"""The example apps' images, built on the local Docker engine so the examples really run.

The example manifests name images under ``localhost:5000/port-examples/``, which exist
in no registry. `make run` (``port serve --with-examples``) builds each of them here
instead, ``FROM scratch`` with Debian's static busybox (package ``busybox-static``)
serving a small page over ``httpd`` on port 8080 that says which app, version and
flavour runs. With the default pull policy (``if-not-present``) a Pod then starts from
the local image. Without an engine or busybox, the catalogue still works; installing
says then what is missing.
"""

from __future__ import annotations

import hashlib
import html
import shutil
import struct
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from manifests.arkitekt import parse_arkitekt_deployments
from manifests.native import parse_port_manifest
from manifests.specs import ReleaseSpec
from port.demo import EXAMPLES, NATIVE, Versions, example_manifest, versions_with
from port.settings import Settings

BUSYBOX = Path("/bin/busybox")
LABEL = "port.example"  # its value: the hash of what the image was built from
PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{name} {version}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>body{{font:1.1rem/1.5 system-ui,sans-serif;margin:3rem auto;max-width:36rem;
padding:0 1rem;color:#1d2733}}h1{{margin:0 0 .5rem}}code{{background:#eef2f6;
padding:.1rem .3rem;border-radius:.2rem}}</style></head>
<body><h1>{name}</h1><p>Release <strong>{version}</strong>, flavour
<strong>{flavour}</strong>: <code>{image}</code>.</p>
<p>This is Port's example image: busybox <code>httpd</code> in a container of its own,
reached through Port's proxy, for its owner only.</p>
<p><a href="/cgi-bin/port">Does this app reach Port from its container?</a></p></body></html>
"""
# /cgi-bin/port: asks Port's /healthz at $PORT_SERVER_URL from inside the container
# (busybox's nc: its static wget cannot resolve names).
ASK_PORT = r"""#!/bin/busybox sh
echo 'Content-Type: text/plain'
echo
target=${PORT_SERVER_URL#*//}
target=${target%%/*}
case $target in *:*) ;; *) target=$target:80 ;; esac
request="GET /healthz HTTP/1.0\r\nHost: $target\r\n\r\n"
if answer=$(printf "$request" | nc -w 3 "${target%:*}" "${target##*:}" 2>&1); then
  echo "Port answers at $PORT_SERVER_URL: $(echo "$answer" | tail -n 1)"
else
  echo "Port cannot be reached at $PORT_SERVER_URL: $answer"
fi
"""


@dataclass(frozen=True, slots=True)
class ExampleImage:
    image: str
    name: str
    version: str
    flavour: str

    @property
    def page(self) -> str:
        return PAGE.format(
            name=html.escape(self.name),
            version=html.escape(self.version),
            flavour=html.escape(self.flavour),
            image=html.escape(self.image),
        )

    @property
    def digest(self) -> str:
        return hashlib.sha256((self.page + ASK_PORT).encode()).hexdigest()[:16]


def is_static_elf(path: Path) -> bool:
    """True when ``path`` is an ELF executable without a program interpreter (static)."""
    data = path.read_bytes()
    if data[:4] != b"\x7fELF" or data[4] != 2:  # 64-bit only: what Debian amd64/arm64 ship
        return False
    endian = "<" if data[5] == 1 else ">"
    (phoff,) = struct.unpack_from(endian + "Q", data, 0x20)
    phentsize, phnum = struct.unpack_from(endian + "HH", data, 0x36)
    for index in range(phnum):
        (p_type,) = struct.unpack_from(endian + "I", data, phoff + index * phentsize)
        if p_type == 3:  # PT_INTERP: needs a dynamic loader the image does not have
            return False
    return True


def _releases(extra: Versions | None = None) -> Iterator[ReleaseSpec]:
    for app, versions in versions_with(extra).items():
        template = example_manifest(app)
        for version in versions:
            text = template.replace(NATIVE[app][-1], version)
            yield from parse_port_manifest(text, tag_version=version).releases
    arkitekt = (EXAMPLES / "arkitekt" / "deployments.yaml").read_bytes()
    yield from parse_arkitekt_deployments(arkitekt, file="deployments.yaml").releases


def example_images(extra: Versions | None = None) -> list[ExampleImage]:
    """Every image the example releases name (``extra``: more versions of an app)."""
    found = {}
    for release in _releases(extra):
        for flavour in release.flavours:
            found[flavour.image] = ExampleImage(
                flavour.image, release.app.name, release.version, flavour.name
            )
    return list(found.values())


def _client(settings: Settings) -> Any:
    import docker

    client = (
        docker.DockerClient(base_url=settings.docker_host)
        if settings.docker_host
        else (docker.from_env())
    )
    client.ping()
    return client


def build_example_images(
    settings: Settings, out: TextIO, extra: Versions | None = None
) -> list[str]:
    """Build the example images the engine lacks (or has from another page); their
    names. Says on ``out`` why it built none when there is no engine or busybox."""
    try:
        client = _client(settings)
    except Exception as exc:  # noqa: BLE001 - any failure means: no engine to build on
        out.write(f"no Docker engine answers ({exc}): the example apps can be browsed, not run\n")
        return []
    if not (BUSYBOX.exists() and is_static_elf(BUSYBOX)):
        out.write(
            f"{BUSYBOX} is not a static busybox: install Debian's busybox-static to "
            "build the example apps' images\n"
        )
        return []
    built = []
    with tempfile.TemporaryDirectory(prefix="port-examples-") as scratch:
        context = Path(scratch)
        shutil.copy(BUSYBOX, context / "busybox")
        for example in example_images(extra):
            if _current(client, example):
                continue
            _build(client, context, example)
            built.append(example.image)
            out.write(f"built example image {example.image}\n")
    return built


def _current(client: Any, example: ExampleImage) -> bool:
    import docker.errors

    try:
        labels = client.images.get(example.image).labels or {}
    except docker.errors.ImageNotFound:
        return False
    return bool(labels.get(LABEL) == example.digest)


def _build(client: Any, context: Path, example: ExampleImage) -> None:
    (context / "www" / "cgi-bin").mkdir(parents=True, exist_ok=True)
    (context / "www" / "index.html").write_text(example.page, encoding="utf-8")
    script = context / "www" / "cgi-bin" / "port"
    script.write_text(ASK_PORT, encoding="utf-8")
    script.chmod(0o755)
    (context / "Dockerfile").write_text(
        "\n".join(
            (
                "FROM scratch",
                "COPY busybox /bin/busybox",
                "COPY www /www",
                f'LABEL {LABEL}="{example.digest}" '
                f'org.opencontainers.image.version="{example.version}" '
                f'port.example.flavour="{example.flavour}"',
                "EXPOSE 8080",
                'ENTRYPOINT ["/bin/busybox", "httpd", "-f", "-p", "8080", "-h", "/www"]',
                "",
            )
        )
    )
    client.images.build(path=str(context), tag=example.image, rm=True, forcerm=True)
