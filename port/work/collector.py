"""The cyclic garbage collector, tuned for `port serve` and `port worker`.

An uncached GraphQL answer leaves thousands of objects in reference cycles (ORM
instance states, DataLoader futures, the execution context), so with CPython's default
thresholds the collector runs every few hundred allocations and each full collection
walks every object of the process: the schema, the modules, the caches, all alive for
the process's life. Measured on the 50-app browse (benchmarks/api.py), that was more
than a third of the server's CPU; a first index of a thousand tags (benchmarks/index.py)
spent about a fifth of its time there. Two changes, made once the process is built:

- ``gc.freeze()`` moves everything alive at start-up to a generation the collector
  never walks again;
- the young generation is collected after YOUNG_THRESHOLD allocations instead of 700,
  so a request's garbage is mostly gone in one collection rather than in dozens.
"""

from __future__ import annotations

import gc

YOUNG_THRESHOLD = 50_000


def settle() -> None:
    """Collect, freeze what is alive, and raise the young generation's threshold. Call
    once, after start-up, in a long-lived process (never in tests: objects alive
    at the freeze are then never collected)."""
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, middle, old)
