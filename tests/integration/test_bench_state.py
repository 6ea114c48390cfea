"""The benchmark's state row (bench.state.measure) and publisher row (bench.publisher.measure) on the real broker,
at a small size: every point measured, and none of their topics left on the broker afterwards. Before
2026-12-06 (fifteenth session) neither dropped its topics: the in-memory store's days of history stayed on the
broker while the RocksDB worker was measured beside them, and so did every publisher round's topics."""

from __future__ import annotations

import pytest

from bench import publisher, state
from bench.workload import load_items
from core.settings import Settings
from tests.bench_services import bench_services, topics_left

pytestmark = pytest.mark.integration


def test_the_state_row_measures_each_store_and_drops_its_topics(settings: Settings, pg_server_dsn: str,
                                                                unique: str) -> None:
    svc = bench_services(settings, pg_server_dsn, unique)
    lines: list[str] = []
    per_day = 300
    points = state.measure(svc, per_day, settings.local_dir / f"state-{unique}", progress=lines.append, steps=(1,))
    assert [(p.store, p.days, p.events) for p in points] == [(s, 1, per_day) for s in state.STORES]
    for p in points:
        # the restart is timed to readiness, the memory read from /proc, the day's CPU from the kernel
        assert p.rss_mb > 0 and p.rss_after_restart_mb > 0 and p.restart_s > 0
        assert p.day_events_per_s > 0 and p.day_cpu_us_per_event > 0
    for store in state.STORES:
        assert any(f"topics of state-{store}" in line and line.startswith("  dropped the ") for line in lines), lines
    assert topics_left(settings, unique) == []


def test_the_publisher_row_measures_every_variant_and_drops_its_topics(settings: Settings, pg_server_dsn: str,
                                                                       unique: str) -> None:
    svc = bench_services(settings, pg_server_dsn, unique)
    lines: list[str] = []
    rates = publisher.measure(svc, load_items(300), rounds=1, progress=lines.append)
    assert rates.raw > 0 and rates.dicts > 0 and rates.models > 0
    assert sum("publisher round 1/1" in line for line in lines) == 3, lines
    assert topics_left(settings, unique) == []
