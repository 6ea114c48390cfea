"""faust's own Prometheus sensors (served at ``/metrics/faust``), cheaper per record.

faust calls its monitor for every record read, every event an agent takes, every table read and write and
every record sent. Its ``PrometheusMonitor`` looks up the labelled child (``Counter.labels(...)``) on each of
those calls, which costs a few microseconds each time: several per event in the worker. ``Sensors`` keeps
the same series with the same values and looks each child up once (docs/benchmarks.md has the measurement).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any, cast
from weakref import WeakKeyDictionary

import faust
from aiohttp import web
from faust.sensors.monitor import Monitor
from faust.sensors.prometheus import FaustMetrics, PrometheusMonitor
from faust.types import TP, CollectionT, EventT, Message, PendingMessage, ProducerT, StreamT
from faust.web import Request, Response, View
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from core.metrics import Children, observe_many


class Sensors(PrometheusMonitor):
    """``faust.sensors.prometheus.PrometheusMonitor`` with its labelled children cached."""

    def __init__(self, metrics: FaustMetrics, **kwargs: Any) -> None:
        super().__init__(metrics=metrics, **kwargs)
        self._child = Children()
        self._stream_labels: WeakKeyDictionary[StreamT[Any], str] = WeakKeyDictionary()  # as faust's own lookups

    def on_message_in(self, tp: TP, offset: int, message: Message) -> None:
        Monitor.on_message_in(self, tp, offset, message)
        m = self._metrics
        m.messages_received.inc()
        m.active_messages.inc()
        self._child(m.messages_received_per_topics, tp.topic).inc()
        self._child(m.messages_received_per_topics_partition, tp.topic, str(tp.partition)).set(offset)

    def on_stream_event_in(self, tp: TP, offset: int, stream: StreamT[Any], event: EventT[Any]
                           ) -> dict[Any, Any] | None:
        state = Monitor.on_stream_event_in(self, tp, offset, stream, event)
        m = self._metrics
        m.total_events.inc()
        m.total_active_events.inc()
        label = self._stream_labels.get(stream)
        if label is None:
            label = self._stream_labels[stream] = f"stream.{self._stream_label(stream)}.events"
        self._child(m.total_events_per_stream, label).inc()
        return state

    def _table(self, table: CollectionT, operation: str) -> None:
        self._child(self._metrics.table_operations, f"table.{table.name}", operation).inc()

    def on_table_get(self, table: CollectionT, key: Any) -> None:
        Monitor.on_table_get(self, table, key)
        self._table(table, self.KEYS_RETRIEVED)

    def on_table_set(self, table: CollectionT, key: Any, value: Any) -> None:
        Monitor.on_table_set(self, table, key, value)
        self._table(table, self.KEYS_UPDATED)

    def on_table_del(self, table: CollectionT, key: Any) -> None:
        Monitor.on_table_del(self, table, key)
        self._table(table, self.KEYS_DELETED)

    def on_send_initiated(self, producer: ProducerT, topic: str, message: PendingMessage, keysize: int,
                          valsize: int) -> Any:
        self._child(self._metrics.topic_messages_sent, f"topic.{topic}").inc()
        return Monitor.on_send_initiated(self, producer, topic, message, keysize, valsize)


def batch_in(monitor: Monitor, agent: str, messages: Sequence[Message]) -> float:
    """What faust's ``on_message_in`` and ``on_stream_event_in`` record for every record an agent takes, for a
    whole batch from an inbox (streams.inbox) at once; returns the time it went in."""
    n = len(messages)
    monitor.messages_received_total += n
    monitor.messages_active += n
    monitor.events_total += n
    monitor.events_active += n
    per_topic = Counter(message.topic for message in messages)
    last = {message.tp: message.offset for message in messages}
    for topic, count in per_topic.items():
        monitor.messages_received_by_topic[topic] += count
    monitor.tp_read_offsets.update(last)
    if isinstance(monitor, Sensors):
        m, child = monitor._metrics, monitor._child
        m.messages_received.inc(n)
        m.active_messages.inc(n)
        m.total_events.inc(n)
        m.total_active_events.inc(n)
        child(m.total_events_per_stream, f"stream.{agent}.events").inc(n)
        for topic, count in per_topic.items():
            child(m.messages_received_per_topics, topic).inc(count)
        for tp, offset in last.items():
            child(m.messages_received_per_topics_partition, tp.topic, str(tp.partition)).set(offset)
    return monitor.time()


def batch_out(monitor: Monitor, messages: Sequence[Message], time_in: float) -> None:
    """What faust's ``on_stream_event_out`` and ``on_message_out`` record for every record of a processed
    batch (each record's runtime is its batch's)."""
    n = len(messages)
    runtime = monitor.time() - time_in
    monitor.messages_active -= n
    monitor.events_active -= n
    monitor.events_runtime.append(runtime)
    if isinstance(monitor, Sensors):
        m = monitor._metrics
        m.active_messages.dec(n)
        m.total_active_events.dec(n)
        # one observation per record, as faust's histogram counts events
        observe_many(m.events_runtime_latency, [monitor.secs_to_ms(runtime)] * n)


def table_reads(monitor: Monitor, table: CollectionT, n: int) -> None:
    """What faust's ``on_table_get`` records for ``n`` reads of ``table`` that did not go through faust (the
    agents read the store directly: streams.store.partition_reader, any_reader)."""
    if n <= 0:
        return
    monitor._table_or_create(table).keys_retrieved += n
    if isinstance(monitor, Sensors):
        monitor._child(monitor._metrics.table_operations, f"table.{table.name}", monitor.KEYS_RETRIEVED).inc(n)


def setup(app: faust.App, pattern: str, registry: CollectorRegistry, name_prefix: str) -> None:
    """What ``faust.sensors.prometheus.setup_prometheus_sensors`` does, with :class:`Sensors`."""
    app.monitor = Sensors(metrics=FaustMetrics.create(registry, name_prefix.replace("-", "_").replace(".", "_")))

    @app.page(pattern)
    class Metrics(View):
        async def get(self, request: Request) -> Response:
            return cast(Response, web.Response(body=generate_latest(registry),
                                               headers={"Content-Type": CONTENT_TYPE_LATEST}))
