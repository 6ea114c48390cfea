"""One batch of each agent, pure: for the raw records of a batch, what to write.

The worker's faust glue (:mod:`streams.pipeline`) hands in a batch's records and its table look-ups and writes
what comes back (table entries with their changelog records, and the records for other topics) through its
:class:`streams.writer.BatchWriter`; the benchmark (``bench/profile.py``) runs exactly these functions on
in-memory dicts. No I/O and no faust here.

Every table entry names the partition of the record that caused it: a batch mixes partitions, and a table's
changelog record must land in the partition of the topic partition that owns the key.
"""

from __future__ import annotations

import hashlib
from collections import Counter, OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, NamedTuple, Protocol

import pydantic_core

from events import wire
from events.base import Event
from events.codec import decode
from events.errors import EventValidationError
from events.services import SeekerErasureRequested
from events.topics import EVENT_PARTITIONS, PARTIALS_TOPIC, Family, agg_topic, family_topic
from streams import engine
from streams import rollup as rollups
from streams.domains import Domain
from streams.ingest import Rejected, classify, readable_event_id

Headers = list[tuple[str, bytes]]

# table names (faust tables of the worker, changelogged). The tables agent keeps entity states, applied event
# ids and its partition's partial sums in ONE table, so that one batch's writes to a partition are one atomic
# changelog record batch (streams.writer): a partial never counts an event whose state did not persist.
SEEN, STATES, ROLLUPS = "ingest-seen", "entity-state", "rollups"
INTERNAL = "internal"  # x-alliance-university of a rejected record read from an internal topic
# A DLQ copy keeps at most this much of a record (the contract's events are at most 16 KiB): a ~1 MB record
# plus headers would exceed the broker's message size and fail the whole batch.
DLQ_MAX_VALUE_BYTES = 64 * 1024
DLQ_MAX_KEY_BYTES = 1024
# reasons whose DLQ copy keeps neither key nor value (events.errors.REASON_CODES)
REDACTED = frozenset({"personal_data", "erased_seeker"})
# refusals of the tables agent that are the source university's to fix (its rejects, not the alliance's)
ENGINE_REFUSALS = frozenset({"erased_seeker", "not_revisable"})


class Record(wire.ConsumedRecord, Protocol):
    """One consumed record, as the agents see it: in the worker, faust's message itself (streams.pipeline hands
    a batch's messages in as they are: a copy per record cost ~1 % of the worker's CPU); elsewhere a :class:`Raw`."""

    @property
    def timestamp(self) -> float | None: ...  # the Kafka record timestamp, seconds since the epoch (faust's unit)


class Raw(NamedTuple):
    """A :class:`Record` built from its parts (the benchmark, the peer, the tests). A named tuple: built once per
    record and stage by the benchmark's peer, where a frozen dataclass took 0.54 µs and this takes 0.18."""

    topic: str
    partition: int
    offset: int
    timestamp: float | None
    key: bytes | None
    value: bytes | None


@dataclass
class Writes:
    """What one batch writes: table entries ``(table, partition, key, value)`` and records ``(topic, key,
    value, headers)`` (topic names as given by ``topic``, i.e. with the deployment's suffix)."""

    puts: list[tuple[str, int, str, Any]] = field(default_factory=list)  # value None: delete (a tombstone)
    records: list[tuple[str, bytes | None, bytes | None, Headers]] = field(default_factory=list)
    # records for one partition each, whatever their key: (topic, partition, key, value, headers)
    routed: list[tuple[str, int, bytes | None, bytes | None, Headers]] = field(default_factory=list)
    rejected: Counter[tuple[str, str]] = field(default_factory=Counter)  # (university, reason) -> records

    def reject(self, dlq: str, raw: Record, result: Rejected) -> None:
        """Copy ``raw`` to the dead-letter topic with the reason in headers: unchanged, unless key or value are
        larger than the DLQ keeps (then cut, with the original size and digest in headers) or the value holds
        personal data (then left out, with its size and digest in headers)."""
        key, value, headers = raw.key, raw.value, reject_headers(result, raw)
        if result.reason in REDACTED:  # the DLQ must not keep it either (the key may be a raw number)
            for name, data in (("key", key), ("value", value)):
                if data is not None:
                    headers += [(f"x-alliance-{name}-redacted-from", str(len(data)).encode()),
                                (f"x-alliance-{name}-sha256", hashlib.sha256(data).hexdigest().encode())]
            key = value = None
        for name, data, limit in (("key", key, DLQ_MAX_KEY_BYTES), ("value", value, DLQ_MAX_VALUE_BYTES)):
            if data is not None and len(data) > limit:
                headers += [(f"x-alliance-{name}-truncated-from", str(len(data)).encode()),
                            (f"x-alliance-{name}-sha256", hashlib.sha256(data).hexdigest().encode())]
                if name == "key":
                    key = data[:limit]
                else:
                    value = data[:limit]
        self.records.append((dlq, key, value, headers))
        self.rejected[(result.university, result.reason)] += 1


def oversized(raw: Record, dlq: str, size: int, limit: int) -> Writes:
    """What a record writes when its own table writes (``size`` bytes to one changelog partition) do not fit
    one changelog record batch of ``limit``: nothing but its DLQ copy (``unprocessable``, not applied). Its
    writes cannot be atomic, and a flush the broker refuses would stop every worker taking the partition over."""
    out = Writes()
    out.reject(dlq, raw, internal_reject(
        "unprocessable", f"its table writes ({size:,} bytes to one changelog partition) exceed one changelog "
        f"record batch ({limit:,} bytes): not applied", raw))
    return out


def reject_headers(result: Rejected, raw: Record) -> Headers:
    """The x-alliance-reject-* headers of a record copied to the DLQ."""
    headers = [
        (wire.DLQ_REASON, result.reason.encode()),
        (wire.DLQ_DETAIL, result.detail.encode()),
        (wire.DLQ_SOURCE_TOPIC, raw.topic.encode()),
        (wire.DLQ_SOURCE_PARTITION, str(raw.partition).encode()),
        (wire.DLQ_SOURCE_OFFSET, str(raw.offset).encode()),
        (wire.DLQ_UNIVERSITY, result.university.encode()),
    ]
    if result.event_id:
        headers.append((wire.DLQ_EVENT_ID, result.event_id.encode()))
    return headers


def internal_reject(reason: str, detail: str, raw: Record) -> Rejected:
    return Rejected(reason, detail[:900], INTERNAL, readable_event_id(raw.value or b""))


def to_json(obj: Any) -> bytes:
    """Compact JSON of a record the worker writes (pydantic's serialiser: several times faster than the
    json module on the hot path; keys in the order the record was built)."""
    return pydantic_core.to_json(obj)


class Recent:
    """The events behind the canonical records this process encoded lately, by their bytes: the tables
    agent reads back what the ingest agent of the same worker wrote a moment before, and takes the event
    from here instead of validating the same bytes again (the same bytes decode to an equal event:
    ``events.codec`` round-trips, tested). Bounded: the oldest entries go first, and a large record is not
    kept; a miss decodes. An entry is taken once (an erasure request's copies on other partitions decode)."""

    def __init__(self, capacity: int = 2048, max_value_bytes: int = 4096) -> None:
        if capacity < 0 or max_value_bytes < 0:
            raise ValueError("capacity and max_value_bytes must be >= 0")
        self.capacity, self.max_value_bytes = capacity, max_value_bytes
        # (an OrderedDict drops its oldest entry in O(1); a dict's first key is found past every hole that
        # deleting the oldest and taking entries left: 2.8 against 1.0 µs per remembered event, full)
        self._events: OrderedDict[bytes, Event] = OrderedDict()
        self.hits = self.misses = 0

    def __len__(self) -> int:
        return len(self._events)

    def remember(self, value: bytes, event: Event) -> None:
        if len(value) > self.max_value_bytes or self.capacity == 0:
            return
        events = self._events
        events.pop(value, None)  # (re-inserted last: the newest)
        while len(events) >= self.capacity:
            events.popitem(last=False)
        events[value] = event

    def decode(self, value: bytes) -> Event:
        """``events.codec.decode(value)``, from memory when this process encoded ``value`` lately."""
        event = self._events.pop(value, None)
        if event is None:
            self.misses += 1
            return decode(value)
        self.hits += 1
        return event


# ---------------------------------------------------------------------------------------------- ingest

@dataclass
class IngestWrites(Writes):
    ingested: Counter[tuple[str, str]] = field(default_factory=Counter)  # (family, university) -> new events
    replays: int = 0  # records the worker had accepted itself before (re-read after a crash or rebalance)


def ingest(batch: Sequence[Record], university_of: Mapping[str, str], seen: Callable[[str], Any], now: datetime,
           topic: Callable[[str], str], dlq: str, event_partitions: int = EVENT_PARTITIONS,
           recent: Recent | None = None) -> IngestWrites:
    """Validate, dedupe (per source university) and route every record of ``university_of[raw.topic]``'s
    ingest topic: a new event goes to its canonical family topic (with its ingest coordinates in headers)
    and into ``ingest-seen``; a replay is sent on again; anything else goes to the DLQ with its reason. An
    erasure request goes to every partition of every family topic (``event_partitions`` each;
    streams.erasure). Every canonical record's event is remembered in ``recent`` (for :func:`tables`)."""
    out = IngestWrites()
    accepted: dict[str, Any] = {}  # seen key -> value, for the events accepted in this batch

    def known(key: str) -> Any:
        return accepted[key] if key in accepted else seen(key)

    for raw in batch:
        university = university_of[raw.topic]
        # measured from the record's arrival; a producer's timestamp in the future does not move it
        received_at = min(now, datetime.fromtimestamp(raw.timestamp, now.tzinfo)) if raw.timestamp else now
        try:
            result = classify(raw.value, university, known, partition=raw.partition, offset=raw.offset,
                              received_at=received_at)
        except Exception as exc:  # a bug must not stop the records around this one
            result = Rejected("unprocessable", f"{type(exc).__name__}: {exc}"[:900], university,
                              readable_event_id(raw.value or b""))
        if isinstance(result, Rejected):
            out.reject(dlq, raw, result)
            continue
        event = result.event
        if result.replay:
            out.replays += 1
        else:
            key = result.seen_key
            accepted[key] = result.seen.to_value()
            out.puts.append((SEEN, raw.partition, key, accepted[key]))
            out.ingested[(event.target_family, event.source)] += 1  # (a revision: its original's family)
        headers = [("x-alliance-ingest-topic", raw.topic.encode()),
                   ("x-alliance-ingest-partition", str(raw.partition).encode()),
                   ("x-alliance-ingest-offset", str(raw.offset).encode())]
        if recent is not None:
            recent.remember(result.encoded, event)
        if isinstance(event, SeekerErasureRequested):
            out.routed += [(topic(family_topic(f)), p, event.key, result.encoded, headers)
                           for f in Family for p in range(event_partitions)]
        else:
            out.records.append((topic(family_topic(event.target_family)), event.key, result.encoded, headers))
    return out


# ---------------------------------------------------------------------------------------------- tables

@dataclass
class TablesWrites(Writes):
    events: list[Event] = field(default_factory=list)  # the batch's valid events
    applied: int = 0  # events applied for the first time (replays excluded)
    aggregates: list[str] = field(default_factory=list)  # aggregate of every per-entity record written

    @property
    def resumable(self) -> bool:
        """Whether the puts may be made durable in parts, in their order (:func:`resumable_parts`): the batch
        applied one erasure copy and nothing else, and streams.erasure.erase completes from any prefix of its
        writes when run again."""
        return len(self.events) == 1 and isinstance(self.events[0], SeekerErasureRequested)


def tables(batch: Sequence[Record], domains: Mapping[str, Domain], lookup: Callable[[str, int], Any], now: str,
           topic: Callable[[str], str], dlq: str, recent: Recent | None = None) -> TablesWrites:
    """Apply a batch of canonical events to entity states and partial aggregates (streams.engine;
    ``lookup(key, partition)`` reads the entity-state table's partition); a record that is not a valid event
    goes to the DLQ instead of stopping the batch. ``now`` (ISO 8601) stamps the partials and the views of
    entities without an event time. ``recent``: the events :func:`ingest` encoded lately in this process."""
    out = TablesWrites()
    decoded = recent.decode if recent is not None else decode
    items: list[engine.Item] = []
    valid_raws: list[Record] = []
    family_of = {topic(family_topic(f)): f.value for f in Family}
    for raw in batch:
        encoded = raw.value if raw.value is not None else b""
        try:
            event = decoded(encoded)
        except EventValidationError as exc:
            out.reject(dlq, raw, internal_reject(exc.reason_code, str(exc), raw))
            continue
        # (the record's bytes decoded strictly to the event: they are its stored form as they are)
        items.append((raw.partition, event, family_of.get(raw.topic, event.target_family), encoded))
        valid_raws.append(raw)
    result = engine.process(items, domains, lookup)
    for index, reason, why in result.failed:  # the engine refused these events alone: the rest of the batch stands
        raw, event = valid_raws[index], items[index][1]
        out.reject(dlq, raw, Rejected(reason, why[:900], event.source, str(event.event_id))
                   if reason in ENGINE_REFUSALS else internal_reject(reason, why, raw))
    out.applied = result.applied
    failed = {index for index, _, _ in result.failed}
    out.events = [item[1] for i, item in enumerate(items) if i not in failed]
    for key, (partition, state) in result.states.items():
        out.puts.append((STATES, partition, key, state))
    for pk, values in result.partials.items():
        out.puts.append((STATES, pk[2], engine.partial_key(pk), values))
        body = {"aggregate": pk[0], "key": pk[1], "member": f"p{pk[2]}", "partial": values, "at": now}
        out.records.append((topic(PARTIALS_TOPIC), f"{pk[0]}|{pk[1]}".encode(), to_json(body), []))
    for aggregate, key, value in result.views:
        if value is None:  # an erased seeker's record: a tombstone, so compaction removes it
            out.records.append((topic(agg_topic(aggregate)), key.encode(), None, []))
            out.aggregates.append(aggregate)
            continue
        record = {"aggregate": aggregate, "key": {"id": key}, "value": value,
                  "updated_at": result.view_times.get(key) or now}
        out.records.append((topic(agg_topic(aggregate)), key.encode(), to_json(record), []))
        out.aggregates.append(aggregate)
    return out


def resumable_parts(writes: TablesWrites, size: Callable[[str, Any], int], limit: int) -> list[TablesWrites] | None:
    """``writes`` cut into consecutive parts whose table entries take at most ``limit`` bytes each (``size(key,
    value)``: an entry's bytes in its changelog record batch), to be made durable one after the other, or None
    if they may not be cut (not :attr:`TablesWrites.resumable`) or one entry alone passes ``limit``. The first
    part carries every record (an erasure's view tombstones: sent before anything is renamed, so a replay that
    finds the seeker's state renamed already has nothing left to tombstone) and the counts; the last part
    carries the last entries (an erasure's index deletion and marker)."""
    if not writes.resumable:
        return None
    cut: list[list[tuple[str, int, str, Any]]] = [[]]
    used = 0
    for put in writes.puts:
        n = size(put[2], put[3])
        if n > limit:
            return None
        if cut[-1] and used + n > limit:
            cut.append([])
            used = 0
        cut[-1].append(put)
        used += n
    return [replace(writes, puts=cut[0]), *(TablesWrites(puts=puts) for puts in cut[1:])]


# ---------------------------------------------------------------------------------------------- rollup

@dataclass
class RollupWrites(Writes):
    aggregates: list[str] = field(default_factory=list)  # aggregate of every alliance-wide record written


def rollup(batch: Sequence[Record], get_rollup: Callable[[str, int], Any], topic: Callable[[str], str],
           dlq: str) -> RollupWrites:
    """Keep the latest partial per partition member and publish the sums (streams.rollup); a record that
    is not a partial goes to the DLQ. ``get_rollup(key, partition)`` reads the rollups table's partition
    (the partials topic is keyed by the rollup key: a key's partials all arrive on one partition)."""
    out = RollupWrites()
    touched: dict[str, tuple[int, dict[str, Any]]] = {}
    for raw in batch:
        try:
            body = rollups.parse_partial(raw.value)
        except ValueError as exc:
            out.reject(dlq, raw, internal_reject("malformed", str(exc), raw))
            continue
        key = f"{body['aggregate']}|{body['key']}"
        old = touched[key][1] if key in touched else get_rollup(key, raw.partition)
        try:
            merged = rollups.merge(old, body["aggregate"], body["key"], body["member"], body["partial"], body["at"])
        except Exception as exc:  # a bug must not stop the partials around this one
            out.reject(dlq, raw, internal_reject("unprocessable", f"{type(exc).__name__}: {exc}", raw))
            continue
        touched[key] = (raw.partition, merged)
    for key, (partition, state) in touched.items():
        out.puts.append((ROLLUPS, partition, key, state))
        out.records.append((topic(agg_topic(state["aggregate"])), state["key"].encode(),
                            None if rollups.empty(state) else to_json(rollups.record(state)), []))
        out.aggregates.append(state["aggregate"])
    return out
