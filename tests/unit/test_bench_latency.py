"""The latency benchmark's matching of sent events to aggregate records, against a brute-force oracle."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime
from typing import Any

from bench.kafka_io import Paced, Record
from bench.pipeline import LATENCY_DAY, hop_latencies, match_latencies
from bench.workload import load_items
from core.partitioning import key_partition
from events.codec import decode
from events.reference import UNIVERSITIES
from events.services import SeekerErasureRequested, SeekerErasureRequestedData
from events.topics import AGG_PARTITIONS, DLQ_TOPIC, EVENT_PARTITIONS, PARTIALS_TOPIC, agg_topic, ingest_topic
from streams import batch as pure
from streams.domains import domains
from streams.windows import window_counts

NOW = datetime.now(UTC)


def _oracle(keys: list[str], sent: list[int], records: list[tuple[int, bytes | None, bytes | None]]) -> list[float]:
    """For every event: its position n among its key's events (send order), then the earliest record of that
    key whose count is >= n; events no record counts are left out. Sorted, as a multiset."""
    out = []
    for i, key in enumerate(keys):
        n = keys[: i + 1].count(key)
        times = [ts for ts, k, v in records
                 if v is not None and k == key.encode() and json.loads(v)["value"]["events"] >= n]
        if times:
            out.append(float(min(times) - sent[i]))
    return sorted(out)


def _record(ts: int, key: str, count: int) -> tuple[int, bytes, bytes]:
    return ts, key.encode(), json.dumps({"value": {"events": count}}).encode()


def test_each_event_meets_the_first_record_that_counts_it() -> None:
    rng = random.Random(5)
    for _ in range(50):
        keys = [rng.choice("abcd") for _ in range(rng.randint(1, 40))]
        sent = sorted(rng.randint(0, 5_000) for _ in keys)
        records: list[tuple[int, bytes | None, bytes | None]] = []
        for key in set(keys):
            total = keys.count(key)
            count, ts = 0, 0
            while count < total and rng.random() < 0.95:  # sometimes the last events are never counted
                count = min(total, count + rng.randint(1, 4))
                ts += rng.randint(1, 900)
                records.append(_record(5_000 + ts, key, count))
        records.append((9_999, b"other", b'{"value": {"events": 99}}'))  # another day's key
        records.append((9_999, keys[0].encode(), None))  # a tombstone counts nothing
        rng.shuffle(records)  # the topic's partitions come back in any order
        acked = [ts + 3.0 for ts in sent]
        lat = match_latencies(100.0, keys, Paced(sent, 1.0, acked), records)
        assert sorted(lat.seconds_ms) == _oracle(keys, sent, records)
        assert lat.sent == len(keys) and lat.matched == len(lat.seconds_ms)
        assert set(lat.ack_ms) <= {3.0}


def test_by_second_groups_by_send_time() -> None:
    keys = ["k"] * 5
    sent = [1_000, 1_400, 2_100, 2_900, 4_000]
    records = [_record(3_000, "k", 4), _record(4_500, "k", 5)]
    lat = match_latencies(2.0, keys, Paced(sent, 3.0, [s + 10.0 for s in sent]), records)
    assert lat.by_second() == [(0, 2, 1_800.0, 2_000.0, 10.0), (1, 2, 500.0, 900.0, 10.0), (3, 1, 500.0, 500.0, 10.0)]


class _Instant:
    """A worker that has processed everything by the first poll."""

    started_at = 0.0
    proc = None

    def processed(self, agent: str) -> int:
        return 500


def test_workers_that_finish_within_one_poll_are_reported_too_fast_not_zero() -> None:
    import pytest

    from bench.pipeline import TooFastToTime, measure_workers

    with pytest.raises(TooFastToTime, match="within one"):
        measure_workers([_Instant()], 500, timeout=5.0, progress=lambda _: None,  # type: ignore[list-item]
                        own_clock=False)


# ------------------------------------------------------------------------------ the hops of each agent
def _agents_day(n: int, tables_batch: int, rollup_batch: int) -> tuple[
        dict[str, int], list[Record], list[Record], list[Record], dict[str, tuple[float, float, float]]]:
    """A latency day run through the worker's own batch functions (streams.batch), each batch's records stamped
    with that batch's time, as its producer would. Returns the send times, the canonical, partial and
    alliance-wide records, and the oracle: each event's hops from the batches it went through (known here by
    construction; hop_latencies has to infer them from the counts)."""
    items = load_items(n, seed=3, day=LATENCY_DAY)
    sent = {str(it.event.event_id): 1_000 + 10 * i for i, it in enumerate(items)}
    university_of = {ingest_topic(u): u for u in UNIVERSITIES}
    seen: dict[str, Any] = {}
    states: dict[str, Any] = {}
    rollups: dict[str, Any] = {}
    raws = [pure.Raw(it.topic, 0, i, None, it.key, it.value) for i, it in enumerate(items)]
    ingested = pure.ingest(raws, university_of, seen.get, NOW, str, DLQ_TOPIC)
    next_offset: dict[tuple[str, int], int] = {}

    def record(topic: str, partitions: int, ts: int, key: bytes | None, value: bytes | None) -> Record:
        partition = key_partition(key or b"", partitions)
        offset = next_offset[(topic, partition)] = next_offset.get((topic, partition), -1) + 1
        return partition, offset, ts, key, value

    canonical = []
    for i, (topic, key, value, _) in enumerate(ingested.records):
        event_id = str(decode(value or b"").event_id)
        canonical.append((topic, record(topic, EVENT_PARTITIONS, sent[event_id] + 5 + i % 7, key, value)))
    partials: list[Record] = []
    event_batch: dict[str, tuple[int, int]] = {}  # event id -> (its canonical record's ts, its tables batch time)
    for b in range(0, len(canonical), tables_batch):
        batch_ts = 100_000 + b * 100
        chunk = canonical[b:b + tables_batch]
        out = pure.tables([pure.Raw(t, p, o, None, k, v) for t, (p, o, _, k, v) in chunk], domains(),
                          lambda key, partition: states.get(key), NOW.isoformat(), str, DLQ_TOPIC)
        for _, _, key, value in out.puts:
            states[key] = value
        for topic, key, value, _ in out.records:
            if topic == PARTIALS_TOPIC:
                partials.append(record(topic, AGG_PARTITIONS, batch_ts, key, value))
        for _, (_, _, ts, _, value) in chunk:
            event_batch[str(decode(value or b"").event_id)] = (ts, batch_ts)
    aggregates: list[Record] = []
    partial_rollup: dict[tuple[int, int], int] = {}  # (partition, offset) of a partial -> its rollup batch time
    for r in range(0, len(partials), rollup_batch):
        batch_ts = 900_000 + r * 100
        chunk = partials[r:r + rollup_batch]
        out = pure.rollup([pure.Raw(PARTIALS_TOPIC, p, o, None, k, v) for p, o, _, k, v in chunk],
                          lambda key, partition: rollups.get(key), str, DLQ_TOPIC)
        for _, _, key, value in out.puts:
            rollups[key] = value
        aggregates += [record(topic, AGG_PARTITIONS, batch_ts, key, value)
                       for topic, key, value, _ in out.records if topic == agg_topic("windows")]
        partial_rollup.update({(p, o): batch_ts for p, o, _, _, _ in chunk})
    # the oracle: the partial an event's tables batch wrote for its daily window key and partition, and the
    # rollup batch that read that partial
    oracle = {}
    for _, (partition, _, _, _, value) in canonical:
        event = decode(value or b"")
        canonical_ts, batch_ts = event_batch[str(event.event_id)]
        day_key = next(dk for (aggregate, dk) in window_counts(event) if "granularity=day" in dk)
        written = [(p, o) for p, o, t, _, v in partials
                   if t == batch_ts and json.loads(v or b"{}")["key"] == day_key
                   and json.loads(v or b"{}")["member"] == f"p{partition}"]
        assert len(written) == 1
        rollup_ts = partial_rollup[written[0]]
        oracle[str(event.event_id)] = (float(canonical_ts - sent[str(event.event_id)]),
                                       float(batch_ts - canonical_ts), float(rollup_ts - batch_ts))
    return sent, [r for _, r in canonical], partials, aggregates, oracle


def test_each_events_hops_are_the_batches_it_went_through() -> None:
    sent, canonical, partials, aggregates, oracle = _agents_day(600, tables_batch=37, rollup_batch=11)
    hops = hop_latencies(sent, canonical, partials, aggregates)
    assert hops.unmatched == 0 and len(hops.ingest_ms) == len(oracle) == 600
    found = sorted(zip(hops.ingest_ms, hops.tables_ms, hops.rollup_ms, strict=True))
    assert found == sorted(oracle.values())
    assert len({t for _, t, _ in found}) > 5 and len({r for _, _, r in found}) > 5  # (many batches of each agent)


def test_events_of_other_runs_are_ranked_not_reported_and_uncounted_events_are_unmatched() -> None:
    sent, canonical, partials, aggregates, oracle = _agents_day(200, tables_batch=50, rollup_batch=20)
    other = next(iter(sent))  # an event of another run in the same topics (the throughput run's, the warm-up's)
    del sent[other]
    hops = hop_latencies(sent, canonical, partials, aggregates)
    assert hops.unmatched == 0 and len(hops.ingest_ms) == 199
    assert sorted(zip(hops.ingest_ms, hops.tables_ms, hops.rollup_ms, strict=True)) == sorted(
        v for k, v in oracle.items() if k != other)
    # the rollup's last batch never published: the events only it counted are unmatched, the rest as before
    last = max(ts for _, _, ts, _, _ in aggregates)
    hops = hop_latencies(sent, canonical, partials, [r for r in aggregates if r[2] != last])
    assert 0 < hops.unmatched < 199 and len(hops.ingest_ms) == 199 - hops.unmatched
    # an event sent but never applied (refused, or still on its way) is unmatched
    hops = hop_latencies({**sent, "never-applied": 1}, canonical, partials, aggregates)
    assert hops.unmatched == 1 and len(hops.ingest_ms) == 199


def test_records_no_window_counts_leave_the_ranks_alone() -> None:
    """An erasure request's copy (applied to no count) or a record that is not an event, before every event of a
    partition, must not take the first rank there."""
    sent, canonical, partials, aggregates, oracle = _agents_day(200, tables_batch=50, rollup_batch=20)
    services = next((p, decode(v or b"")) for p, _, _, _, v in canonical
                    if decode(v or b"").family == "services")
    partition, event = services
    erasure = SeekerErasureRequested(source=event.source, occurred_at=event.occurred_at,
                                     data=SeekerErasureRequestedData(seeker_id=event.data.seeker_id))  # type: ignore[attr-defined]
    extra: list[Record] = [(partition, -2, 1, erasure.key, erasure.to_json()), (partition, -1, 1, b"k", b"not json")]
    hops = hop_latencies(sent, extra + canonical, partials, aggregates)
    assert hops.unmatched == 0
    assert sorted(zip(hops.ingest_ms, hops.tables_ms, hops.rollup_ms, strict=True)) == sorted(oracle.values())
