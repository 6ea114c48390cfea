"""The Faust worker's own metrics (``alliance_*``), registered on an injected registry.

The worker registers them and faust's internal sensors (``faust.sensors.prometheus``,
``name_prefix=FAUST_SENSOR_PREFIX``) and serves them at ``/metrics`` and ``/metrics/faust`` on the faust web
port (6066); Prometheus scrapes one target per worker (job ``alliance-worker``).
"""

from __future__ import annotations

import time
from collections import Counter as Tally  # (prometheus_client.Counter is the metric)
from collections.abc import Iterable
from datetime import datetime

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from core.metrics import Children, metric_names, observe_many
from events.errors import REASON_CODES
from events.topics import AGGREGATES, Family

FAUST_SENSOR_PREFIX = "faust"
"""``name_prefix`` the worker passes to ``faust.sensors.prometheus.setup_prometheus_sensors``."""

FAMILIES: tuple[str, ...] = tuple(f.value for f in Family)
STAGES: tuple[str, ...] = ("ingest", "tables", "aggregate")
AGENTS: tuple[str, ...] = ("ingest", "tables", "rollup")
AGGREGATE_NAMES: tuple[str, ...] = tuple(AGGREGATES)

# occurred_at -> table update: events may be published by a university minutes or hours late.
EVENT_LATENCY_BUCKETS: tuple[float, ...] = (
    0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0, 21600.0, 86400.0,
)
# Kafka record timestamp -> table update: inside the pipeline, normally milliseconds.
PIPELINE_LATENCY_BUCKETS: tuple[float, ...] = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
)
BATCH_BUCKETS: tuple[float, ...] = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000)


class PipelineMetrics:
    """Metrics of the Faust worker, registered on the injected ``registry``."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self._child = Children()  # for the recorders called per event
        self.events_ingested = Counter(
            "alliance_events_ingested_total",
            "Valid, deduplicated events accepted by the ingest agent.",
            ["family", "university"], registry=registry,
        )
        self.events_rejected = Counter(
            "alliance_events_rejected_total",
            "Events routed to the dead-letter topic, by reason (events.errors.REASON_CODES).",
            ["university", "reason"], registry=registry,
        )
        self.event_latency = Histogram(
            "alliance_event_latency_seconds",
            "Time from the event's occurred_at to the table update that reflects it.",
            ["family"], buckets=EVENT_LATENCY_BUCKETS, registry=registry,
        )
        self.pipeline_latency = Histogram(
            "alliance_pipeline_latency_seconds",
            "Time from the Kafka record timestamp to the table update, by pipeline stage.",
            ["stage"], buckets=PIPELINE_LATENCY_BUCKETS, registry=registry,
        )
        self.aggregates_published = Counter(
            "alliance_aggregates_published_total",
            "Records published to the compacted alliance.agg.* topics.",
            ["aggregate"], registry=registry,
        )
        self.table_keys = Gauge(
            "alliance_table_keys",
            "Keys held in a Faust table (this worker's active partitions).",
            ["table"], registry=registry,
        )
        self.consumer_lag = Gauge(
            "alliance_consumer_lag_messages",
            "Messages between the consumer position and the partition end offset.",
            ["group", "topic", "partition"], registry=registry,
        )
        self.partition_rewinds = Counter(
            "alliance_worker_partition_rewinds_total",
            "Partitions sought back to their committed offset after faust stopped delivering them.",
            ["agent"], registry=registry,
        )
        self.records_replayed = Counter(
            "alliance_records_replayed_total",
            "Records an agent re-read after a crash or rebalance that it had already applied (not client "
            "errors: the ingest sends their canonical copy again, and nothing goes to the dead-letter topic).",
            ["agent"], registry=registry,
        )
        self.batch_events = Histogram(
            "alliance_worker_batch_events",
            "Events handled per batch (stream.take) by an agent.",
            ["agent"], buckets=BATCH_BUCKETS, registry=registry,
        )
        # Series that exist from the start, so rate()/absent() alerts see 0 rather than nothing.
        for family in FAMILIES:
            self.event_latency.labels(family=family)
        for stage in STAGES:
            self.pipeline_latency.labels(stage=stage)
        for aggregate in AGGREGATE_NAMES:
            self.aggregates_published.labels(aggregate=aggregate)
        for agent in AGENTS:
            self.partition_rewinds.labels(agent=agent)
            self.records_replayed.labels(agent=agent)

    def prime(self, universities: Iterable[str]) -> None:
        """Create the zero-valued ingest/reject series of every member university."""
        for university in universities:
            for family in FAMILIES:
                self.events_ingested.labels(family=family, university=university)
            for reason in REASON_CODES:
                self.events_rejected.labels(university=university, reason=reason)

    # Convenience recorders: they keep label values inside the fixed sets.

    def record_ingested(self, family: str, university: str, occurred_at: datetime | None = None,
                        *, now: float | None = None, n: int = 1) -> None:
        _check(family, FAMILIES, "family")
        self.events_ingested.labels(family=family, university=university).inc(n)
        if occurred_at is not None:
            self.observe_event_latency(family, occurred_at, now=now)

    def record_rejected(self, university: str, reason: str, n: int = 1) -> None:
        _check(reason, REASON_CODES, "reason")
        self.events_rejected.labels(university=university, reason=reason).inc(n)

    def record_replayed(self, agent: str, n: int = 1) -> None:
        _check(agent, AGENTS, "agent")
        self.records_replayed.labels(agent=agent).inc(n)

    def observe_event_latency(self, family: str, occurred_at: datetime, *, now: float | None = None) -> None:
        """``occurred_at`` must be timezone-aware; negative values (clock skew) are clamped to 0."""
        self.observe_event_latencies([(family, occurred_at)], now=now)

    def observe_event_latencies(self, events: Iterable[tuple[str, datetime]], *, now: float | None = None) -> None:
        """``observe_event_latency`` for a batch's (family, occurred_at) pairs (each label resolved once)."""
        now_s = time.time() if now is None else now
        by_family: dict[str, list[float]] = {}
        for family, occurred_at in events:
            by_family.setdefault(family, []).append(max(0.0, now_s - occurred_at.timestamp()))
        for family, amounts in by_family.items():
            _check(family, FAMILIES, "family")
            observe_many(self._child(self.event_latency, family), amounts)

    def observe_pipeline_latency(self, stage: str, record_timestamp_ms: int | float,
                                 *, now: float | None = None) -> None:
        """``record_timestamp_ms`` is the Kafka record timestamp (milliseconds since the epoch)."""
        self.observe_pipeline_latencies(stage, [record_timestamp_ms], now=now)

    def observe_pipeline_latencies(self, stage: str, record_timestamps_ms: Iterable[int | float],
                                   *, now: float | None = None) -> None:
        """One observation per record of a batch (the label is resolved once)."""
        _check(stage, STAGES, "stage")
        now_s = time.time() if now is None else now
        observe_many(self.pipeline_latency.labels(stage=stage),
                     [max(0.0, now_s - ts / 1000.0) for ts in record_timestamps_ms])

    def record_rewind(self, agent: str) -> None:
        _check(agent, AGENTS, "agent")
        self.partition_rewinds.labels(agent=agent).inc()

    def record_aggregate(self, aggregate: str, n: int = 1) -> None:
        _check(aggregate, AGGREGATE_NAMES, "aggregate")
        self.aggregates_published.labels(aggregate=aggregate).inc(n)

    def record_aggregates(self, aggregates: Iterable[str]) -> None:
        """``record_aggregate`` for every record of a batch (one label look-up per aggregate)."""
        for aggregate, n in Tally(aggregates).items():
            self.record_aggregate(aggregate, n)

    def set_table_keys(self, table: str, keys: int) -> None:
        self.table_keys.labels(table=table).set(keys)

    def observe_batch(self, agent: str, events: int) -> None:
        self.batch_events.labels(agent=agent).observe(events)


def _check(value: str, allowed: tuple[str, ...], what: str) -> None:
    if value not in allowed:
        raise ValueError(f"{what} {value!r} is not one of {', '.join(allowed)}")


def faust_sensor_names(prefix: str = FAUST_SENSOR_PREFIX) -> set[str]:
    """Series names of faust's Prometheus sensors (faust.sensors.prometheus) for ``prefix``."""
    from faust.sensors.prometheus import FaustMetrics

    registry = CollectorRegistry()
    FaustMetrics.create(registry, prefix)
    return metric_names(registry)
