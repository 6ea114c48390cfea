"""Faust glue: hands each agent batch to the pure batch path (:mod:`streams.batch`) and writes the result.

Every record a batch writes (table changelogs, canonical events, DLQ copies, partials, aggregates) goes
through one :class:`streams.writer.BatchWriter`, flushed once at the end of the batch, so the agent's offsets
are committed only after the broker acknowledged its writes. Table writes are queued before the batch's
first ``await`` (the flush): a rebalance can only revoke partitions at an await. The persistent store
(streams.store) takes them only after the broker acknowledged their changelog records, and not at all for a
partition revoked meanwhile (its next owner recovers it from the changelog).

Each agent's batch has two phases (:class:`AgentSteps`), so that the agent loop (streams.app.serve_inbox) can
compute a batch while the previous one's writes wait for the broker: ``compute`` (no await; reads through
the previous batch's entries, :func:`through`) and ``launch`` (staged and sealed in one go, then flushed).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any, Protocol

from faust.types import Message, TableT
from prometheus_client import CollectorRegistry

from events.reference import UNIVERSITIES
from events.topics import EVENT_PARTITIONS, ingest_topic
from streams import batch as pure
from streams import rollup
from streams.domains import Domain
from streams.metrics import PipelineMetrics
from streams.sensors import table_reads
from streams.store import Store, any_reader, approximate_keys, held, partition_reader
from streams.writer import SPLIT_BYTES


class Writer(Protocol):
    """What the glue needs of :class:`streams.writer.BatchWriter` (a fake in the unit tests)."""

    def add(self, topic: str, key: bytes | None, value: bytes | None, *, partition: int | None = None,
            headers: list[tuple[str, bytes]] | None = None) -> None: ...
    def put_all(self, table: Any, entries: Iterable[tuple[int, str, Any]]) -> None: ...
    def entry_bytes(self, key: str, value: Any) -> int: ...
    def largest_changelog_batch(self) -> int: ...
    def discard(self) -> None: ...
    def seal(self) -> Callable[[], Awaitable[int]]: ...


class PartitionNotHeld(RuntimeError):
    """A batch has records of a partition whose table partition this worker does not hold."""


def require_held(table: TableT[str, Any], batch: Sequence[Message]) -> None:
    """Raise PartitionNotHeld unless this worker holds ``table``'s partition of every record in ``batch``
    (tables are co-partitioned with the topics their agent reads). Processing such a record would read
    nothing where its entity, partial or duplicate check is, and publish figures computed from that: the
    agent stops without writing or committing (streams.app), and the restarted worker is assigned again."""
    missing = sorted(p for p in {message.partition for message in batch} if not held(table, p))  # once per partition
    if missing:
        raise PartitionNotHeld(
            f"table {table.name}: partition(s) {missing} not held by this worker, which received their records "
            "(faust's assignment left the table's changelog out, or the partition was revoked meanwhile)")


# a batch's table entries per table and key (value None: deleted), staged but maybe not written yet
Pending = Mapping[str, Mapping[str, Any]]
NOTHING_PENDING: Pending = MappingProxyType({})
_ABSENT = object()


def through(pending: Pending, table: str, read: Callable[..., Any]) -> Callable[..., Any]:
    """``read`` (a table reader of streams.store), seeing ``pending``'s entries of ``table`` first: the
    previous batch's writes, which its flush writes to the store only once the broker acknowledged them."""
    entries = pending.get(table)
    if not entries:
        return read

    def read_through(key: str, *where: int) -> Any:
        value = entries.get(key, _ABSENT)
        return read(key, *where) if value is _ABSENT else value
    return read_through


@dataclass(frozen=True)
class AgentSteps:
    """One agent's batch in two phases (streams.app.serve_inbox runs the next batch's first phase while the
    broker acknowledges this one's writes): ``compute`` (no await: the pure batch path over the tables, its
    reads through the previous batch's pending entries) and :meth:`launch` (staged into the writer; what it
    returns flushes, then ``report`` s)."""

    pipeline: Pipeline
    agent: str
    compute: Callable[[Sequence[Message], Pending], pure.Writes]
    report: Callable[[Sequence[Message], pure.Writes], None]

    def launch(self, batch: Sequence[Message], writes: pure.Writes) -> tuple[Awaitable[None], Pending | None]:
        return self.pipeline.launch(self, batch, writes)


@dataclass
class Pipeline:
    seen: TableT[str, Any]
    states: TableT[str, Any]  # entity states, their members, applied event ids, partial sums
    rollups: TableT[str, Any]
    domains: dict[str, Domain]
    topic: Callable[[str], str]
    dlq: str
    writer: Writer
    registry: CollectorRegistry | None = None
    metrics: PipelineMetrics | None = None
    first_batch_at: dict[str, float] = field(default_factory=dict)  # when each agent began its first batch
    last_batch_at: dict[str, float] = field(default_factory=dict)
    events_processed: dict[str, int] = field(default_factory=dict)
    events_applied: dict[str, int] = field(default_factory=dict)  # first-time events (replays excluded)
    split_batches: dict[str, int] = field(default_factory=dict)  # agent -> batches processed in parts (_write)
    erasures_in_parts: int = 0  # erasure copies too large for one changelog record batch, written in parts
    university_of: dict[str, str] = field(default_factory=dict)  # ingest topic -> university code
    event_partitions: int = EVENT_PARTITIONS  # of each canonical topic (an erasure request goes to all)
    recent: pure.Recent = field(default_factory=pure.Recent)  # events the ingest encoded, for the tables agent

    def __post_init__(self) -> None:
        self.university_of = {self.topic(ingest_topic(u)): u for u in UNIVERSITIES}
        if self.registry is not None and self.metrics is None:
            self.metrics = PipelineMetrics(self.registry)
        self._tables = {pure.SEEN: self.seen, pure.STATES: self.states, pure.ROLLUPS: self.rollups}
        self._steps = {"ingest": AgentSteps(self, "ingest", self._compute_ingest, self._report_ingest),
                       "tables": AgentSteps(self, "tables", self._compute_tables, self._report_tables),
                       "rollup": AgentSteps(self, "rollup", self._compute_rollup, self._report_rollup)}

    def steps(self, agent: str) -> AgentSteps:
        """``agent``'s batch in the phases :func:`streams.app.serve_inbox` overlaps."""
        return self._steps[agent]

    def _stage(self, writes: pure.Writes) -> tuple[int | None, Pending]:
        """Table entries (in memory and changelog), then the records, into the writer: nothing awaited. When
        the writes to one changelog partition would pass :data:`streams.writer.SPLIT_BYTES`, nothing is staged
        and their size is returned: the caller processes the batch in parts. Also returns the entries per
        table and key (None: deleted), which the agent's next batch reads through until they are written."""
        entries: dict[str, list[tuple[int, str, Any]]] = {}  # per table, in the batch's order
        pending: dict[str, dict[str, Any]] = {}
        for table, partition, key, value in writes.puts:
            if (listed := entries.get(table)) is None:
                listed = entries[table] = []
                pending[table] = {}
            listed.append((partition, key, value))
            pending[table][key] = value
        for table, listed in entries.items():
            self.writer.put_all(self._tables[table], listed)
        if (largest := self.writer.largest_changelog_batch()) > SPLIT_BYTES:
            self.writer.discard()
            return largest, NOTHING_PENDING
        for name, record_key, record_value, headers in writes.records:
            self.writer.add(name, record_key, record_value, headers=headers)
        for name, partition, record_key, record_value, headers in writes.routed:
            self.writer.add(name, record_key, record_value, partition=partition, headers=headers)
        return None, pending

    async def _write(self, writes: pure.Writes) -> int | None:
        """:meth:`_stage`, then one flush, the batch's only await. Returns the size that forces parts, if so."""
        too_large, _ = self._stage(writes)
        if too_large is None:
            await self._sent(writes, self.writer.seal())
        return too_large

    async def _sent(self, writes: pure.Writes, send: Callable[[], Awaitable[int]]) -> None:
        """``send`` the sealed batch (streams.writer: sealed right after staging, so no other agent's flush
        takes its records), and count its refusals once the broker acknowledged it."""
        await send()
        if (m := self.metrics) is not None:  # once per batch: per-event label look-ups cost more than counting
            for (university, reason), n in writes.rejected.items():
                m.record_rejected(university, reason, n=n)

    def launch(self, steps: AgentSteps, batch: Sequence[Message], writes: pure.Writes
               ) -> tuple[Awaitable[None], Pending | None]:
        """Stage ``writes`` (computed by ``steps.compute``) and return what completes the batch (its flush, then
        its report), with the entries the agent's next batch must read through until that completes. A batch
        too large for one changelog record batch is processed in parts instead, its entries unknown here:
        None, the next batch is computed only after it."""
        too_large, pending = self._stage(writes)
        if too_large is not None:
            return self._in_parts(steps, batch, writes, too_large), None
        return self._complete(steps, batch, writes, self.writer.seal()), pending

    async def _complete(self, steps: AgentSteps, batch: Sequence[Message], writes: pure.Writes,
                        send: Callable[[], Awaitable[int]]) -> None:
        await self._sent(writes, send)
        steps.report(batch, writes)

    async def run(self, steps: AgentSteps, batch: Sequence[Message]) -> None:
        """``batch`` start to end: computed from the tables as they are, written, reported."""
        work, _ = self.launch(steps, batch, steps.compute(batch, NOTHING_PENDING))
        await work

    async def _in_parts(self, steps: AgentSteps, batch: Sequence[Message], writes: pure.Writes, size: int) -> None:
        """``batch`` in two halves, one after the other (the second computed from what the first wrote). A single
        record whose own writes are too large is written in resumable parts when it may be (an erasure of a
        seeker with hundreds of events on the partition: ``pure.resumable_parts``), each flushed before the next;
        the batch completes (and its offset may be committed) after the last. Any other goes to the DLQ, not
        applied (``pure.oversized``)."""
        if len(batch) == 1:
            parts = pure.resumable_parts(writes, self.writer.entry_bytes, SPLIT_BYTES) \
                if isinstance(writes, pure.TablesWrites) else None
            if parts is not None:
                self.erasures_in_parts += 1
                for part in parts:
                    if (still := await self._write(part)) is not None:  # (sized by the writer's own measure)
                        raise RuntimeError(f"a resumable part of {still:,} bytes exceeds {SPLIT_BYTES:,}")
                steps.report(batch, writes)
                return
            await self._write(pure.oversized(batch[0], self.dlq, size, SPLIT_BYTES))
            self._done(steps.agent, batch, applied=None if steps.agent == "rollup" else 0)
            return
        self.split_batches[steps.agent] = self.split_batches.get(steps.agent, 0) + 1
        half = len(batch) // 2
        await self.run(steps, batch[:half])
        await self.run(steps, batch[half:])

    def _done(self, agent: str, batch: Sequence[Message], applied: int | None = None) -> None:
        self.last_batch_at[agent] = time.time()
        self.events_processed[agent] = self.events_processed.get(agent, 0) + len(batch)
        if applied is not None:
            self.events_applied[agent] = self.events_applied.get(agent, 0) + applied
        if self.metrics is not None:
            self.metrics.observe_batch(agent, len(batch))

    @staticmethod
    def _reads(table: TableT[str, Any]) -> int:
        return table.data.reads if isinstance(table.data, Store) else 0

    @staticmethod
    def _count_reads(table: TableT[str, Any], before: int) -> None:
        """faust's sensors count table reads (the dashboard's table operations); the agents read the store
        directly (streams.store: partition_reader, any_reader), so a batch's reads are counted at once."""
        if isinstance(table.data, Store):
            table_reads(table.app.monitor, table, table.data.reads - before)

    # ------------------------------------------------------------------ each agent's two phases
    def _compute_ingest(self, batch: Sequence[Message], pending: Pending) -> pure.Writes:
        self.first_batch_at.setdefault("ingest", time.time())
        require_held(self.seen, batch)
        reads = self._reads(self.seen)
        writes = pure.ingest(batch, self.university_of,
                             through(pending, pure.SEEN, any_reader(self.seen)), datetime.now(UTC), self.topic,
                             self.dlq, self.event_partitions, self.recent)
        self._count_reads(self.seen, reads)
        return writes

    def _report_ingest(self, batch: Sequence[Message], writes: pure.Writes) -> None:
        assert isinstance(writes, pure.IngestWrites)
        if (m := self.metrics) is not None:
            for (family, university), n in writes.ingested.items():
                m.record_ingested(family, university, n=n)
            if writes.replays:
                m.record_replayed("ingest", writes.replays)
            m.observe_pipeline_latencies("ingest", [message.timestamp * 1000 for message in batch])
        self._done("ingest", batch, applied=sum(writes.ingested.values()))

    def _compute_tables(self, batch: Sequence[Message], pending: Pending) -> pure.Writes:
        """If a crash lands between the table writes and the sends, the replay finds the events already
        applied (``applied:`` keys) and re-sends the same partials and views."""
        self.first_batch_at.setdefault("tables", time.time())
        require_held(self.states, batch)
        reads = self._reads(self.states)
        writes = pure.tables(batch, self.domains,
                             through(pending, pure.STATES, partition_reader(self.states)),
                             datetime.now(UTC).isoformat(), self.topic, self.dlq, self.recent)
        self._count_reads(self.states, reads)
        return writes

    def _report_tables(self, batch: Sequence[Message], writes: pure.Writes) -> None:
        assert isinstance(writes, pure.TablesWrites)
        if (m := self.metrics) is not None:
            now_s = time.time()
            m.observe_event_latencies([(event.target_family, event.occurred_at) for event in writes.events], now=now_s)
            m.observe_pipeline_latencies("tables", [message.timestamp * 1000 for message in batch], now=now_s)
            m.record_aggregates(writes.aggregates)
            m.set_table_keys("entity-state", approximate_keys(self.states))
            m.set_table_keys("ingest-seen", approximate_keys(self.seen))
        self._done("tables", batch, applied=writes.applied)

    def _compute_rollup(self, batch: Sequence[Message], pending: Pending) -> pure.Writes:
        self.first_batch_at.setdefault("rollup", time.time())
        require_held(self.rollups, batch)
        reads = self._reads(self.rollups)
        writes = pure.rollup(batch,
                             through(pending, pure.ROLLUPS, partition_reader(self.rollups)), self.topic, self.dlq)
        self._count_reads(self.rollups, reads)
        return writes

    def _report_rollup(self, batch: Sequence[Message], writes: pure.Writes) -> None:
        assert isinstance(writes, pure.RollupWrites)
        if (m := self.metrics) is not None:
            m.record_aggregates(writes.aggregates)
            if writes.aggregates:
                m.observe_pipeline_latency("aggregate", batch[-1].timestamp * 1000)
            m.set_table_keys("rollups", approximate_keys(self.rollups))
        self._done("rollup", batch)

    # ------------------------------------------------------------------ reads (views, tests)
    def rollup_totals(self, aggregate: str) -> dict[str, dict[str, float]]:
        prefix = f"{aggregate}|"
        return {k[len(prefix):]: rollup.totals(v) for k, v in self.rollups.data.items() if k.startswith(prefix)}
