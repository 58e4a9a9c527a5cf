"""A small HTTP/1.1 load generator: keep-alive connections on 127.0.0.1, bounded in time.

Run as a separate process so it does not share the server's interpreter:
    python benchmarks/loadgen.py PORT PATH BODY_FILE [--seconds 5] [--connections 16]
                                 [--header "Name: value"] [--method GET]
(with GET, BODY_FILE is not read: pass `-`)
Prints one JSON line: requests, seconds, rps, p50_ms, p99_ms, errors.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from pathlib import Path


async def worker(
    port: int, request: bytes, until: float, latencies: list[float], errors: list[str]
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        while time.perf_counter() < until:
            start = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            status = head.split(b" ", 2)[1]
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            await reader.readexactly(length)
            latencies.append(time.perf_counter() - start)
            if status != b"200":
                errors.append(status.decode())
    finally:
        writer.close()


async def run(port: int, request: bytes, seconds: float, connections: int) -> dict[str, float]:
    latencies: list[float] = []
    errors: list[str] = []
    warm_until = time.perf_counter() + 0.5  # fill caches and pools first
    await asyncio.gather(*(worker(port, request, warm_until, [], []) for _ in range(connections)))
    start = time.perf_counter()
    until = start + seconds
    await asyncio.gather(
        *(worker(port, request, until, latencies, errors) for _ in range(connections))
    )
    elapsed = time.perf_counter() - start
    ordered = sorted(latencies)
    return {
        "requests": len(ordered),
        "seconds": round(elapsed, 3),
        "rps": round(len(ordered) / elapsed, 1),
        "p50_ms": round(statistics.median(ordered) * 1000, 2),
        "p99_ms": round(ordered[int(len(ordered) * 0.99) - 1] * 1000, 2),
        "errors": len(errors),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("port", type=int)
    parser.add_argument("path")
    parser.add_argument("body", type=Path)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--header", action="append", default=[])
    parser.add_argument("--method", choices=("POST", "GET"), default="POST")
    args = parser.parse_args()
    headers = "".join(f"{h}\r\n" for h in args.header)
    if args.method == "GET":
        request = f"GET {args.path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{headers}\r\n".encode()
    else:
        body = args.body.read_bytes()
        request = (
            f"POST {args.path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Content-Type: application/json\r\n{headers}Content-Length: {len(body)}\r\n\r\n"
        ).encode() + body
    print(json.dumps(asyncio.run(run(args.port, request, args.seconds, args.connections))))


if __name__ == "__main__":
    main()
