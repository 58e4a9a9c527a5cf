"""App logos: read from the repository at index time, served by Port itself, images only
(on both databases)."""

from __future__ import annotations

import re
import struct
import zlib
from pathlib import Path

import yaml
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
