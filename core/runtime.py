"""Process-wide settings of the long-running Python processes (the workers, the benchmark's pure path).

The cyclic garbage collector: with CPython's default thresholds (700, 10, 10) a worker runs a collection
every 700 net allocations and a full one often, and the worker allocates several hundred objects per event
(decoded events, state copies, contributions), so collection work grew with the process's live objects and
took about a third of the pure per-event path (docs/benchmarks.md, 2026-12-03). The project's objects are
almost all freed by reference counting (no cycles on the hot path), so rarer collections lose nothing but a
little memory held by the few cycles until the next one.
"""

from __future__ import annotations

import gc

GC_THRESHOLDS = (200_000, 50, 1_000)


def tune_gc() -> None:
    """Set :data:`GC_THRESHOLDS` for this process."""
    gc.set_threshold(*GC_THRESHOLDS)
