"""`make bench`: every benchmark in one run, then one table of all their targets.

Each script runs in a process of its own (they start servers, engines and git
daemons, and clean up after themselves); its own output streams through as it runs.
The table lists each figure, its floor (measured in the same run), the ratio, the
target and the verdict. The exit status is 1 when a target is missed or a script
failed: a benchmark, not a test (`make test` does not run it).

Usage: python benchmarks/run.py [SCRIPT ...]   (default: all of SCRIPTS)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from benchmarks.report import FIGURES, Target

HERE = Path(__file__).parent
SCRIPTS = (
    "index.py",
    "oci.py",
    "api.py",
    "cli.py",
    "ui.py",
    "deploy.py",
    "update.py",
    "proxy.py",
)


def _number(value: float | None, unit: str = "") -> str:
    return "" if value is None else f"{value:.4g}{(' ' + unit) if unit else ''}"


def table(rows: list[tuple[str, Target]], failed: dict[str, int]) -> str:
    header = ("benchmark", "figure", "value", "floor", "ratio", "target", "")
    lines = [header]
    for benchmark, t in rows:
        ratio = _number(t.measured) if t.floor is not None else ""
        lines.append(
            (
                benchmark,
                t.name,
                _number(t.value, t.unit),
                _number(t.floor, t.unit),
                ratio,
                t.target,
                "met" if t.met else "MISSED",
            )
        )
    for script, status in failed.items():
        lines.append(
            (script, f"the script failed (exit status {status})", "", "", "", "", "FAILED")
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip() for line in lines
    )


def main() -> int:
    scripts = sys.argv[1:] or list(SCRIPTS)
    rows: list[tuple[str, Target]] = []
    failed: dict[str, int] = {}
    with tempfile.TemporaryDirectory(prefix="port-bench-") as tmp:
        figures = Path(tmp, "figures.jsonl")
        for script in scripts:
            print(f"== {script}", flush=True)
            done = subprocess.run(
                [sys.executable, str(HERE / script)], env=os.environ | {FIGURES: str(figures)}
            )
            if done.returncode != 0:
                failed[script] = done.returncode
        if figures.exists():
            for line in figures.read_text(encoding="utf-8").splitlines():
                fields = json.loads(line)
                benchmark = fields.pop("benchmark")
                rows.append((benchmark, Target(**fields)))
    print()
    print(table(rows, failed))
    return 1 if failed or not all(t.met for _, t in rows) else 0


if __name__ == "__main__":
    raise SystemExit(main())
