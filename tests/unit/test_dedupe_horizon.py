"""The dedupe horizon: once the ingest has forgotten an event id (``ingest-seen`` keeps ids for
``dedupe_horizon_days``), a university's re-send of that event is accepted again at the ingest, and still
changes no figure: entity states merge idempotently and the entity-state table keeps the applied ids, so
event counts do not count it twice. Run on the worker's own pure batch path (streams.batch) with dict
tables, checked against the independent oracle."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from events.reference import UNIVERSITIES
from events.simulator import alliance_day
from events.topics import AGG_PARTITIONS, DLQ_TOPIC, EVENT_PARTITIONS, PARTIALS_TOPIC, ingest_topic
from infra.oracle import expected_aggregates
from streams import batch as pure
from streams import rollup
from streams.domains import domains
from streams.writer import key_partition

NOW = datetime.now(UTC)


class Worker:
    """One worker's three agents on dict tables; offsets keep growing like a topic's."""

    def __init__(self) -> None:
        self.tables: dict[str, dict[str, Any]] = {t: {} for t in (pure.SEEN, pure.STATES, pure.ROLLUPS)}
        self.offset = 0
        self.domains = domains()
        self.university_of = {ingest_topic(u): u for u in UNIVERSITIES}

    def _put(self, writes: pure.Writes) -> None:
        for table, _, key, value in writes.puts:
            self.tables[table][key] = value

    def _consumed(self, writes: pure.Writes, prefix: str, partitions: int) -> list[pure.Raw]:
        out = []
        for topic, key, value, _ in writes.records:
            if topic.startswith(prefix):
                out.append(pure.Raw(topic, key_partition(key or b"", partitions), self.offset, None, key, value))
                self.offset += 1
        return out

    def send(self, records: Sequence[tuple[str, bytes, bytes]]) -> tuple[pure.IngestWrites, pure.TablesWrites]:
        raws = []
        for topic, key, value in records:
            raws.append(pure.Raw(topic, 0, self.offset, NOW.timestamp(), key, value))
            self.offset += 1
        ingested = pure.ingest(raws, self.university_of, self.tables[pure.SEEN].get, NOW, str, DLQ_TOPIC)
        self._put(ingested)
        tabled = pure.tables(self._consumed(ingested, "alliance.events.", EVENT_PARTITIONS), self.domains,
                             self.tables[pure.STATES].get, NOW.isoformat(), str, DLQ_TOPIC)
        self._put(tabled)
        self._put(pure.rollup(self._consumed(tabled, PARTIALS_TOPIC, AGG_PARTITIONS), self.tables[pure.ROLLUPS].get,
                              str, DLQ_TOPIC))
        return ingested, tabled

    def totals(self) -> dict[str, dict[str, dict[str, float]]]:
        """Alliance-wide sums per rollup aggregate (what the worker publishes on alliance.agg.*)."""
        out: dict[str, dict[str, dict[str, float]]] = {}
        for key, state in self.tables[pure.ROLLUPS].items():
            aggregate, dim = key.split("|", 1)
            out.setdefault(aggregate, {})[dim] = rollup.totals(state)
        return out


def test_a_resend_after_the_horizon_is_accepted_again_and_changes_no_figure() -> None:
    day = [r for r in alliance_day(seed=5, scale=0.05, duplicate_rate=0.0, invalid_rate=0.0, spoofed_rate=0.0)
           if r.kind == "valid" and r.event is not None]
    assert len(day) > 500
    records = [(r.topic, r.key, r.value) for r in day]
    worker = Worker()
    ingested, tabled = worker.send(records)
    assert sum(ingested.ingested.values()) == len(day) and tabled.applied == len(day)
    states, totals = dict(worker.tables[pure.STATES]), worker.totals()
    # the figures are the oracle's before the re-send (windows: the event counts a re-send could double)
    windows = expected_aggregates([r.event for r in day if r.event is not None])["windows"]
    assert {k: v["events"] for k, v in totals["windows"].items()} == {k: v["events"] for k, v in windows.items()}

    worker.tables[pure.SEEN].clear()  # every id is past the horizon: the ingest has forgotten them all
    ingested, tabled = worker.send(records[::-1])  # re-sent, in another order
    assert sum(ingested.ingested.values()) == len(day), "the ingest no longer knows these ids: accepted again"
    assert not ingested.rejected
    assert tabled.applied == 0, "the entity-state table still knows every applied id"
    assert worker.tables[pure.STATES] == states
    assert worker.totals() == totals


def test_within_the_horizon_a_resend_is_a_duplicate() -> None:
    day = [r for r in alliance_day(seed=6, scale=0.02, duplicate_rate=0.0, invalid_rate=0.0, spoofed_rate=0.0)
           if r.kind == "valid"]
    records = [(r.topic, r.key, r.value) for r in day]
    worker = Worker()
    worker.send(records)
    ingested, tabled = worker.send(records)
    assert sum(ingested.ingested.values()) == 0 and tabled.applied == 0
    assert sum(n for (_, reason), n in ingested.rejected.items() if reason == "duplicate") == len(day)
