"""Command-line start-up benchmark: how long a `port` command takes before it works.

Prints, measured in one run on this machine (medians of --repeat runs, wall time):
  floor: `python -c "import click"` (the interpreter and the CLI library, nothing of Port)
  `port --help`, `port apps` (on a fresh, migrated SQLite catalogue) -> ratios to the floor

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

PORT = Path(sys.executable).with_name("port")


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
            "port --help": [str(PORT), "--help"],
            "port apps": [str(PORT), "apps"],
        }
        medians = {
            name: statistics.median(timed(argv, env) for _ in range(args.repeat))
            for name, argv in commands.items()
        }
    floor = medians["floor (python -c 'import click')"]
    for name, seconds in medians.items():
        print(f"{name:<36} {seconds * 1000:7.0f} ms   {seconds / floor:5.1f}x floor")


if __name__ == "__main__":
    main()
