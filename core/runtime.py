"""Process-wide settings of the long-running Python processes (the workers, the benchmark's pure path).

The cyclic garbage collector: with CPython's default thresholds (700, 10, 10) a worker runs a collection
every 700 net allocations and a full one often, and the worker allocates several hundred objects per event
(decoded events, state copies, contributions), so collection work grew with the process's live objects and
took about a third of the pure per-event path (docs/benchmarks.md, 2026-12-03). The project's objects are
almost all freed by reference counting (no cycles on the hot path), so rarer collections lose nothing but a
little memory held by the few cycles until the next one.

The allocator: glibc's malloc keeps memory freed inside its heaps (RocksDB's evicted blocks and flushed
memtables, a batch's decoded events) and gives it back to the OS only from the heap's top, so a long-running
worker's resident memory kept the high-water marks of every backlog it met. :func:`tune_allocator` keeps
large buffers out of the heap (mmapped, unmapped when freed) and :func:`trim_memory` asks glibc to return
the heap's free pages (``malloc_trim``; the worker calls it once a minute). Measured in
docs/benchmarks.md (2026-12-03, fourth session).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import gc

GC_THRESHOLDS = (200_000, 50, 1_000)


def tune_gc() -> None:
    """Set :data:`GC_THRESHOLDS` for this process."""
    gc.set_threshold(*GC_THRESHOLDS)


#: glibc's mallopt parameter: allocations of at least this size are mmapped (and unmapped when freed)
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD_BYTES = 128 * 1024


@functools.cache
def _libc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
    except OSError:
        return None
    if libc is None or not all(hasattr(libc, f) for f in ("malloc_trim", "mallopt")):  # not glibc (musl, macOS)
        return None
    return libc


def tune_allocator() -> bool:
    """Keep large allocations out of the heap: glibc raises its mmap threshold each time a large mmapped block
    is freed (up to 32 MiB), after which a worker's big transient buffers (fetched record batches of up to
    8 MiB, a batch's encoded records, RocksDB's memtable arena blocks) come from the heap and leave it
    fragmented. Setting the threshold fixes it at :data:`MMAP_THRESHOLD_BYTES`; False where the C library
    is not glibc."""
    libc = _libc()
    return bool(libc is not None and libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES))


def trim_memory() -> bool:
    """Return the allocator's free memory to the OS (glibc ``malloc_trim(0)``); False where the C library has
    no such call. Blocking for a few milliseconds: the worker runs it in a thread."""
    libc = _libc()
    if libc is None:
        return False
    libc.malloc_trim(0)
    return True
