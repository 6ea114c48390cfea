"""One worker's three agents on the pure batch path (streams.batch) with dict tables: what the unit tests run
days through. Offsets keep growing like a topic's; every record a batch writes for the next agent is
consumed by it (keyed records on their key's partition, routed records on theirs), and the newest record
per key of every aggregated topic is kept, as compaction would."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from core.partitioning import key_partition
from events.codec import plain
from events.reference import UNIVERSITIES
from events.topics import AGG_PARTITIONS, DLQ_TOPIC, EVENT_PARTITIONS, PARTIALS_TOPIC, ingest_topic
from streams import batch as pure
from streams import rollup
from streams.domains import domains
from streams.domains.base import LOG_FIELD

NOW = datetime.now(UTC)


class Worker:
    def __init__(self) -> None:
        self.tables: dict[str, dict[str, Any]] = {t: {} for t in (pure.SEEN, pure.STATES, pure.ROLLUPS)}
        self.partition_of: dict[str, int] = {}  # entity-state key -> the partition it was written to
        self.offset = 0
        self.domains = domains()
        self.university_of = {ingest_topic(u): u for u in UNIVERSITIES}
        self.agg: dict[tuple[str, bytes], bytes | None] = {}  # (topic, key) -> newest value (None: tombstone)
        self.dlq: list[tuple[bytes | None, bytes | None, pure.Headers]] = []
        self.canonical: list[pure.Raw] = []  # every record the tables agent consumed, in order
        self.recent = pure.Recent()  # as the worker's: the tables stage takes what the ingest encoded

    def _put(self, writes: pure.Writes) -> None:
        for table, partition, key, value in writes.puts:
            if table == pure.STATES:
                self.partition_of[key] = partition
            if value is None:
                self.tables[table].pop(key, None)
            else:  # (as a store reads it back: an event's stored form as its mapping)
                self.tables[table][key] = plain(value)
        for topic, key, value, headers in writes.records:
            if topic.startswith("alliance.agg."):
                self.agg[(topic, key or b"")] = value
            elif topic == DLQ_TOPIC:
                self.dlq.append((key, value, headers))

    def _consumed(self, writes: pure.Writes, prefix: str, partitions: int) -> list[pure.Raw]:
        out = []
        routed = [(topic, partition, key, value) for topic, partition, key, value, _ in writes.routed]
        keyed = [(topic, key_partition(key or b"", partitions), key, value) for topic, key, value, _ in writes.records]
        for topic, partition, key, value in keyed + routed:
            if topic.startswith(prefix):
                out.append(pure.Raw(topic, partition, self.offset, None, key, value))
                self.offset += 1
        return out

    def send(self, records: Sequence[tuple[str, bytes, bytes]]) -> tuple[pure.IngestWrites, pure.TablesWrites]:
        raws = []
        for topic, key, value in records:
            raws.append(pure.Raw(topic, 0, self.offset, NOW.timestamp(), key, value))
            self.offset += 1
        ingested = pure.ingest(raws, self.university_of, self.tables[pure.SEEN].get, NOW, str, DLQ_TOPIC,
                               recent=self.recent)
        self._put(ingested)
        canonical = self._consumed(ingested, "alliance.events.", EVENT_PARTITIONS)
        self.canonical += canonical
        return ingested, self._tables(canonical)

    def read_states(self, key: str, partition: int) -> Any:
        """The entity-state table as the worker's store reads it: from ``partition``'s database only. A key
        written to another partition is a broken co-partitioning (the store would find nothing): it fails, but
        for an applied key: a revision naming the wrong subject looks for its original on the subject's
        partition, where the store finds nothing (streams.engine.revise: refused as not revisable)."""
        written = self.partition_of.get(key, partition)
        if written != partition:
            if key.startswith("applied:"):
                return None
            raise AssertionError(f"{key} read from partition {partition}, written to {written}")
        return self.tables[pure.STATES].get(key)

    def read_rollups(self, key: str, partition: int) -> Any:  # one dict for every partition here
        return self.tables[pure.ROLLUPS].get(key)

    def _tables(self, canonical: list[pure.Raw]) -> pure.TablesWrites:
        tabled = pure.tables(canonical, self.domains, self.read_states, NOW.isoformat(), str, DLQ_TOPIC, self.recent)
        self._put(tabled)
        self._put(pure.rollup(self._consumed(tabled, PARTIALS_TOPIC, AGG_PARTITIONS), self.read_rollups,
                              str, DLQ_TOPIC))
        return tabled

    def count_logs_apart(self) -> set[str]:
        """Rewrite the entity-state table as versions before 2026-12-04 kept it: each log's count on a key of
        its own (``<entity>|events``), not in the entity's state. Returns those keys."""
        states = self.tables[pure.STATES]
        moved = set()
        for key, value in list(states.items()):
            if isinstance(value, dict) and LOG_FIELD in value:
                states[key] = {f: v for f, v in value.items() if f != LOG_FIELD}
                states[f"{key}|events"] = value[LOG_FIELD]
                moved.add(f"{key}|events")
        return moved

    def members_counted_once(self) -> set[str]:
        """Rewrite the entity-state table as versions before 2026-12-07 kept it: a member key holds 1 however many
        events added it, and a state's log count does not count the events standing. Returns the member keys
        that counted more than one event."""
        states = self.tables[pure.STATES]
        self._log_counts_cut_to(2)
        several = set()
        for key, value in list(states.items()):
            if any(f"|{m.set_name}|" in key for d in self.domains.values() for m in d.members.values()) \
                    and isinstance(value, int) and not key.startswith(("applied:", "partial:")):
                if value > 1:
                    several.add(key)
                states[key] = 1
        return several

    def refolds_unindexed(self) -> int:
        """Rewrite the entity-state table as versions before the twenty-second session (2026-12-07) kept it: no refold
        index, and a log count of three numbers. Returns the index entries deleted."""
        states = self.tables[pure.STATES]
        entries = [key for key in states if "|refold|" in key]
        for key in entries:
            del states[key]
        self._log_counts_cut_to(3)
        return len(entries)

    def _log_counts_cut_to(self, numbers: int) -> None:
        """Keep the first ``numbers`` numbers of every log count (in a state, or on a log's own key)."""
        states = self.tables[pure.STATES]
        for key, value in list(states.items()):
            if isinstance(value, dict) and isinstance(value.get(LOG_FIELD), list):
                states[key] = {**value, LOG_FIELD: value[LOG_FIELD][:numbers]}
            elif isinstance(value, list) and key.endswith("|events"):
                states[key] = value[:numbers]

    def replay(self, batch: int = 101) -> None:
        """The tables agent reads every canonical record again (a worker taking over after a crash)."""
        for start in range(0, len(self.canonical), batch):
            self._tables(self.canonical[start:start + batch])

    def totals(self) -> dict[str, dict[str, dict[str, float]]]:
        """Alliance-wide sums per rollup aggregate (what the worker publishes on alliance.agg.*)."""
        out: dict[str, dict[str, dict[str, float]]] = {}
        for key, state in self.tables[pure.ROLLUPS].items():
            aggregate, dim = key.split("|", 1)
            if not rollup.empty(state):  # (published as a tombstone)
                out.setdefault(aggregate, {})[dim] = rollup.totals(state)
        return out
