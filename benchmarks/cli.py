"""Command-line start-up benchmark: how long a `port` command takes before it works.

Prints, measured in one run on this machine (medians of --repeat runs, wall time):
  floor: `python -c "import click"` (the interpreter and the CLI library, nothing of Port)
  `port --help`, `port repo list`, `port apps`, `port setup list` (on a fresh, migrated
  SQLite catalogue) -> ratios to the floor, and each against its target (TARGETS_MS)

Usage: python benchmarks/cli.py [--repeat 9]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.report import Target, report

PORT = Path(sys.executable).with_name("port")
# Wall time each command may take here (issue 12): at once, and a listing within 450 ms.
TARGETS_MS = {"--help": 80, "repo list": 450, "apps": 450, "setup list": 450}


def timed(argv: list[str], env: dict[str, str]) -> float:
    began = time.perf_counter()
    subprocess.run(argv, env=env, check=True, capture_output=True, timeout=120)
    return time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=9)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as data:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PORT_")}
        env["PORT_DATA_DIR"] = data
        subprocess.run([str(PORT), "db", "upgrade"], env=env, check=True, capture_output=True)
        commands = {
            "floor (python -c 'import click')": [sys.executable, "-c", "import click"],
            **{f"port {c}": [str(PORT), *c.split()] for c in TARGETS_MS},
        }
        medians = {
            name: statistics.median(timed(argv, env) for _ in range(args.repeat))
            for name, argv in commands.items()
        }
    floor = medians["floor (python -c 'import click')"]
    for name, seconds in medians.items():
        print(f"{name:<36} {seconds * 1000:7.0f} ms   {seconds / floor:5.1f}x floor")
    report(
        "cli",
        [
            Target(f"port {c}, wall", medians[f"port {c}"] * 1000, "ms", ms)
            for c, ms in TARGETS_MS.items()
        ],
    )


if __name__ == "__main__":
    main()
