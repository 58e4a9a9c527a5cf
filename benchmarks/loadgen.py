"""A small HTTP/1.1 load generator: keep-alive connections on 127.0.0.1, bounded in time.

Run as a separate process so it does not share the server's interpreter:
    python benchmarks/loadgen.py PORT PATH BODY_FILE [--seconds 5] [--connections 16]
                                 [--header "Name: value"] [--method GET] [--address IP]
(with GET, BODY_FILE is not read: pass `-`; a `Host` header replaces the default one).
A server that closes the connection after an answer (`Connection: close`) gets a new
one for the next request. Prints one JSON line: requests, seconds, rps, p50_ms, p99_ms,
mb_per_s (answer bodies), errors.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Tally:
    latencies: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    body_bytes: int = 0


async def worker(address: str, port: int, request: bytes, until: float, tally: Tally) -> None:
    reader, writer = await asyncio.open_connection(address, port)
    try:
        while time.perf_counter() < until:
            start = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            status = head.split(b" ", 2)[1]
            length, closes = 0, False
            for line in head.lower().split(b"\r\n"):
                if line.startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
                closes = closes or line.replace(b" ", b"") == b"connection:close"
            await reader.readexactly(length)
            tally.latencies.append(time.perf_counter() - start)
            tally.body_bytes += length
            if status != b"200":
                tally.errors.append(status.decode())
            if closes:
                writer.close()
                reader, writer = await asyncio.open_connection(address, port)
    finally:
        writer.close()


async def run(
    address: str, port: int, request: bytes, seconds: float, connections: int
) -> dict[str, float]:
    warm_until = time.perf_counter() + 0.5  # fill caches and pools first
    await asyncio.gather(
        *(worker(address, port, request, warm_until, Tally()) for _ in range(connections))
    )
    tally = Tally()
    start = time.perf_counter()
    until = start + seconds
    await asyncio.gather(
        *(worker(address, port, request, until, tally) for _ in range(connections))
    )
    elapsed = time.perf_counter() - start
    ordered = sorted(tally.latencies)
    return {
        "requests": len(ordered),
        "seconds": round(elapsed, 3),
        "rps": round(len(ordered) / elapsed, 1),
        "p50_ms": round(statistics.median(ordered) * 1000, 2),
        "p99_ms": round(ordered[int(len(ordered) * 0.99) - 1] * 1000, 2),
        "mb_per_s": round(tally.body_bytes / elapsed / 1e6, 1),
        "errors": len(tally.errors),
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
    parser.add_argument("--address", default="127.0.0.1")
    args = parser.parse_args()
    given = [h for h in args.header if not h.lower().startswith("host:")]
    host = next((h for h in args.header if h.lower().startswith("host:")), "Host: 127.0.0.1")
    headers = "".join(f"{h}\r\n" for h in [host, *given])
    if args.method == "GET":
        request = f"GET {args.path} HTTP/1.1\r\n{headers}\r\n".encode()
    else:
        body = args.body.read_bytes()
        request = (
            f"POST {args.path} HTTP/1.1\r\n"
            f"Content-Type: application/json\r\n{headers}Content-Length: {len(body)}\r\n\r\n"
        ).encode() + body
    answer = asyncio.run(run(args.address, args.port, request, args.seconds, args.connections))
    print(json.dumps(answer))


if __name__ == "__main__":
    main()
