"""OCI test material: descriptors written by `arkitekt-spec`, pushed through a
registry's HTTP API as a CI would push them (tests and benchmarks/oci.py)."""

from __future__ import annotations

import json
from typing import Any

import httpx
from arkitekt_spec.inspection import Inspection
from arkitekt_spec.manifest import AppManifest
from arkitekt_spec.release import (
    ReleaseDescriptor,
    ReleaseFlavour,
    digest_of,
    dump_descriptor,
    release_manifest,
)

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


class Pusher:
    """Pushes blobs and manifests to one repository of the registry, as a CI would."""

    def __init__(self, registry: str, repository: str, token: str | None = None) -> None:
        self.base = f"http://{registry}/v2/{repository}"
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.client = httpx.Client(timeout=10, headers=headers)

    def blob(self, data: bytes) -> str:
        digest = digest_of(data)
        started = self.client.post(f"{self.base}/blobs/uploads/")
        assert started.status_code == 202, started.text
        location = started.headers["location"]
        done = self.client.put(
            f"{location}{'&' if '?' in location else '?'}digest={digest}", content=data
        )
        assert done.status_code == 201, done.text
        return digest

    def manifest(self, tag: str, manifest: dict[str, Any]) -> str:
        body = json.dumps(manifest).encode()
        put = self.client.put(
            f"{self.base}/manifests/{tag}",
            content=body,
            headers={"Content-Type": str(manifest.get("mediaType", OCI_MANIFEST))},
        )
        assert put.status_code == 201, put.text
        return digest_of(body)

    def release(self, tag: str, descriptor: bytes) -> str:
        self.blob(descriptor)
        return self.manifest(tag, release_manifest(descriptor))

    def image(self, tag: str) -> str:
        """An image-like manifest (an empty config): not a release."""
        config = self.blob(b"{}")
        return self.manifest(
            tag,
            {
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "config": {
                    "mediaType": "application/vnd.oci.image.config.v1+json",
                    "digest": config,
                    "size": 2,
                },
                "layers": [],
            },
        )

    def delete(self, digest: str) -> None:
        gone = self.client.delete(f"{self.base}/manifests/{digest}")
        assert gone.status_code == 202, gone.text


def descriptor(
    version: str, *flavours: ReleaseFlavour, identifier: str = "stardist", **fields: Any
) -> bytes:
    return dump_descriptor(
        ReleaseDescriptor(
            manifest=AppManifest(identifier=identifier, version=version, author="acme"),
            flavours=list(flavours),
            **fields,
        )
    )


def flavour(name: str, image: str, **fields: Any) -> ReleaseFlavour:
    return ReleaseFlavour(name=name, image=image, inspection=Inspection(), **fields)
