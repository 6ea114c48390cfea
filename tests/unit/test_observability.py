"""core.metrics and streams.metrics: metric definitions, the /metrics + health server, consumer lag helpers."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.request import urlopen

import aiohttp
import pytest
from aiokafka import TopicPartition
from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.exposition import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from core.metrics import (
    bound_port,
    consumer_lag,
    metric_names,
    observe_many,
    serve,
    set_consumer_lag,
    update_consumer_lag,
)
from events.errors import REASON_CODES
from events.reference import UNIVERSITIES
from infra.processes import free_port
from infra.tools import promtool
from streams.metrics import FAMILIES, FAUST_SENSOR_PREFIX, STAGES, PipelineMetrics, faust_sensor_names

EXPECTED: dict[str, tuple[str, set[str]]] = {
    # family name (as parsed from the exposition) -> (type, labels)
    "alliance_events_ingested": ("counter", {"family", "university"}),
    "alliance_events_rejected": ("counter", {"university", "reason"}),
    "alliance_event_latency_seconds": ("histogram", {"family"}),
    "alliance_pipeline_latency_seconds": ("histogram", {"stage"}),
    "alliance_aggregates_published": ("counter", {"aggregate"}),
    "alliance_table_keys": ("gauge", {"table"}),
    "alliance_consumer_lag_messages": ("gauge", {"group", "topic", "partition"}),
    "alliance_worker_batch_events": ("histogram", {"agent"}),
    "alliance_worker_partition_rewinds": ("counter", {"agent"}),
    "alliance_records_replayed": ("counter", {"agent"}),
}


def _exercised() -> tuple[CollectorRegistry, PipelineMetrics]:
    registry = CollectorRegistry()
    m = PipelineMetrics(registry)
    m.prime(list(UNIVERSITIES)[:2])
    now = 1_700_000_100.0
    m.record_ingested("recruitment", "scu", datetime.fromtimestamp(now - 2.0, UTC), now=now)
    m.record_rejected("scu", "duplicate")
    m.observe_pipeline_latency("tables", (now - 0.02) * 1000, now=now)
    m.record_aggregate("fairs", 3)
    m.set_table_keys("postings", 42)
    m.observe_batch("ingest", 17)
    m.record_rewind("tables")
    set_consumer_lag(m.consumer_lag, "alliance-worker", {("alliance.ingest.scu", 0): 5})
    return registry, m


def _families(registry: CollectorRegistry) -> dict[str, object]:
    text = generate_latest(registry).decode()
    return {f.name: f for f in text_string_to_metric_families(text)}


def test_metrics_register_on_the_injected_registry_only() -> None:
    from prometheus_client import REGISTRY

    registry, _ = _exercised()
    assert "alliance_events_ingested_total" in metric_names(registry)
    assert REGISTRY.get_sample_value("alliance_events_ingested_total",
                                     {"family": "recruitment", "university": "scu"}) is None
    # a second instance on a second registry does not collide
    PipelineMetrics(CollectorRegistry())


def test_names_types_and_labels_are_as_specified() -> None:
    registry, _ = _exercised()
    families = _families(registry)
    for name, (kind, labels) in EXPECTED.items():
        family = families[name]
        assert family.type == kind, name  # type: ignore[attr-defined]
        sample_labels = {k for s in family.samples for k in s.labels if k != "le"}  # type: ignore[attr-defined]
        assert sample_labels == labels, name
    # prometheus_client also exposes a *_created gauge per counter/histogram child (text format 0.0.4)
    assert {n for n in families if not n.endswith("_created")} == set(EXPECTED)
    assert all(n.startswith("alliance_") for n in families)


def test_recorded_values() -> None:
    registry, _ = _exercised()
    get = registry.get_sample_value
    assert get("alliance_events_ingested_total", {"family": "recruitment", "university": "scu"}) == 1
    assert get("alliance_events_rejected_total", {"university": "scu", "reason": "duplicate"}) == 1
    assert get("alliance_event_latency_seconds_sum", {"family": "recruitment"}) == pytest.approx(2.0)
    assert get("alliance_pipeline_latency_seconds_sum", {"stage": "tables"}) == pytest.approx(0.02, abs=1e-6)
    assert get("alliance_aggregates_published_total", {"aggregate": "fairs"}) == 3
    assert get("alliance_table_keys", {"table": "postings"}) == 42
    assert get("alliance_worker_batch_events_sum", {"agent": "ingest"}) == 17
    assert get("alliance_consumer_lag_messages",
               {"group": "alliance-worker", "topic": "alliance.ingest.scu", "partition": "0"}) == 5


def test_label_sets_are_fixed_and_primed() -> None:
    registry, m = _exercised()
    # primed zero series: every reason code for a primed university, every family, every stage
    for reason in REASON_CODES:
        assert registry.get_sample_value("alliance_events_rejected_total",
                                         {"university": "scu", "reason": reason}) is not None
    get = registry.get_sample_value
    for stage in STAGES:
        assert get("alliance_pipeline_latency_seconds_count", {"stage": stage}) is not None
    for family in FAMILIES:
        assert get("alliance_event_latency_seconds_count", {"family": family}) is not None
    with pytest.raises(ValueError, match="reason"):
        m.record_rejected("scu", "because")
    with pytest.raises(ValueError, match="family"):
        m.record_ingested("gossip", "scu")
    with pytest.raises(ValueError, match="stage"):
        m.observe_pipeline_latency("elsewhere", 0)
    with pytest.raises(ValueError, match="aggregate"):
        m.record_aggregate("everything")


def test_negative_latency_from_clock_skew_is_clamped() -> None:
    registry = CollectorRegistry()
    m = PipelineMetrics(registry)
    m.observe_event_latency("jobfair", datetime.fromtimestamp(1010.0, UTC), now=1000.0)
    assert registry.get_sample_value("alliance_event_latency_seconds_sum", {"family": "jobfair"}) == 0.0
    assert registry.get_sample_value("alliance_event_latency_seconds_count", {"family": "jobfair"}) == 1.0


def test_observe_many_records_exactly_what_observe_one_by_one_records() -> None:
    """The oracle: prometheus_client's own ``observe`` for each amount, on a twin registry."""
    import math
    import random

    rng = random.Random(3)
    batches = [[rng.choice([0.0, 0.005, 0.1, 2.5, 10.0, 1e9, -1.0]) if rng.random() < 0.2 else rng.expovariate(2)
                for _ in range(rng.randrange(0, 300))] for _ in range(20)]
    batches.append([math.inf, 0.25, math.inf])
    exposed = []
    for bulk in (False, True):
        registry = CollectorRegistry()
        plain = Histogram("h_seconds", "h", registry=registry)
        labelled = Histogram("l_seconds", "l", ["stage"], registry=registry, buckets=(0.01, 0.1, 1.0))
        for batch in batches:
            for metric in (plain, labelled.labels(stage="ingest")):
                if bulk:
                    observe_many(metric, batch)
                else:
                    for amount in batch:
                        metric.observe(amount)
        families = {(s.name, tuple(sorted(s.labels.items()))): s.value
                    for f in text_string_to_metric_families(generate_latest(registry).decode()) for s in f.samples
                    if not s.name.endswith("_created")}
        exposed.append(families)
    plain_one, bulk_one = exposed
    assert plain_one.keys() == bulk_one.keys()
    for key, value in plain_one.items():  # a sum may differ in the last bits (another order of additions)
        assert bulk_one[key] == (pytest.approx(value, rel=1e-12) if key[0].endswith("_sum") else value), key
    nan = Histogram("n_seconds", "n", registry=CollectorRegistry(), buckets=(1.0,))
    observe_many(nan, [0.5, math.nan])  # like observe: NaN counts in no bucket, and the sum is NaN
    assert [s.value for s in nan.collect()[0].samples if s.name == "n_seconds_bucket"] == [1.0, 1.0]
    assert math.isnan(next(s.value for s in nan.collect()[0].samples if s.name == "n_seconds_sum"))
    with pytest.raises(ValueError):  # a histogram with labels is observed through its children only
        observe_many(Histogram("x_seconds", "x", ["a"], registry=CollectorRegistry()), [1.0])


def test_set_consumer_lag_drops_revoked_partitions_of_its_group_only() -> None:
    registry = CollectorRegistry()
    m = PipelineMetrics(registry)
    set_consumer_lag(m.consumer_lag, "g1", {("t", 0): 3, ("t", 1): 4})
    set_consumer_lag(m.consumer_lag, "g2", {("t", 0): 9})
    set_consumer_lag(m.consumer_lag, "g1", {("t", 1): 1})
    get = registry.get_sample_value
    assert get("alliance_consumer_lag_messages", {"group": "g1", "topic": "t", "partition": "0"}) is None
    assert get("alliance_consumer_lag_messages", {"group": "g1", "topic": "t", "partition": "1"}) == 1
    assert get("alliance_consumer_lag_messages", {"group": "g2", "topic": "t", "partition": "0"}) == 9


@dataclass
class FakeConsumer:
    """The three AIOKafkaConsumer methods consumer_lag() uses."""

    ends: dict[TopicPartition, int]
    positions: dict[TopicPartition, int]
    end_calls: list[list[TopicPartition]] = field(default_factory=list)

    def assignment(self) -> set[TopicPartition]:
        return set(self.positions)

    async def end_offsets(self, partitions: list[TopicPartition]) -> dict[TopicPartition, int]:
        self.end_calls.append(list(partitions))
        return {tp: self.ends[tp] for tp in partitions}

    async def position(self, tp: TopicPartition) -> int:
        return self.positions[tp]


async def test_consumer_lag_is_end_offset_minus_position() -> None:
    a, b, c = TopicPartition("x", 0), TopicPartition("x", 1), TopicPartition("y", 0)
    fake = FakeConsumer(ends={a: 10, b: 5, c: 7}, positions={a: 4, b: 5, c: 8})
    lags = await consumer_lag(fake, "g")  # type: ignore[arg-type]
    assert lags == {("x", 0): 6, ("x", 1): 0, ("y", 0): 0}  # never negative
    assert len(fake.end_calls) == 1  # one ListOffsets round trip for all partitions
    registry = CollectorRegistry()
    m = PipelineMetrics(registry)
    await update_consumer_lag(m.consumer_lag, fake, "g")  # type: ignore[arg-type]
    assert registry.get_sample_value("alliance_consumer_lag_messages",
                                     {"group": "g", "topic": "x", "partition": "0"}) == 6
    assert await consumer_lag(FakeConsumer(ends={}, positions={}), "g") == {}  # type: ignore[arg-type]


@pytest.fixture
async def served() -> AsyncIterator[tuple[int, dict[str, bool]]]:
    registry, _ = _exercised()
    state = {"ready": False}
    runner = await serve(registry, free_port(), ready=lambda: state["ready"], host="127.0.0.1")
    try:
        yield bound_port(runner), state
    finally:
        await runner.cleanup()


async def test_serve_answers_metrics_healthz_and_readyz(served: tuple[int, dict[str, bool]]) -> None:
    port, state = served
    base = f"http://127.0.0.1:{port}"
    timeout = aiohttp.ClientTimeout(total=10)
    async with aiohttp.ClientSession(timeout=timeout) as http:
        async with http.get(f"{base}/metrics") as resp:
            assert resp.status == 200
            assert resp.headers["Content-Type"].startswith("text/plain")
            text = await resp.text()
        assert 'alliance_events_ingested_total{family="recruitment",university="scu"} 1.0' in text
        async with http.get(f"{base}/healthz") as resp:
            assert resp.status == 200
        async with http.get(f"{base}/readyz") as resp:
            assert resp.status == 503
            assert (await resp.json())["status"] == "not ready"
        state["ready"] = True
        async with http.get(f"{base}/readyz") as resp:
            assert resp.status == 200
            assert (await resp.json())["status"] == "ready"


async def test_readyz_is_503_when_the_probe_raises() -> None:
    def broken() -> bool:
        raise RuntimeError("database gone")

    runner = await serve(CollectorRegistry(), 0, ready=broken, host="127.0.0.1")
    try:
        port = bound_port(runner)
        body = await asyncio.to_thread(_get_error_body, f"http://127.0.0.1:{port}/readyz")
        assert body == {"status": "not ready", "error": "database gone"}
    finally:
        await runner.cleanup()


def _get_error_body(url: str) -> object:
    from urllib.error import HTTPError

    try:
        urlopen(url, timeout=10)
    except HTTPError as exc:
        assert exc.code == 503
        return json.loads(exc.read())
    raise AssertionError("expected 503")


async def test_promtool_check_metrics_on_the_scraped_text(served: tuple[int, dict[str, bool]]) -> None:
    port, _ = served
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http:
        async with http.get(f"http://127.0.0.1:{port}/metrics") as resp:
            text = await resp.text()
    result = await asyncio.to_thread(promtool, "check", "metrics", stdin=text)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == "" and result.stderr.strip() == "", result.stdout + result.stderr


def test_faust_sensor_names_follow_the_prefix() -> None:
    names = faust_sensor_names()
    assert f"{FAUST_SENSOR_PREFIX}_messages_received_total" in names
    assert f"{FAUST_SENSOR_PREFIX}_events_runtime_ms_bucket" in names
    assert all(n.startswith(f"{FAUST_SENSOR_PREFIX}_") for n in names)
    assert "x_total_rebalances" in faust_sensor_names("x")


def test_the_cached_faust_sensors_expose_exactly_what_fausts_prometheus_monitor_does() -> None:
    """streams.sensors.Sensors against faust's own PrometheusMonitor (the oracle): the same hook calls give
    the same counters and gauges (latency histograms aside: they measure time)."""
    class Thing:  # a stream, its task, a table, a message (faust's monitor keeps weak references to some)
        def __init__(self, **fields: Any) -> None:
            self.__dict__.update(fields)

    from typing import Any

    from faust.sensors.prometheus import FaustMetrics, PrometheusMonitor
    from faust.types import TP
    from prometheus_client import generate_latest

    from streams.sensors import Sensors

    def exposition(monitor_class: type[PrometheusMonitor]) -> list[str]:
        registry = CollectorRegistry()
        monitor = monitor_class(metrics=FaustMetrics.create(registry, "faust"))
        owner = Thing()
        streams = [Thing(shortlabel=f"Stream: alliance.ingest.{u}", task_owner=owner) for u in ("scu", "cqu")]
        tables = [Thing(name=n) for n in ("entity-state", "rollups")]
        for i in range(40):
            tp = TP(f"alliance.ingest.{('scu', 'cqu')[i % 2]}", i % 3)
            message = Thing(time_in=None)
            monitor.on_message_in(tp, i, message)  # type: ignore[arg-type]
            state = monitor.on_stream_event_in(tp, i, streams[i % 2], None)  # type: ignore[arg-type]
            monitor.on_table_get(tables[i % 2], "k")  # type: ignore[arg-type]
            if i % 3:
                monitor.on_table_set(tables[0], "k", i)  # type: ignore[arg-type]
            if i % 5 == 0:
                monitor.on_table_del(tables[1], "k")  # type: ignore[arg-type]
            sent = monitor.on_send_initiated(None, f"alliance.events.{i % 4}", None, 1, 2)  # type: ignore[arg-type]
            monitor.on_send_completed(None, sent, None)  # type: ignore[arg-type]
            monitor.on_stream_event_out(tp, i, streams[i % 2], None, state)  # type: ignore[arg-type]
            monitor.on_message_out(tp, i, message)  # type: ignore[arg-type]
        return [line for line in generate_latest(registry).decode().splitlines()
                if not line.startswith("#") and "latency" not in line and "runtime" not in line
                and "_created" not in line]

    ours, fausts = exposition(Sensors), exposition(PrometheusMonitor)
    assert ours == fausts
    assert any(line.startswith('faust_table_operations_total{operation="keys_updated",table="table.entity-state"}')
               for line in ours)
    assert any("faust_topic_messages_sent_total" in line and line.endswith(" 10.0") for line in ours)
