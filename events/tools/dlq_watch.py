"""``python -m events.tools dlq watch``: the dead-letter topic's size and age per reason as Prometheus metrics
(I/O; the counting is :class:`events.tools.dlq.Census`). It follows ``alliance.dlq`` from its beginning as
the ``ops`` principal, forgets what retention deletes, and serves ``/metrics`` (names are a contract with
``infra/prometheus/``)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from kafka import KafkaConsumer, TopicPartition
from kafka.errors import KafkaError
from prometheus_client import CollectorRegistry, Gauge, start_http_server

from core.kafka_access import KafkaAccess
from events.tools.dlq import Census, parse
from events.tools.publisher import PublisherError


class DlqMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.records = Gauge("alliance_dlq_records", "records on the dead-letter topic (within its retention)",
                             ["reason", "university"], registry=registry)
        self.oldest = Gauge("alliance_dlq_oldest_age_seconds", "age of the oldest dead-letter record per reason",
                            ["reason"], registry=registry)
        self.newest = Gauge("alliance_dlq_newest_age_seconds", "age of the newest dead-letter record per reason",
                            ["reason"], registry=registry)
        self.read = Gauge("alliance_dlq_watch_records_read", "dead-letter records read since the watcher started",
                          registry=registry)

    def show(self, census: Census, read: int, now_ms: int) -> None:
        counts, oldest, newest = census.figures(now_ms)
        for gauge in (self.records, self.oldest, self.newest):
            gauge.clear()  # a reason retention emptied disappears
        for (reason, university), n in counts.items():
            self.records.labels(reason=reason, university=university).set(n)
        for reason, age in oldest.items():
            self.oldest.labels(reason=reason).set(age)
        for reason, age in newest.items():
            self.newest.labels(reason=reason).set(age)
        self.read.set(read)


def watch(kafka: KafkaAccess, topic: str, metrics: DlqMetrics, *, interval_s: float = 30.0,
          stop: threading.Event | None = None, on_round: Callable[[int], None] | None = None) -> None:
    """Follow ``topic`` until ``stop`` is set, refreshing the metrics at least every ``interval_s``."""
    stop = stop or threading.Event()
    try:
        consumer = KafkaConsumer(**kafka.kafka_python(), enable_auto_commit=False, client_id="alliance-dlq-watch")
    except KafkaError as exc:
        raise PublisherError(f"cannot connect to {kafka}: {exc}") from None
    census, read, refreshed = Census(), 0, 0.0
    try:
        partitions = consumer.partitions_for_topic(topic)
        if not partitions:
            raise PublisherError(f"topic {topic} does not exist on {kafka.bootstrap} or {kafka.principal} may not "
                                 "read it")
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        while not stop.is_set():
            for records in consumer.poll(timeout_ms=1000).values():
                for r in records:
                    census.add(parse(r.partition, r.offset, r.timestamp, None, r.headers))
                    read += 1
            if time.monotonic() - refreshed >= interval_s:  # (at once on the first round)
                for tp, start in consumer.beginning_offsets(tps).items():
                    census.forget_before(tp.partition, start)
                metrics.show(census, read, int(time.time() * 1000))
                refreshed = time.monotonic()
                if on_round is not None:
                    on_round(read)
    finally:
        consumer.close()


def serve(kafka: KafkaAccess, topic: str, port: int, interval_s: float) -> None:
    registry = CollectorRegistry()
    metrics = DlqMetrics(registry)
    start_http_server(port, registry=registry)
    watch(kafka, topic, metrics, interval_s=interval_s)
