"""How every benchmark states its targets: one `Target` per figure, reported one way.

Each script prints its own "met"/"missed" lines; under `make bench` (benchmarks/run.py)
the targets also go, as JSON lines, to the file named by BENCH_FIGURES, and the runner
prints them all as one table.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

FIGURES = "BENCH_FIGURES"  # where run.py collects the targets of every script


@dataclass(frozen=True)
class Target:
    """A figure and what it must be. With a ``floor`` (measured in the same run, in the
    same ``unit``) the target bounds the ratio ``value / floor``; without, the value."""

    name: str
    value: float
    unit: str
    bound: float
    floor: float | None = None
    at_least: bool = False  # the bound is a minimum (requests/s); else a maximum

    @property
    def measured(self) -> float:
        return self.value / self.floor if self.floor else self.value

    @property
    def met(self) -> bool:
        return self.measured >= self.bound if self.at_least else self.measured <= self.bound

    @property
    def target(self) -> str:
        sign = ">=" if self.at_least else "<="
        return (
            f"{sign} {self.bound:.3g}x floor"
            if self.floor is not None
            else f"{sign} {self.bound:.3g}"
        )


def report(benchmark: str, targets: Sequence[Target]) -> None:
    """Print each target's verdict; hand them to the runner when one collects them."""
    for t in targets:
        print(f"{'met   ' if t.met else 'missed'} {t.name}: {t.measured:.3g} ({t.target})")
    path = os.environ.get(FIGURES)
    if path:
        with Path(path).open("a", encoding="utf-8") as out:
            for t in targets:
                out.write(json.dumps({"benchmark": benchmark, **asdict(t)}) + "\n")
