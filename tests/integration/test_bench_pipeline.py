"""The benchmark's pipeline row on the real broker (bench.pipeline.pipeline_run): the bare loop, the faust no-op
agent (timed by its own clock: it drains the events in a few tenths of a second) and the worker over the same
events, and none of the measurement's topics left afterwards; and its latency row (bench.pipeline.latency_run)
on the worker kept running, split by agent hop; and the two rows as ``python -m bench`` runs them (bench.cli.Bench),
which drops the kept worker's topics once the latency row is over."""

from __future__ import annotations

import pytest

from bench.cli import Bench, build_parser
from bench.env import drop_measurement
from bench.pipeline import latency_run, pipeline_run
from bench.report import percentile
from bench.worker import Worker
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
    # timed by the worker's own clock: from its first ingest batch to its last tables batch, every event in it
    assert run.timing.events == EVENTS and run.timing.seconds > 0 and run.timing.cpu_seconds > 0
    assert 0 < run.timing.startup_seconds < 120
    assert topics_left(settings, unique) == []


def test_every_paced_event_is_matched_and_split_into_the_three_agents_hops(settings: Settings, pg_server_dsn: str,
                                                                          unique: str) -> None:
    svc = bench_services(settings, pg_server_dsn, unique)
    kept: list[Worker] = []
    try:
        # (EVENTS, not fewer: the drain before the latency row is timed, and 1,000 events were once all processed
        # within one 0.2 s poll of /freshness/, which the row refuses as untimable)
        run = pipeline_run(svc, load_items(EVENTS), label="l1", log_dir=settings.local_dir / f"lat-{unique}",
                           baseline=False, keep=kept, progress=lambda _: None)
        lat = latency_run(svc, kept, run.suffix, rate=150.0, duration=3.0, progress=lambda _: None, nice=10)
    finally:
        for worker in kept:
            worker.stop()
        drop_measurement(svc, "l1")
    assert lat.sent == 450 and lat.matched == lat.sent
    hops = lat.hops
    assert hops is not None and hops.unmatched == 0 and len(hops.ingest_ms) == lat.sent
    assert all(ms >= 0 for each in hops.by_hop().values() for ms in each)  # (one clock: each hop follows the last)
    # the hops of an event add up to its way to the aggregated topic, which the send-order matching measures too
    total = [sum(each) for each in zip(hops.ingest_ms, hops.tables_ms, hops.rollup_ms, strict=True)]
    assert min(lat.seconds_ms) <= percentile(total, 50) <= max(lat.seconds_ms)
    # the cores each side used while sending: both worked, and together not more than the machine has
    assert lat.cores["publisher"] > 0 and lat.cores["workers"] > 0 and lat.cores["others"] >= 0
    assert lat.cores["publisher"] + lat.cores["workers"] <= lat.cores["machine"] * 1.05
    assert topics_left(settings, unique) == []


def test_the_benchmark_drops_the_topics_of_the_worker_it_kept_for_the_latency_row(settings: Settings,
                                                                                  pg_server_dsn: str,
                                                                                  unique: str) -> None:
    """Every measurement drops its topics when it ends, so that the later ones do not run beside its partitions;
    the pipeline row's worker and topics are kept for the latency row, and dropped once that row is over (they
    were left on the broker for the rest of the run before 2026-12-06, fourteenth session)."""
    svc = bench_services(settings, pg_server_dsn, unique)
    args = build_parser().parse_args(["--only", "pipeline,latency", "--events", str(EVENTS),
                                      "--latency-seconds", "2", "--latency-warm-up", "0"])
    bench = Bench(svc, args)
    try:
        bench.run()
    finally:
        bench.release_kept()  # (a no-op when run() released them, as it must)
    rows = {r.name: r for r in bench.results}
    assert all(r.error is None for r in bench.results), [(r.name, r.error) for r in bench.results]
    latency = rows["latency p99 produce -> alliance.agg.windows"]
    assert latency.value is not None and latency.value > 0
    assert latency.parameters["matched"] == latency.parameters["sent"] > 0
    assert rows["pipeline events/s (1 worker) vs bare aiokafka loop"].value is not None
    assert bench.kept == [] and topics_left(settings, unique) == []
