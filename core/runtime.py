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

With the threshold fixed, a buffer of 128 KiB or more is mapped, page-faulted and unmapped on every allocation.
Two libraries did that per call on the worker's hot path, and :func:`tune_allocator` changes both
(docs/benchmarks.md, 2026-12-06, thirteenth session):

* asyncio's TLS transport decrypts into a new ``bytes`` of ``SSLProtocol.max_size`` (256 KiB) per read call,
  two calls per socket read at least, and keeps what one TLS record holds (16 KiB at most). A small message
  cost 65 µs instead of 6. :data:`TLS_READ_BYTES` keeps the buffer in the heap;
* aiokafka compresses each zstd record batch (the worker's changelogs, streams.writer) with a new compression
  context per call (cramjam), about a megabyte of mapped memory: 500 µs for 20 KiB instead of 31.
  :func:`reuse_zstd_contexts` gives aiokafka's record builder a compressor that keeps its context, one per
  thread (zstandard, which kafka-python uses for the same codec).
"""

from __future__ import annotations

import asyncio.sslproto
import ctypes
import ctypes.util
import functools
import gc
import threading

import zstandard

GC_THRESHOLDS = (200_000, 50, 1_000)


def tune_gc() -> None:
    """Set :data:`GC_THRESHOLDS` for this process."""
    gc.set_threshold(*GC_THRESHOLDS)


#: glibc's mallopt parameter: allocations of at least this size are mmapped (and unmapped when freed)
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD_BYTES = 128 * 1024
#: the plaintext buffer of one TLS read call of asyncio (its default, 256 KiB, is above the threshold); one call
#: returns one TLS record (16 KiB at most), so a smaller buffer makes no more calls
TLS_READ_BYTES = 64 * 1024
ZSTD_LEVEL = 3  # aiokafka's (and the broker's) default level


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
    fragmented. Setting the threshold fixes it at :data:`MMAP_THRESHOLD_BYTES`, and keeps the two per-call
    buffers of the hot path below it (the module's docstring); False where the C library is not glibc."""
    asyncio.sslproto.SSLProtocol.max_size = TLS_READ_BYTES
    reuse_zstd_contexts()
    libc = _libc()
    return bool(libc is not None and libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES))


class _Compressors(threading.local):
    """One ``ZstdCompressor`` per level, per thread: a compressor may be reused, not shared between threads."""

    def __init__(self) -> None:
        self.by_level: dict[int, zstandard.ZstdCompressor] = {}


_zstd = _Compressors()


def zstd_encode(payload: bytes | bytearray | memoryview, level: int | None = None) -> bytes:
    """aiokafka's ``zstd_encode``, with a compressor (and its context) kept per thread and level."""
    level = ZSTD_LEVEL if level is None else level
    compressor = _zstd.by_level.get(level)
    if compressor is None:
        compressor = _zstd.by_level[level] = zstandard.ZstdCompressor(level=level)
    return compressor.compress(payload)


def reuse_zstd_contexts() -> list[str]:
    """Make aiokafka's record batch builders (its C extension's and its pure-Python fallback) compress with
    :func:`zstd_encode`; the modules it changed. Idempotent."""
    import importlib

    changed = []
    for name in ("aiokafka.record._crecords.default_records", "aiokafka.record.default_records"):
        try:
            module = importlib.import_module(name)
        except ImportError:  # no C extension (AIOKAFKA_NO_EXTENSIONS, an unusual platform)
            continue
        if hasattr(module, "zstd_encode"):
            setattr(module, "zstd_encode", zstd_encode)  # noqa: B010  (a module of a library: no declared attribute)
            changed.append(name)
    return changed


def trim_memory() -> bool:
    """Return the allocator's free memory to the OS (glibc ``malloc_trim(0)``); False where the C library has
    no such call. Blocking for a few milliseconds: the worker runs it in a thread."""
    libc = _libc()
    if libc is None:
        return False
    libc.malloc_trim(0)
    return True
