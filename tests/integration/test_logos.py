"""App logos: read from the repository at index time, served by Port itself, images only
(on both databases)."""

from __future__ import annotations

import datetime
import http.server
import ipaddress
import re
import ssl
import struct
import threading
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from sqlalchemy import select

from indexer.logos import LOGO_MAX_BYTES
from port.catalogue.models import AppLogo, IndexRun, IndexRunError
from port.catalogue.repos import add_repo
from port.catalogue.scanning import scan_repo
from port.demo import index_examples
from tests.harness import Api
from tests.integration.gitfixtures import WorkRepo


def png(width: int = 1, height: int = 1) -> bytes:
    """A real, tiny PNG image."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    pixels = zlib.compress(b"".join(b"\x00" + b"\x20\x60\xa0" * width for _ in range(height)))
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")
    )


def manifest(identifier: str, version: str, logo: str) -> str:
    return yaml.safe_dump(
        {
            "apiVersion": "port/v1",
            "version": version,
            "app": {"identifier": identifier, "name": identifier.title(), "logo": logo},
            "flavours": {"cpu": {"image": f"registry.invalid/{identifier}:{version}"}},
        }
    )


async def publish(api: Api, tmp_path: Path, identifier: str, logo: str, blob: bytes) -> int:
    """A repository of one app whose release names ``logo`` (holding ``blob``), scanned."""
    bare = tmp_path / "remotes" / f"{identifier}.git"
    work = WorkRepo(tmp_path / f"work-{identifier}", bare)
    work.commit("release", {"port.yaml": manifest(identifier, "1.0.0", logo), logo: blob})
    work.tag("v1.0.0")
    work.push()
    async with api.catalogue.sessions() as session, session.begin():
        repo_id = (await add_repo(session, f"file://{bare}", allow_local=True)).id
    await scan_repo(api.catalogue.sessions, api.catalogue.settings, repo_id)
    return repo_id


async def errors_of(api: Api, repo_id: int) -> list[str]:
    async with api.catalogue.sessions() as session:
        rows = await session.scalars(
            select(IndexRunError.message)
            .join(IndexRun, IndexRun.id == IndexRunError.run_id)
            .where(IndexRun.repo_id == repo_id)
        )
        return list(rows)


async def test_a_repository_logo_is_served_by_port(api: Api, tmp_path: Path) -> None:
    image = png(4, 4)
    repo_id = await publish(api, tmp_path, "shiny", "art/logo.png", image)
    assert await errors_of(api, repo_id) == []
    page = await api.client.get("/apps/shiny")
    found = re.search(r'class="logo logo-large" src="(/logos/shiny\?v=[0-9a-f]{16})"', page.text)
    assert found, page.text
    served = await api.client.get(found.group(1))
    assert served.status_code == 200
    assert served.content == image
    assert served.headers["content-type"] == "image/png"
    assert served.headers["x-content-type-options"] == "nosniff"
    assert "sandbox" in served.headers["content-security-policy"]
    assert "immutable" in served.headers["cache-control"]  # the URL changes with the image
    assert 'src="/logos/shiny?v=' in (await api.client.get("/")).text


async def test_only_images_within_the_limit_become_logos(api: Api, tmp_path: Path) -> None:
    svg = b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>'
    for identifier, logo, blob, error in (
        ("script", "logo.svg", svg, "the logo is not a PNG, JPEG, GIF or WebP image"),
        ("big", "big.png", png() + b"\x00" * LOGO_MAX_BYTES, "over the limit of 256 KB"),
    ):
        repo_id = await publish(api, tmp_path, identifier, logo, blob)
        assert any(error in message for message in await errors_of(api, repo_id)), identifier
        assert (await api.client.get(f"/logos/{identifier}")).status_code == 404
        page = await api.client.get(f"/apps/{identifier}")
        assert page.status_code == 200  # the app is indexed all the same
        assert "/logos/" not in page.text
    async with api.catalogue.sessions() as session:
        assert (await session.scalars(select(AppLogo))).all() == []


async def test_the_bundled_examples_index_cleanly_and_stardist_has_its_logo(api: Api) -> None:
    # As `make run` serves them: their images are on the local registry.
    settings = api.catalogue.settings.model_copy(update={"allowed_registries": ["localhost:5000"]})
    outcomes = await index_examples(api.catalogue.sessions, settings)
    assert [outcome.run.status for _, outcome in outcomes] == ["succeeded", "succeeded"]
    assert [[e.message for e in outcome.run.errors] for _, outcome in outcomes] == [[], []]
    served = await api.client.get("/logos/stardist")
    assert served.status_code == 200
    assert served.headers["content-type"] == "image/png"


@dataclass
class Site:
    """An https server on 127.0.0.1 that a logo URL can name, with its own trusted cert."""

    base: str
    served: dict[str, tuple[str, bytes]]  # path -> (content type, body)


def _self_signed(folder: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = folder / "site.pem", folder / "site.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Site]:
    cert_file, key_file = _self_signed(tmp_path)
    monkeypatch.setenv("SSL_CERT_FILE", str(cert_file))  # Port trusts this one site
    served: dict[str, tuple[str, bytes]] = {}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            kind, body = served.get(self.path, ("text/plain", b""))
            self.send_response(200 if self.path in served else 404)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_args: object) -> None:
            """Quiet: the test's assertions say what was served."""

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield Site(f"https://127.0.0.1:{server.server_address[1]}", served)
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


async def test_an_https_logo_is_fetched_at_index_time_and_checked(
    api: Api, tmp_path: Path, site: Site
) -> None:
    image = png(2, 2)
    site.served["/logo.png"] = ("image/png", image)
    site.served["/page.png"] = ("image/png", b"<html><script>alert(1)</script></html>")
    # The lab's own web server, allowed as an admin would allow it.
    api.catalogue.settings.logo_allowed_networks = ["127.0.0.1/32"]
    cases = (
        ("web", f"{site.base}/logo.png", None),
        ("fake", f"{site.base}/page.png", "is not a PNG, JPEG, GIF or WebP image"),
        ("gone", f"{site.base}/missing.png", "answered HTTP 404"),
    )
    for identifier, url, error in cases:
        repo_id = await publish_url(api, tmp_path, identifier, url)
        errors = await errors_of(api, repo_id)
        if error is None:
            assert errors == []
        else:
            assert any(error in message for message in errors), (identifier, errors)
    served = await api.client.get("/logos/web")
    assert served.content == image
    assert (await api.client.get("/logos/fake")).status_code == 404
    # Without the admin's allowance, the loopback server is out of bounds.
    api.catalogue.settings.logo_allowed_networks = []
    repo_id = await publish_url(api, tmp_path, "private", f"{site.base}/logo.png")
    assert any("is not a public address" in m for m in await errors_of(api, repo_id))


async def publish_url(api: Api, tmp_path: Path, identifier: str, url: str) -> int:
    bare = tmp_path / "remotes" / f"{identifier}.git"
    work = WorkRepo(tmp_path / f"work-{identifier}", bare)
    work.commit("release", {"port.yaml": manifest(identifier, "1.0.0", url)})
    work.tag("v1.0.0")
    work.push()
    async with api.catalogue.sessions() as session, session.begin():
        repo_id = (await add_repo(session, f"file://{bare}", allow_local=True)).id
    await scan_repo(api.catalogue.sessions, api.catalogue.settings, repo_id)
    return repo_id


async def test_the_newest_release_decides_the_logo(api: Api, tmp_path: Path) -> None:
    bare = tmp_path / "remotes" / "moving.git"
    work = WorkRepo(tmp_path / "work-moving", bare)
    newest, older = png(2, 2), png(3, 3)
    work.commit("2.0", {"port.yaml": manifest("moving", "2.0.0", "logo.png"), "logo.png": newest})
    work.tag("v2.0.0")
    work.push()
    async with api.catalogue.sessions() as session, session.begin():
        repo_id = (await add_repo(session, f"file://{bare}", allow_local=True)).id

    async def scanned() -> None:
        await scan_repo(api.catalogue.sessions, api.catalogue.settings, repo_id)

    await scanned()
    assert (await api.client.get("/logos/moving")).content == newest
    # A backport tag of an older line, with another logo, read after 2.0.0.
    work.commit("1.0.1", {"port.yaml": manifest("moving", "1.0.1", "logo.png"), "logo.png": older})
    work.tag("v1.0.1")
    work.push()
    await scanned()
    assert (await api.client.get("/logos/moving")).content == newest
    # The newest release names no logo any more: the stored one goes.
    work.commit(
        "2.1",
        {
            "port.yaml": yaml.safe_dump(
                {
                    "apiVersion": "port/v1",
                    "version": "2.1.0",
                    "app": {"identifier": "moving", "name": "Moving"},
                    "flavours": {"cpu": {"image": "registry.invalid/moving:2.1.0"}},
                }
            )
        },
    )
    work.tag("v2.1.0")
    work.push()
    await scanned()
    assert (await api.client.get("/logos/moving")).status_code == 404
