"""The benchmark's Python peer does the pipeline's work: its steps (bench.peer_steps), run the way a Quix
Streams application runs them (one record at a time, state scoped to the record's key), publish exactly the
aggregates of the independent oracle (infra.oracle) for a simulated day with duplicates, invalid, spoofed
and foreign records and 2 % revisions; the rejected records reach the DLQ.
(tests/integration/test_quix_peer.py runs the real Quix application on a broker.)"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from typing import Any

from bench.peer_steps import Out, Steps
from events import wire
from events.simulator import alliance_day
from events.topics import AGGREGATES, DLQ_TOPIC, PARTIALS_TOPIC, agg_topic
from infra.oracle import accepted_events, expected_aggregates, expected_rejects
from infra.verify import agg_key, value_diffs
from streams import batch as pure


class KeyState:
    """What a Quix ``State`` is to a step: the slice of a store under one record key."""

    def __init__(self, store: dict[tuple[bytes | None, str], Any], key: bytes | None) -> None:
        self.store, self.key = store, key

    def get(self, key: str, default: Any = None) -> Any:
        return self.store.get((self.key, key), default)

    def set(self, key: str, value: Any) -> None:
        self.store[(self.key, key)] = json.loads(json.dumps(value))  # as stored: serialised, no shared objects

    def delete(self, key: str) -> None:
        self.store.pop((self.key, key), None)


def run_like_quix(steps: Steps, records: list[tuple[str, bytes | None, bytes | None]]) -> dict[str, list[Out]]:
    """ingest -> (repartition by key) -> tables -> (repartition by aggregate key) -> rollup, each step with
    its own key-scoped store. Returns every record written, by topic."""
    stores: dict[str, dict[tuple[bytes | None, str], Any]] = defaultdict(dict)
    written: dict[str, list[Out]] = defaultdict(list)

    def step(name: str, fn: Any, topic: str, key: bytes | None, value: bytes | None, offset: int) -> list[Out]:
        return list(fn(pure.Raw(topic, 0, offset, None, key, value), KeyState(stores[name], key)))

    for offset, (topic, key, value) in enumerate(records):
        for canonical in step("ingest", steps.ingest, topic, key, value, offset):
            if canonical.topic == steps.dlq:
                written[canonical.topic].append(canonical)
                continue
            for out in step("tables", steps.tables, canonical.topic, canonical.key, canonical.value, offset):
                if out.topic != steps.partials:
                    written[out.topic].append(out)
                    continue
                for rolled in step("rollup", steps.rollup, out.topic, out.key, out.value, offset):
                    written[rolled.topic].append(rolled)
    return written


def test_the_peer_steps_publish_the_oracles_aggregates_and_reject_what_the_worker_rejects() -> None:
    records = alliance_day(seed=9, scale=0.04, revision_rate=0.02)
    assert {r.kind for r in records} >= {"valid", "duplicate", "invalid", "spoofed", "foreign"}
    steps = Steps(topic=lambda name: name + ".peer")
    written = run_like_quix(steps, [(r.topic + ".peer", r.key, r.value) for r in records])

    latest: dict[str, dict[str, Any]] = {name: {} for name in AGGREGATES}
    for name in AGGREGATES:
        for out in written[agg_topic(name) + ".peer"]:
            if out.value is None:  # a tombstone: the key no longer counts
                latest[name].pop(out.key.decode() if out.key else "", None)
            else:
                record = json.loads(out.value)
                latest[name][agg_key(record["key"])] = record["value"]
    expected = expected_aggregates(accepted_events(records))
    for name in AGGREGATES:
        assert not value_diffs(latest[name], expected[name]), (name, value_diffs(latest[name], expected[name])[:5])
    assert sum(len(v) for v in expected.values()) > 100

    reasons = Counter(dict(out.headers)[wire.DLQ_REASON].decode() for out in written[DLQ_TOPIC + ".peer"])
    expected_reasons = expected_rejects(records)
    for reason in ("duplicate", "spoofed_source", "not_owner"):
        assert reasons[reason] == expected_reasons[reason] > 0, reason
    assert reasons.total() == expected_reasons.total()  # the rest: the invalid ones, by their own reasons
    assert steps.counts["ingest"] == len(records)
    assert steps.counts["tables"] == len(accepted_events(records))
    assert not written.get(PARTIALS_TOPIC + ".peer")  # the differences went to the rollup step, not out
