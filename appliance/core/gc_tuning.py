"""Garbage collection tuned for `appliance process` and `serve`, which allocate in bulk.

A flush of 20,000 events creates a few hundred thousand short-lived objects (rows, visit
changes, offsets), which with CPython's default thresholds (a young collection every 700
allocations) ran 2,000 collections per 400,000 events, each also walking the open visits the
processor keeps: about a quarter of the Postgres write path's Python time. `serve` allocates
a few dozen objects per request: at 10k requests/s the defaults collect several hundred times a
second (measured: 6-12 us of CPU per request, about a tenth). Collecting the
young generation every GEN0_THRESHOLD allocations instead still frees reference cycles
(asyncio's futures and tracebacks make some) within a flush or two; what start-up loaded
(modules, plugins, settings) is frozen out of every collection.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

GEN0_THRESHOLD = 100_000
# The older generations keep CPython's ratios (10 young collections per middle one): garbage
# that outlived one young collection (a cycle still referenced when it ran) waits about 1M
# allocations, not 5M, and the whole heap is walked every 10M (50/100 let such cycles grow
# RSS by hundreds of MiB in a simulation; a review finding).
GEN1_THRESHOLD = 10
GEN2_THRESHOLD = 10


def tune_for_throughput() -> None:
    """Call once start-up is done (everything allocated so far lives as long as the process)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(GEN0_THRESHOLD, GEN1_THRESHOLD, GEN2_THRESHOLD)


@contextmanager
def tuned_for_throughput() -> Iterator[None]:
    """Tuned as `tune_for_throughput` leaves a process, then as before (tests, the bench)."""
    thresholds = gc.get_threshold()
    tune_for_throughput()
    try:
        yield
    finally:
        gc.unfreeze()
        gc.set_threshold(*thresholds)
