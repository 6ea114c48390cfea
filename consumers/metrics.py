"""Projector metrics (names are a contract with the Prometheus configs) and the /metrics, /healthz,
/readyz HTTP endpoints."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class ProjectorMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.batch_rows = Histogram(
            "alliance_projector_batch_rows", "Kafka records per applied batch", registry=r,
            buckets=(1, 5, 10, 50, 100, 250, 500, 1000, 2500, 5000, 10000))
        self.batch_seconds = Histogram(
            "alliance_projector_batch_seconds", "Time to write one batch to PostgreSQL (one transaction)",
            registry=r, buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
        self.rows_total = Counter(
            "alliance_projector_rows_total", "Rows upserted into read-model tables", ["table"], registry=r)
        self.errors_total = Counter(
            "alliance_projector_errors_total",
            "Projector errors by kind (db, connect, reject, fatal)", ["kind"], registry=r)
        self.events_total = Counter(
            "alliance_projector_events_total", "Events projected, by family", ["family"], registry=r)
        self.lag = Gauge(
            "alliance_consumer_lag_messages", "Records between the stored offset and the partition end",
            ["group", "topic", "partition"], registry=r)
        self.last_batch = Gauge(
            "alliance_projector_last_batch_timestamp_seconds", "Unix time of the last committed batch",
            registry=r)

