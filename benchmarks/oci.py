"""OCI benchmark: Port indexing an OCI repository against a plain HTTP client.

A local registry (Debian's docker-registry, started here) holds --releases release
descriptors (written by `arkitekt-spec`, two flavours each) and as many image tags.
Prints, measured in one run on this machine (medians of --repeat runs):
  (a) floor: the same tags list, every manifest and every descriptor blob fetched with
      one plain httpx client, nothing else
  (b) Port's first index of the repository into SQLite       -> ratio b/a  (target <= 2)
  (c) a rescan with nothing moved: its requests to the registry (target: 1, the tags
      list); its time is printed (the run's own database work is most of it)

Usage: python benchmarks/oci.py [--releases 200] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from benchmarks.index import Port
from benchmarks.report import Target, report
from indexer import oci
from port.work import collector
from tests.integration.ocifixtures import Pusher, descriptor, flavour
from tests.integration.tokenregistry import token_registry

REPOSITORY = "bench/app"


def timed(action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def fill(registry: str, releases: int) -> None:
    pusher = Pusher(registry, REPOSITORY)
    pinned = f"{registry}/{REPOSITORY}@sha256:{'a' * 64}"
    for index in range(releases):
        version = f"1.{index}.0"
        made = descriptor(version, flavour("cpu", pinned), flavour("gpu", pinned))
        pusher.release(version, made)
        pusher.image(f"{version}-cpu")
    pusher.client.close()


def floor(registry: str) -> None:
    """Tags list, each manifest, each descriptor blob: what any client must fetch."""
    base = f"http://{registry}/v2/{REPOSITORY}"
    with httpx.Client(timeout=30) as client:
        tags = client.get(f"{base}/tags/list?n=1000").json()["tags"]
        for tag in tags:
            manifest = client.get(
                f"{base}/manifests/{tag}", headers={"Accept": ", ".join(oci.MANIFEST_TYPES)}
            ).json()
            config = manifest["config"]
            if config["mediaType"] == oci.RELEASE_MEDIA_TYPE:
                client.get(f"{base}/blobs/{config['digest']}").raise_for_status()


def requests_of(action: Callable[[], object]) -> int:
    """How many HTTP requests the indexer sends during ``action``."""
    sent: list[str] = []
    original = oci.Registry._send

    def counted(self: oci.Registry, url: str, accept: str, max_bytes: int) -> oci.Answer:
        sent.append(url)
        return original(self, url, accept, max_bytes)

    oci.Registry._send = counted  # type: ignore[method-assign]
    try:
        action()
    finally:
        oci.Registry._send = original  # type: ignore[method-assign]
    return len(sent)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--releases", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="port-bench-oci-") as tmp:
        root = Path(tmp)
        with token_registry(root, auth=None) as registry:
            fill(registry.address, args.releases)
            floor(registry.address)  # warm the registry's caches for both sides alike
            a = statistics.median(
                timed(lambda: floor(registry.address)) for _ in range(args.repeat)
            )
            url = f"oci+http://{registry.address}/{REPOSITORY}"
            allowed = [registry.address]  # the descriptors' images are on it
            ports = [
                Port(root / f"port-{i}", url, allowed_registries=allowed)
                for i in range(args.repeat)
            ]
            collector.settle()
            b = statistics.median(timed(p.scan) for p in ports)
            statuses: set[str] = set()
            sent = requests_of(lambda: statuses.add(ports[0].scan()))
            rescans = []
            for port in ports:
                for _ in range(3):
                    started = time.perf_counter()
                    statuses.add(port.scan())
                    rescans.append(time.perf_counter() - started)
                port.close()
            c = statistics.median(rescans)
            assert statuses == {"unchanged"}, statuses

    print(
        json.dumps(
            {
                "releases": args.releases,
                "a_floor_http_s": round(a, 4),
                "b_first_index_s": round(b, 4),
                "b_over_a": round(b / a, 2),
                "c_rescan_unchanged_s": round(c, 4),
                "c_requests": sent,
            },
            indent=2,
        )
    )
    report(
        "oci",
        [
            Target(f"first index of {args.releases} descriptors / plain HTTP", b, "s", 2.0, a),
            Target("rescan, nothing moved: requests to the registry", sent, "", 1),
        ],
    )


if __name__ == "__main__":
    main()
