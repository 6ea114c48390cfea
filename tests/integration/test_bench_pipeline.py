"""The benchmark's pipeline row on the real broker (bench.pipeline.pipeline_run): the bare loop, the faust no-op
agent (timed by its own clock: it drains the events in a few tenths of a second) and the worker over the same
events, and none of the measurement's topics left afterwards."""

from __future__ import annotations

import pytest

from bench.pipeline import pipeline_run
from bench.workload import load_items
from core.settings import Settings
from tests.bench_services import bench_services, topics_left

pytestmark = pytest.mark.integration

EVENTS = 3_000


def test_the_bare_loop_the_noop_agent_and_the_worker_drain_the_same_events(settings: Settings, pg_server_dsn: str,
                                                                          unique: str) -> None:
    svc = bench_services(settings, pg_server_dsn, unique)
    lines: list[str] = []
    run = pipeline_run(svc, load_items(EVENTS), label="p1", log_dir=settings.local_dir / f"pipe-{unique}",
                       progress=lines.append)
    assert run.events == EVENTS and run.baseline_rate is not None and run.baseline_rate > 0
    assert run.noop_rate is not None and run.noop_rate > 0, lines  # timed, even when within one poll
    assert any("faust no-op agent: 3,000 events" in line and "its own clock" in line for line in lines), lines
    assert 0 < run.timing.events <= EVENTS and run.timing.seconds > 0 and run.timing.cpu_seconds > 0
    assert topics_left(settings, unique) == []
