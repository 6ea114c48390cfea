"""The tables agent takes the events its own ingest agent encoded a moment before (streams.batch.Recent)
instead of validating the same bytes again. It must change nothing but the time: the oracle here is the
plain decode (``events.codec.decode``) and the batch path without the memory."""

from __future__ import annotations

import pytest

from events.codec import decode
from events.simulator import alliance_day
from events.topics import DLQ_TOPIC, EVENT_PARTITIONS
from streams import batch as pure
from tests.pure_worker import NOW, Worker


def _day(seed: int, **rates: float) -> list[tuple[str, bytes, bytes]]:
    return [(r.topic, r.key, r.value) for r in alliance_day(seed=seed, scale=0.05, **rates)]


def test_what_the_ingest_remembers_is_exactly_what_decoding_its_bytes_gives() -> None:
    records = _day(21, revision_rate=0.05)  # with noise: duplicates, invalid, spoofed records, revisions
    recent = pure.Recent(capacity=len(records))
    ingested = pure.ingest([pure.Raw(t, 0, i, None, k, v) for i, (t, k, v) in enumerate(records)],
                           Worker().university_of, {}.get, NOW, str, DLQ_TOPIC, EVENT_PARTITIONS, recent)
    values = [value for topic, _, value, _ in ingested.records if topic.startswith("alliance.events.")]
    assert len(values) > 100 and len(recent) == len(set(values)) and ingested.rejected  # (the DLQ's: not kept)
    for raw_value in set(values):
        remembered = recent.decode(raw_value)
        assert remembered == decode(raw_value) and remembered.to_json() == raw_value
    assert recent.hits == len(set(values)) and recent.misses == 0 and len(recent) == 0


def test_the_batch_path_writes_the_same_with_and_without_it() -> None:
    records = _day(22, revision_rate=0.05)
    with_memory, without = Worker(), Worker()
    without.recent = pure.Recent(capacity=0)  # remembers nothing: every canonical record is decoded
    for start in range(0, len(records), 97):
        a = with_memory.send(records[start:start + 97])
        b = without.send(records[start:start + 97])
        assert (a[0].puts, a[0].records, a[0].routed) == (b[0].puts, b[0].records, b[0].routed)
        assert (a[1].puts, a[1].records, a[1].rejected) == (b[1].puts, b[1].records, b[1].rejected)
    assert with_memory.tables == without.tables and with_memory.agg == without.agg
    assert with_memory.recent.hits > 0.9 * len(with_memory.canonical) and without.recent.hits == 0
    assert without.recent.misses == len(without.canonical)


def test_it_is_bounded_by_entries_and_keeps_no_large_record() -> None:
    records = [v for _, _, v in _day(23, duplicate_rate=0.0, invalid_rate=0.0, spoofed_rate=0.0,
                                           foreign_rate=0.0)][:50]
    recent = pure.Recent(capacity=10, max_value_bytes=max(len(v) for v in records))
    for value in records:
        recent.remember(value, decode(value))
        assert len(recent) <= 10
    assert recent.decode(records[-1]) == decode(records[-1]) and recent.hits == 1
    assert recent.decode(records[0]) == decode(records[0]) and recent.misses == 1  # evicted: decoded again
    assert recent.decode(records[-1]) == decode(records[-1]) and recent.misses == 2  # taken once
    small = pure.Recent(max_value_bytes=min(len(v) for v in records) - 1)
    for value in records:
        small.remember(value, decode(value))
    assert len(small) == 0
    with pytest.raises(ValueError):
        pure.Recent(capacity=-1)


def test_a_canonical_record_that_is_not_an_event_still_goes_to_the_dlq() -> None:
    worker = Worker()
    raw = pure.Raw("alliance.events.recruitment", 0, 1, None, b"k", b'{"type": "recruitment.job_posted"}')
    writes = pure.tables([raw], worker.domains, worker.read_states, NOW.isoformat(), str, DLQ_TOPIC, worker.recent)
    assert sum(writes.rejected.values()) == 1 and worker.recent.misses == 1
