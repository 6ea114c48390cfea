"""The latency benchmark's matching of sent events to aggregate records, against a brute-force oracle."""

from __future__ import annotations

import json
import random

from bench.kafka_io import Paced
from bench.pipeline import match_latencies


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
        measure_workers([_Instant()], 500, timeout=5.0, progress=lambda _: None)  # type: ignore[list-item]
