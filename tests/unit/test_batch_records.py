"""The agents read faust's consumed messages as they are (streams.batch.Record; the worker made a copy of each
before, streams.pipeline), and a :class:`streams.batch.Raw` everywhere else. Both must give the same writes: the
oracle here is the batch path over ``Raw`` copies of the same records, on a day with every kind of bad record."""

from __future__ import annotations

import time
from typing import Any

from faust.transport.consumer import ConsumerMessage
from faust.types import TP

from events.simulator import alliance_day
from events.topics import DLQ_TOPIC, EVENT_PARTITIONS
from streams import batch as pure
from tests.pure_worker import NOW, Worker


def _message(raw: pure.Raw) -> ConsumerMessage:
    return ConsumerMessage(raw.topic, raw.partition, raw.offset, raw.timestamp, 0, [], raw.key, raw.value, None,
                           len(raw.key or b""), len(raw.value or b""), TP(raw.topic, raw.partition), generation_id=1)


def _writes(writes: pure.Writes) -> tuple[Any, ...]:
    return writes.puts, writes.records, writes.routed, writes.rejected


def test_fausts_messages_and_raw_copies_of_them_write_the_same() -> None:
    day = alliance_day(seed=31, scale=0.05, revision_rate=0.05)
    stamp = time.time() - 60  # (an ingest record's timestamp bounds its future-timestamp rule)
    raws = [pure.Raw(r.topic, i % 3, i, stamp, r.key, r.value) for i, r in enumerate(day)]
    as_raw, as_message = Worker(), Worker()
    ingested = [pure.ingest(records, w.university_of, w.tables[pure.SEEN].get, NOW, str, DLQ_TOPIC,
                            EVENT_PARTITIONS, w.recent)
                for w, records in ((as_raw, raws), (as_message, [_message(r) for r in raws]))]
    assert _writes(ingested[0]) == _writes(ingested[1])
    assert ingested[0].rejected and sum(ingested[0].ingested.values()) > 100  # (noise: some of each)
    canonical = [pure.Raw(topic, i % EVENT_PARTITIONS, i, stamp, key, value)
                 for i, (topic, key, value, _) in enumerate(ingested[0].records)
                 if topic.startswith("alliance.events.")]
    tabled = [pure.tables(records, w.domains, lambda key, partition, w=w: w.tables[pure.STATES].get(key),
                          NOW.isoformat(), str, DLQ_TOPIC, w.recent)
              for w, records in ((as_raw, canonical), (as_message, [_message(r) for r in canonical]))]
    assert _writes(tabled[0]) == _writes(tabled[1]) and tabled[0].applied > 100
    partials = [pure.Raw(topic, 0, i, stamp, key, value)
                for i, (topic, key, value, _) in enumerate(tabled[0].records) if topic.endswith("partials")]
    rolled = [pure.rollup(records, lambda key, partition: None, str, DLQ_TOPIC)
              for records in (partials, [_message(r) for r in partials])]
    assert _writes(rolled[0]) == _writes(rolled[1]) and rolled[0].records
