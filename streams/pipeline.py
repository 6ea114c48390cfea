"""Faust glue: runs the pure ingest/engine/rollup code on batches of events and writes the results.

Every record a batch writes (table changelogs, canonical events, DLQ copies, partials, aggregates) goes
through one :class:`streams.writer.BatchWriter`, flushed once at the end of the batch. Table writes send each
changelog record to the partition of the event that caused it (batches mix partitions, so Faust's "current
event" would be wrong for all but the last one).
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import faust
from faust.types import EventT, TableT
from prometheus_client import CollectorRegistry

from events.base import Event
from events.codec import decode, encode
from events.errors import EventValidationError
from events.reference import UNIVERSITIES
from events.topics import PARTIALS_TOPIC, agg_topic, family_topic, ingest_topic
from streams import engine, rollup
from streams.domains import Domain
from streams.ingest import Accepted, Rejected, classify, readable_event_id, seen_key
from streams.metrics import PipelineMetrics
from streams.state import Values
from streams.writer import BatchWriter, Headers

INTERNAL = "internal"  # x-alliance-university of a rejected record read from an internal topic


def reject_headers(result: Rejected, msg: Any) -> Headers:
    """The x-alliance-reject-* headers of a record copied to the DLQ."""
    headers = [
        ("x-alliance-reject-reason", result.reason.encode()),
        ("x-alliance-reject-detail", result.detail.encode()),
        ("x-alliance-source-topic", msg.topic.encode()),
        ("x-alliance-source-partition", str(msg.partition).encode()),
        ("x-alliance-source-offset", str(msg.offset).encode()),
        ("x-alliance-university", result.university.encode()),
    ]
    if result.event_id:
        headers.append(("x-alliance-event-id", result.event_id.encode()))
    return headers


def _json(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), sort_keys=True).encode()


@dataclass
class Pipeline:
    app: faust.App
    registry: CollectorRegistry | None
    seen: TableT[str, Any]
    states: TableT[str, Any]
    applied: TableT[str, Any]
    partials: TableT[str, Any]
    rollups: TableT[str, Any]
    domains: dict[str, Domain]
    topic: Callable[[str], str]
    dlq: str
    metrics: PipelineMetrics | None = None
    last_batch_at: dict[str, float] = field(default_factory=dict)
    events_processed: dict[str, int] = field(default_factory=dict)
    events_applied: dict[str, int] = field(default_factory=dict)  # first-time events (replays excluded)
    university_of: dict[str, str] = field(default_factory=dict)  # ingest topic -> university code
    writer: BatchWriter = field(init=False)

    def __post_init__(self) -> None:
        self.university_of = {self.topic(ingest_topic(u)): u for u in UNIVERSITIES}
        if self.registry is not None and self.metrics is None:
            self.metrics = PipelineMetrics(self.registry)
        # faust's producer wraps one aiokafka producer; the writer batches onto it (see streams.writer)
        self.writer = BatchWriter(lambda: self.app.producer._ensure_producer())  # type: ignore[attr-defined]

    def _done(self, agent: str, n: int, applied: int | None = None) -> None:
        self.last_batch_at[agent] = time.time()
        self.events_processed[agent] = self.events_processed.get(agent, 0) + n
        if applied is not None:
            self.events_applied[agent] = self.events_applied.get(agent, 0) + applied
        if self.metrics is not None:
            self.metrics.observe_batch(agent, n)

    def _reject_internal(self, ev: EventT[bytes], reason: str, detail: str) -> None:
        """A record on an internal topic (canonical events, partials) that cannot be processed: copied to
        the DLQ with its reason, like ingest rejects, instead of stopping the agent (and its batch)."""
        msg = ev.message
        result = Rejected(reason, detail[:900], INTERNAL, readable_event_id(ev.value or b""))
        self.writer.add(self.dlq, msg.key, ev.value, headers=reject_headers(result, msg))
        if self.metrics is not None:
            self.metrics.record_rejected(INTERNAL, reason)

    # ------------------------------------------------------------------ ingest
    async def ingest(self, batch: Sequence[EventT[bytes]]) -> None:
        """Decide every record and write the dedupe table before the first await (the writer's flush): a
        rebalance can only revoke partitions at an await, and a table write for a partition this worker no
        longer owns would land in the changelog after the new owner's writes."""
        accepted: dict[str, list[Any]] = {}  # seen key -> Seen value, for the events accepted in this batch
        ingested: Counter[tuple[str, str]] = Counter()
        rejected: Counter[tuple[str, str]] = Counter()
        replays = 0
        now = datetime.now(UTC)

        def seen(key: str) -> Any:
            return accepted[key] if key in accepted else self.seen.get(key)

        for ev in batch:
            msg = ev.message
            university = self.university_of[msg.topic]
            # measured from the record's arrival; a producer's timestamp in the future does not move it
            received_at = min(now, datetime.fromtimestamp(msg.timestamp, UTC)) if msg.timestamp else now
            result = classify(ev.value, university, seen, partition=msg.partition, offset=msg.offset,
                              received_at=received_at)
            if isinstance(result, Accepted):
                event = result.event
                if not result.replay:
                    key = seen_key(university, str(event.event_id))
                    accepted[key] = result.seen.to_value()
                    self.writer.put(self.seen, msg.partition, key, accepted[key])
                    ingested[(event.family, event.source)] += 1
                else:
                    replays += 1
                headers = [("x-alliance-ingest-topic", msg.topic.encode()),
                           ("x-alliance-ingest-partition", str(msg.partition).encode()),
                           ("x-alliance-ingest-offset", str(msg.offset).encode())]
                self.writer.add(self.topic(family_topic(event.family)), event.key, encode(event), headers=headers)
            else:
                self.writer.add(self.dlq, msg.key, ev.value, headers=reject_headers(result, msg))
                rejected[(result.university, result.reason)] += 1
        await self.writer.flush()
        if (m := self.metrics) is not None:  # once per batch: per-event label look-ups cost more than counting
            for (family, university), n in ingested.items():
                m.record_ingested(family, university, n=n)
            for (university, reason), n in rejected.items():
                m.record_rejected(university, reason, n=n)
            if replays:
                m.record_replayed("ingest", replays)
            m.observe_pipeline_latencies("ingest", [ev.message.timestamp * 1000 for ev in batch])
        self._done("ingest", len(batch), applied=len(accepted))

    # ------------------------------------------------------------------ tables
    async def tables(self, batch: Sequence[EventT[bytes]]) -> None:
        """Table writes happen before the first await (see ingest). If a crash lands between them and the
        sends, the replay finds the events already applied (table ``applied``) and re-sends the same
        partials and views."""
        items: list[tuple[int, Event]] = []
        for ev in batch:  # a canonical topic holds what the ingest wrote, but a record that is not a valid
            try:          # event (written by anyone else) goes to the DLQ instead of stopping the agent
                items.append((ev.message.partition, decode(ev.value if ev.value is not None else b"")))
            except EventValidationError as exc:
                self._reject_internal(ev, exc.reason_code, str(exc))
        result = engine.process(items, self.domains, self.states.get, self.partials.get,
                                lambda key: self.applied.get(key) is not None)
        for key, (partition, state) in result.states.items():
            self.writer.put(self.states, partition, key, state)
        for key, partition in result.applied_ids.items():
            self.writer.put(self.applied, partition, key, 1)
        now = datetime.now(UTC).isoformat()
        for pk, values in result.partials.items():
            self.writer.put(self.partials, pk[2], engine.partial_key(pk), values)
            body = {"aggregate": pk[0], "key": pk[1], "member": f"p{pk[2]}", "partial": values, "at": now}
            self.writer.add(self.topic(PARTIALS_TOPIC), f"{pk[0]}|{pk[1]}".encode(), _json(body))
        for aggregate, key, value in result.views:
            record = {"aggregate": aggregate, "key": {"id": key}, "value": value,
                      "updated_at": result.view_times.get(key) or now}
            self.writer.add(self.topic(agg_topic(aggregate)), key.encode(), _json(record))
        await self.writer.flush()
        if self.metrics is not None:
            now_s = time.time()
            for _, event in items:
                self.metrics.observe_event_latency(event.family, event.occurred_at, now=now_s)
            self.metrics.observe_pipeline_latencies("tables", [ev.message.timestamp * 1000 for ev in batch],
                                                    now=now_s)
            for aggregate, _, _ in result.views:
                self.metrics.record_aggregate(aggregate)
            self.metrics.set_table_keys("entity-state", len(self.states.data))
            self.metrics.set_table_keys("ingest-seen", len(self.seen.data))
        self._done("tables", len(batch), applied=result.applied)

    # ------------------------------------------------------------------ rollup
    async def rollup(self, batch: Sequence[EventT[bytes]]) -> None:
        touched: dict[str, tuple[int, dict[str, Any]]] = {}
        for ev in batch:
            try:
                body = rollup.parse_partial(ev.value)
            except ValueError as exc:
                self._reject_internal(ev, "malformed", str(exc))
                continue
            key = f"{body['aggregate']}|{body['key']}"
            old = touched[key][1] if key in touched else self.rollups.get(key)
            partial: Values = body["partial"]
            touched[key] = (ev.message.partition,
                            rollup.merge(old, body["aggregate"], body["key"], body["member"], partial, body["at"]))
        for key, (partition, state) in touched.items():  # all before the first await (see ingest)
            self.writer.put(self.rollups, partition, key, state)
            self.writer.add(self.topic(agg_topic(state["aggregate"])), state["key"].encode(),
                            _json(rollup.record(state)))
            if self.metrics is not None:
                self.metrics.record_aggregate(state["aggregate"])
                self.metrics.observe_pipeline_latency("aggregate", batch[-1].message.timestamp * 1000)
        await self.writer.flush()
        if self.metrics is not None:
            self.metrics.set_table_keys("rollups", len(self.rollups.data))
        self._done("rollup", len(batch))

    # ------------------------------------------------------------------ reads (views, tests)
    def rollup_totals(self, aggregate: str) -> dict[str, dict[str, float]]:
        prefix = f"{aggregate}|"
        return {k[len(prefix):]: rollup.totals(v) for k, v in self.rollups.data.items() if k.startswith(prefix)}
