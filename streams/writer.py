"""Everything one agent batch writes, sent as one Kafka record batch per topic-partition.

Faust's per-record ``producer.send`` / ``table.send_changelog`` cost a few asyncio tasks, futures and sensor
calls per record; a batch of 1,000 events made ~9,000 of them and that, not the alliance code, bounded the
worker (docs/benchmarks.md). :class:`BatchWriter` collects a batch's records (canonical events, DLQ copies,
changelog records, partials, aggregates) and appends them to aiokafka ``BatchBuilder``\\ s of faust's own
producer (same connection, ``acks=all``), one ``send_batch`` per topic-partition. ``seal()`` takes a batch out
of the writer; what it returns sends the batch and returns when the broker has acknowledged every record, so
the agent's offsets are only committed after its writes.

Table writes are atomic per changelog partition: everything a batch writes to one changelog topic-partition
goes into ONE zstd-compressed record batch, which the broker appends whole or not at all. The tables agent
keeps an entity's state, the applied event ids and its partition's partial sums in one table (so one
changelog partition): a crash in the middle of a flush can never leave a partial sum that counts an event
whose state (or applied id) did not persist, which a replay would then count again. A changelog batch that
does not fit one record batch fails the flush (the worker then stops without committing).

With the persistent store (:mod:`streams.store`), a table entry is written to the partition's RocksDB
database only after its changelog record batch was acknowledged, with that record's offset, so the local
state is never ahead of the changelog; the in-memory store is written when the batch is sealed, before
anything is sent (entries staged for a batch that is then processed in parts, ``discard``, are never written).

Every record batch is closed before it goes to the producer. aiokafka sends an open batch only once the
producer's linger has passed (5 ms per stage, three stages on the way to an aggregate), in case more records
come; the writer has batched already. A closed batch also takes nothing that faust sends through the same
producer, so a changelog batch holds exactly what the agent wrote.

Records keep their order within a topic-partition. Keyed records with no explicit partition go where the
producer's default partitioner (murmur2, the same as kafka-python's) would put them, so the publisher, the
worker and the projector agree on where a key lives. Changelog records carry the key and value in the
table's ``json`` codec, which is what faust's recovery reads back.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.producer.message_accumulator import BatchBuilder
from aiokafka.record.default_records import DefaultRecordBatch

from core.partitioning import key_partition
from events.codec import plain
from streams.store import Store, table_bytes, value_bytes

Headers = list[tuple[str, bytes]]
Record = tuple[bytes | None, bytes | None, Headers]
NO_HEADERS: Headers = []  # of every changelog record (shared: nothing appends to it)
ATOMIC_BATCH_BYTES = 8 * 1024 * 1024  # uncompressed limit of one changelog partition's batch (zstd: ~1/6 on the wire)
# An agent batch of several records is processed in parts when its writes to one changelog partition would exceed
# this (uncompressed; streams.pipeline): the record batch then fits the broker's default message size (1 MiB) and
# the producer's request size (1,000,000 bytes) even if nothing compresses. Without it, a university's maximal
# postings keyed to one partition made a 16 MiB batch of a thousand, which failed on every worker taking it over.
SPLIT_BYTES = 900 * 1024
RECORD_OVERHEAD = 64  # bytes a record adds to its record batch beyond key and value, at most (varints, headers)
# zstd: on the worker's changelog records it compresses better than gzip level 9 (15 % against 18 % of the size)
# and ~8x faster; gzip was 7 % of the worker's time (docs/benchmarks.md). The worker compresses with a context kept
# per thread (core.runtime.zstd_encode, set by tune_allocator), not aiokafka's new cramjam context per batch
CHANGELOG_CODEC = DefaultRecordBatch.CODEC_ZSTD


def _record_bytes(key: bytes, value: bytes | None) -> int:
    """A changelog record's share of its record batch, counted against :data:`SPLIT_BYTES`."""
    return len(key) + len(value or b"") + RECORD_OVERHEAD


class ChangelogBatchTooLarge(RuntimeError):
    """One batch's writes to a changelog partition do not fit one record batch (they must be atomic)."""


class BatchWriter:
    def __init__(self, producer: Callable[[], AIOKafkaProducer],
                 before_flush: Callable[[], Awaitable[None]] | None = None) -> None:
        self._producer = producer
        self._before_flush = before_flush  # the worker's zombie fence (streams.fence)
        self._partitions: dict[str, int] = {}
        self._pending: dict[tuple[str, int | None], list[Record]] = {}
        self._atomic: dict[tuple[str, int], list[tuple[bytes, bytes | None, Headers]]] = {}  # one record batch each
        # changelog partitions of persistent stores: their records go to the store too, once acknowledged
        # (the store, and the partition's epoch when the batch was computed)
        self._local: dict[tuple[str, int], tuple[Store, int | None]] = {}
        self._memory: list[tuple[Any, str, Any]] = []  # in-memory tables' writes, applied when the batch is sealed
        self._changelogs: dict[int, str] = {}  # id(table) -> its changelog topic (faust names it anew on every call)
        self.records = 0  # sent since start, for tests and metrics

    def add(self, topic: str, key: bytes | None, value: bytes | None, *, partition: int | None = None,
            headers: Headers | None = None) -> None:
        self._pending.setdefault((topic, partition), []).append((key, value, headers or []))

    def put_all(self, table: Any, entries: Iterable[tuple[int, str, Any]]) -> None:
        """Write the (partition, key, value) ``entries`` of a faust table, each with its changelog record on
        its partition (a persistent store: after the flush acknowledged the changelog record; value None: a
        tombstone, the key is deleted). The table's changelog and store are looked up once for all of them:
        one batch writes ~6 entries per event, and per entry they cost as much as encoding it."""
        changelog = self._changelogs.get(id(table))
        if changelog is None:
            changelog = self._changelogs[id(table)] = table.changelog_topic.get_topic_name()
        data = table.data  # (a property of faust's tables)
        store = data if isinstance(data, Store) else None
        atomic, memory, encode, encode_value = self._atomic, self._memory, table_bytes, value_bytes
        for partition, key, value in entries:
            changes = atomic.get((changelog, partition))
            if changes is None:
                changes = atomic[(changelog, partition)] = []
                if store is not None:  # (staged with its first entry: _atomic and _local are emptied together)
                    self._local[(changelog, partition)] = (store, store.epoch(partition))
            changes.append((encode(key), None if value is None else encode_value(value), NO_HEADERS))
            if store is None:
                memory.append((data, key, value))

    @staticmethod
    def entry_bytes(key: str, value: Any) -> int:
        """What one table entry adds to its changelog record batch, as :meth:`largest_changelog_batch` counts it."""
        return _record_bytes(table_bytes(key), None if value is None else value_bytes(value))

    def largest_changelog_batch(self) -> int:
        """Bytes (uncompressed, with record overhead) of the largest changelog record batch staged so far."""
        return max((sum(_record_bytes(key, value) for key, value, _ in changes) for changes in self._atomic.values()),
                   default=0)

    def discard(self) -> None:
        """Forget everything staged since the last seal (nothing of it was sent or written anywhere)."""
        self._pending, self._atomic, self._local, self._memory = {}, {}, {}, []

    def seal(self) -> Callable[[], Awaitable[int]]:
        """Take everything added since the last seal out of the writer now (the in-memory tables'
        entries are written here) and return what sends it and waits for the acknowledgements. An agent that
        stages and seals without an await in between never has its records sent by another agent's flush,
        which would then be acknowledged without them."""
        pending, self._pending = self._pending, {}
        atomic, self._atomic = self._atomic, {}
        local, self._local = self._local, {}
        memory, self._memory = self._memory, []
        for data, entry_key, entry_value in memory:  # in-memory tables: the entries first, as before the sends
            if entry_value is None:
                data.pop(entry_key, None)
            else:
                data[entry_key] = plain(entry_value)  # (what a persistent store's read returns)
        return lambda: self._send(pending, atomic, local)

    async def _send(self, pending: dict[tuple[str, int | None], list[Record]],
                    atomic: dict[tuple[str, int], list[tuple[bytes, bytes | None, Headers]]],
                    local: dict[tuple[str, int], tuple[Store, int | None]]) -> int:
        if not pending and not atomic:
            return 0
        if self._before_flush is not None:
            await self._before_flush()
        producer = self._producer()
        futures: list[asyncio.Future[Any]] = []
        changelog_futures: dict[tuple[str, int], asyncio.Future[Any]] = {}
        sent = 0
        for (changelog, changelog_partition), changes in atomic.items():  # one record batch each
            builder = BatchBuilder(ATOMIC_BATCH_BYTES, CHANGELOG_CODEC)
            for change_key, change_value, change_headers in changes:
                if builder.append(key=change_key, value=change_value, timestamp=None, headers=change_headers) is None:
                    raise ChangelogBatchTooLarge(f"{len(changes)} changelog records for {changelog}"
                                                 f"[{changelog_partition}] exceed {ATOMIC_BATCH_BYTES} bytes")
            builder.close()  # sent now (no linger), and nothing of faust's can append to it
            future = await producer.send_batch(builder, changelog, partition=changelog_partition)
            futures.append(future)
            changelog_futures[(changelog, changelog_partition)] = future
            sent += len(changes)
        by_tp: dict[tuple[str, int], list[Record]] = {}
        for (topic, partition), records in pending.items():
            if partition is not None:
                by_tp.setdefault((topic, partition), []).extend(records)
                continue
            n = await self._partition_count(producer, topic)
            for record in records:
                p = key_partition(record[0], n) if record[0] is not None else 0
                by_tp.setdefault((topic, p), []).append(record)
        for (topic, partition), records in by_tp.items():
            batch = producer.create_batch()
            for key, value, headers in records:
                if batch.append(key=key, value=value, timestamp=None, headers=headers) is None:  # (closes it)
                    futures.append(await producer.send_batch(batch, topic, partition=partition))
                    batch = producer.create_batch()
                    # an empty batch takes any first record (even one larger than the batch size)
                    batch.append(key=key, value=value, timestamp=None, headers=headers)
                sent += 1
            batch.close()
            futures.append(await producer.send_batch(batch, topic, partition=partition))
        await asyncio.gather(*futures)
        for tp, (store, epoch) in local.items():  # acknowledged: now the local state may follow
            meta = changelog_futures[tp].result()  # base offset of the record batch
            if meta is not None:  # None only without acknowledgements (acks=0): recovery reads it instead
                written = atomic[tp]
                store.write_batch(tp[1], [(k, v) for k, v, _ in written], int(meta.offset) + len(written) - 1,
                                  epoch)
        self.records += sent
        return sent

    async def _partition_count(self, producer: AIOKafkaProducer, topic: str) -> int:
        if topic not in self._partitions:
            self._partitions[topic] = len(await producer.partitions_for(topic))
        return self._partitions[topic]
