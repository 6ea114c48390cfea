"""The benchmark's ``pipeline-revision`` measurement (bench.revision.compare_pipelines) on the real broker: an
earlier revision's worker (this clone's HEAD, exported with ``git archive``) and this tree's drain the same
events, each on its own fresh topics, and every topic of the measurement is gone afterwards."""

from __future__ import annotations

import pytest

from bench import revision
from bench.workload import load_items
from core.settings import Settings
from tests.bench_services import bench_services, topics_left

pytestmark = pytest.mark.integration

EVENTS = 3_000


def test_an_earlier_revisions_worker_and_this_trees_drain_the_same_events(settings: Settings, pg_server_dsn: str,
                                                                          unique: str) -> None:
    svc = bench_services(settings, pg_server_dsn, unique)
    items = load_items(EVENTS)
    lines: list[str] = []
    cmp = revision.compare_pipelines(svc, items, "HEAD", 1, settings.local_dir / f"rev-{unique}",
                                     progress=lines.append)
    assert cmp.revision == "HEAD" and len(cmp.earlier) == len(cmp.current) == 1
    for timing in (*cmp.earlier, *cmp.current):  # each drain applied every event (counted from its first batch on)
        assert 0 < timing.events <= EVENTS and timing.seconds > 0 and timing.cpu_seconds > 0
    assert cmp.rate_ratio > 0 and cmp.cpu_ratio > 0
    # one round: its own ratios, and no spread to report
    assert cmp.earlier_rounds == (0,) and cmp.pairs() == [(cmp.earlier[0], cmp.current[0])]
    assert cmp.rate_per_round.ratios == (cmp.current[0].rate / cmp.earlier[0].rate,)
    assert cmp.cpu_per_round.ratios == (cmp.earlier[0].cpu_us_per_event / cmp.current[0].cpu_us_per_event,)
    assert cmp.rate_per_round.stderr is None
    assert any("round 1/1, HEAD" in line for line in lines) and any("this tree" in line for line in lines)
    assert topics_left(settings, unique) == []
