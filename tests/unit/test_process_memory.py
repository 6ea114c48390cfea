"""What keeps a long-running worker's memory from growing with history (docs/benchmarks.md, 2026-12-03 fourth
session): every cache of the per-event path is bounded, and the allocator's freed pages go back to the OS."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from pathlib import Path

import faust
import pytest

from core import runtime

ROOTS = ("core", "events", "streams", "consumers")


def _rss_bytes() -> int:
    return int(Path("/proc/self/statm").read_text().split()[1]) * 4096


def _caches() -> dict[str, object]:
    """Every functools cache defined at module level in the runtime packages."""
    found: dict[str, object] = {}
    for root in ROOTS:
        package = importlib.import_module(root)
        for info in pkgutil.walk_packages(package.__path__, prefix=f"{root}."):
            if ".tools" in info.name or info.name.rsplit(".", 1)[-1] in ("__main__", "main"):
                continue  # tools and entry modules exit or build an app from the environment when imported
            module = importlib.import_module(info.name)
            for name, obj in vars(module).items():
                if hasattr(obj, "cache_info") and getattr(obj, "__module__", None) == info.name:
                    found[f"{info.name}.{name}"] = obj
    return found


def test_every_cache_of_the_runtime_packages_is_bounded() -> None:
    caches = _caches()
    assert "core.partitioning.key_partition" in caches and "events.privacy.seeker_digest" in caches
    unbounded = [name for name, c in caches.items()  # a cache of a function without arguments holds one entry
                 if c.cache_info().maxsize is None and inspect.signature(c).parameters]  # type: ignore[attr-defined]
    assert not unbounded, f"caches that grow with every new key (history): {unbounded}"


def test_a_full_key_cache_stays_within_its_size() -> None:
    from core.partitioning import KEY_CACHE, key_partition

    key_partition.cache_clear()
    for i in range(KEY_CACHE + 5_000):  # more distinct keys than it may hold, as new entities keep coming
        assert 0 <= key_partition(f"posting-{i}".encode(), 12) < 12
    assert key_partition.cache_info().currsize == KEY_CACHE
    # the cached answer is the partitioner's (the murmur2 of aiokafka and kafka-python)
    from aiokafka.partitioner import murmur2

    assert key_partition(b"posting-1", 12) == (murmur2(b"posting-1") & 0x7FFFFFFF) % 12


@pytest.mark.skipif(not Path("/proc/self/statm").exists(), reason="reads /proc (Linux)")
def test_trim_memory_gives_freed_heap_pages_back_to_the_os() -> None:
    # 1 KiB objects come from malloc's heap; keeping one in 64 pins the heap, so freeing the rest does not
    # shrink it from the top: the pages stay resident until trimmed
    blocks = [bytes(1024) + i.to_bytes(4, "little") for i in range(160_000)]
    pinned = blocks[::64]
    before_free = _rss_bytes()
    del blocks
    after_free = _rss_bytes()
    assert runtime.trim_memory() is True  # glibc
    after_trim = _rss_bytes()
    assert after_free > before_free - 32 * 2**20, "the freed blocks were returned without a trim: nothing to test"
    assert after_trim < after_free - 64 * 2**20, (before_free, after_free, after_trim)
    assert len(pinned) == 2_500


def _offline_app(tmp_path: Path) -> faust.App:
    """The worker app as ``streams.app.create_app`` builds it; nothing connects until the app starts."""
    from core.settings import Settings
    from streams.app import create_app

    return create_app(Settings(local_dir=tmp_path, kafka_bootstrap_servers="127.0.0.1:1", kafka_username="streams",
                               kafka_password="unused"))


def test_the_worker_app_runs_the_trim_on_a_timer(tmp_path: Path) -> None:
    from streams.app import TRIM_INTERVAL_S

    app = _offline_app(tmp_path)
    names = [getattr(task, "__name__", "") for task in app._app_tasks]
    assert "trim" in names and 0 < TRIM_INTERVAL_S <= 300, names


def test_a_failing_trim_does_not_stop_the_worker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    import asyncio

    from streams import app as streams_app

    def broken() -> bool:
        raise OSError("no such call")

    monkeypatch.setattr(streams_app, "trim_memory", broken)
    app = _offline_app(tmp_path)
    [timer] = [task for task in app._app_tasks if getattr(task, "__name__", "") == "trim"]
    asyncio.run(inspect.unwrap(timer)())  # one tick of the timer's own body: logged, not raised
    assert "returning freed memory to the OS failed" in caplog.text


_FRAGMENT = """
import sys
from pathlib import Path
from core import runtime
def rss(): return int(Path("/proc/self/statm").read_text().split()[1]) * 4096
if sys.argv[1] == "tuned":
    assert runtime.tune_allocator()
big = bytes(8 * 2**20)  # a fetched batch: glibc raises its mmap threshold when this is freed
del big
base = rss()
buffers, pins = [], []
for i in range(200):  # a backlog's transient buffers, with small long-lived allocations between them
    buffers.append(bytes(256 * 1024 + i))
    pins.append(bytes(600 + i))
del buffers
print((rss() - base) / 2**20)
"""


@pytest.mark.skipif(not Path("/proc/self/statm").exists(), reason="reads /proc (Linux)")
def test_freed_large_buffers_leave_no_resident_memory_with_the_tuned_allocator() -> None:
    import subprocess
    import sys

    def grown_mib(mode: str) -> float:
        out = subprocess.run([sys.executable, "-c", _FRAGMENT, mode], capture_output=True, text=True, check=True,
                             cwd=Path(__file__).resolve().parents[2])
        return float(out.stdout.strip())

    untuned, tuned = grown_mib("default"), grown_mib("tuned")
    assert untuned > 12, f"glibc's defaults kept only {untuned:.1f} MiB: the test no longer shows the effect"
    assert tuned < 4, f"{tuned:.1f} MiB of freed buffers stayed resident with the tuned allocator"
