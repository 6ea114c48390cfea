"""The worker's persistent table store: faust's RocksDB store (``rocksdict``), written by the batch writer.

faust's own RocksDB store writes a key to the partition of "the current event" and reads it from there. An
agent that takes batches has no single current event (a batch mixes partitions), so :class:`Store` writes
only through :meth:`Store.write_batch`, which names the partition. The tables and rollup agents read a key from
the partition of the record they process (:func:`partition_reader`: every key such a record touches lives on
its partition); the ingest's dedupe ids, which a university may re-send under another record key, and faust's
own reads (the views) look in whichever of this worker's partitions holds the key (:func:`any_reader` tries
each database; faust's reads first ask its bounded key index, which :meth:`Store.write_batch` does not fill: a
written key stays on its partition, so an entry there cannot go stale, and keeping it up to date cost 2 % of
the worker's time for an index of 1,000 keys that the agents' reads do not use).

The order that keeps a store equal to a prefix of its changelog (streams.writer):

1. a batch's changelog records are appended to Kafka (one atomic record batch per changelog partition) and
   acknowledged;
2. only then are the same keys and values written to the partition's RocksDB database, together with the
   changelog offset of the last one, in ONE RocksDB write batch (atomic per partition database).

A crash between 1 and 2 leaves the database behind its changelog: faust's recovery at the next start reads
the changelog from the persisted offset on, so nothing is lost and nothing of the local state is ahead of
the changelog (a state ahead of it would make a replayed event look applied while its applied id never
reached the changelog, and the next owner of the partition would count it again). A partition revoked while
its batch was in flight is not written locally at all (its next recovery reads that batch from the
changelog).

A restart therefore reads only the changelog written since the last batch the worker persisted, not the
whole history, and memory does not grow with the number of keys (they live on disk; a worker's memtables and
block cache are bounded by :data:`MEMTABLE_BYTES` and :data:`BLOCK_CACHE_BYTES`, whatever it holds).

A table with a horizon (``ingest-seen``: event ids for the ingest's duplicate check, ``dedupe_horizon_days``)
forgets its entries: RocksDB's TTL drops them at compaction, and its changelog deletes segments older than
the horizon, so neither the disk nor a recovery grows with history.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import cache
from pathlib import Path
from typing import Any, cast

import pydantic_core
import rocksdict
from faust.stores import STORES
from faust.stores import rocksdb as faust_rocksdb

from events.codec import StoredJson

URL = "alliance-rocksdb://"
# per partition database: memtables of at most 4 MiB (at most 2); faust's defaults (64 MiB x 3 memtables, a
# 2 GiB block cache) are per database, and a worker opens one per table partition it holds (12 here, all 24 of
# two workers' after a failover).
ROCKSDB_OPTIONS: dict[str, Any] = {
    "driver": "rocksdict",
    "write_buffer_size": 4 * 1024 * 1024,
    "max_write_buffer_number": 2,
    "target_file_size_base": 16 * 1024 * 1024,
    # bits per key of each file's bloom filter (faust's default: 3, which lets ~15 % of the files a read of an
    # absent key probes through to a block read). Most reads miss: every new event's dedupe id, in each of the
    # worker's seen databases, and its applied key; a miss over three seen databases cost 5.4-9.8 us after 10-20
    # simulated days with 3 bits, 2.5-3.7 us with 10 (docs/benchmarks.md, sixteenth session). The worker: 5-8 %
    # less CPU per event over 20 days, and 4-13 MB more RSS after 10-20 days (the filters, held with each file)
    "bloom_filter_size": 10,
}
# A worker's RocksDB memory is bounded by two budgets that every database it opens shares, whatever the
# number of partitions it holds: one block cache (uncompressed blocks; the files' pages stay in the OS page
# cache, outside the worker's memory) and one memtable budget (a write that finds the worker's memtables
# over it flushes one of its own database's: RocksDB's write buffer manager). Per database, a 4 MiB cache
# and two 4 MiB memtables, they filled with history up to 144 MiB for 12 databases: RSS after 10 days of
# history 1.29-1.40x that after 1, against 1.18-1.23x with these budgets, and flat from 10 to 20 days
# (docs/benchmarks.md, 2026-12-06 fifteenth session; the worker's CPU per event did not differ beyond the
# runs' noise).
BLOCK_CACHE_BYTES = 16 * 1024 * 1024
MEMTABLE_BYTES = 32 * 1024 * 1024

Change = tuple[bytes, bytes | None]  # a changelog record's key and value (None: delete)


@cache
def shared_budgets() -> tuple[rocksdict.Cache, rocksdict.WriteBufferManager]:
    """This process's block cache and memtable budget (:data:`BLOCK_CACHE_BYTES`, :data:`MEMTABLE_BYTES`),
    made once and given to every database it opens. The budget flushes, it never stalls a write."""
    return rocksdict.Cache(BLOCK_CACHE_BYTES), rocksdict.WriteBufferManager(MEMTABLE_BYTES, False)


class Options(faust_rocksdb.RocksDBOptions):
    """faust's RocksDB options (rocksdict driver), with the process's shared block cache and memtable budget
    (:func:`shared_budgets`) instead of a cache per database, and a database is opened with its column
    family's options given explicitly. ``rocksdict.Rdict(path, options=...)`` on an *existing* database reads
    the column family's options back from the database's OPTIONS file instead, where the block cache is not
    kept: every database reopened after a restart ran with RocksDB's default 8 MiB block cache, not the
    configured one (measured: block-cache-usage summed over the databases 54 MB after 4 days since a restart,
    against the 24 MB configured; docs/benchmarks.md, 2026-12-03 fourth session)."""

    def as_options(self) -> rocksdict.Options:
        options = cast(rocksdict.Options, super().as_options())  # faust's, whose table options we replace
        if not self.use_rocksdict:  # pragma: no cover - the alliance store is rocksdict's
            return options
        block_cache, memtables = shared_budgets()
        table = rocksdict.BlockBasedOptions()  # as faust's (bloom filter, binary-search index), shared cache
        table.set_bloom_filter(self.bloom_filter_size, True)
        table.set_block_cache(block_cache)
        table.set_index_type(rocksdict.BlockBasedIndexType.binary_search())
        options.set_block_based_table_factory(table)
        options.set_write_buffer_manager(memtables)
        return options

    def open(self, path: Path, *, read_only: bool = False) -> rocksdict.Rdict:
        if not self.use_rocksdict:  # pragma: no cover - the alliance store is rocksdict's
            return cast(rocksdict.Rdict, super().open(path, read_only=read_only))
        access = (rocksdict.AccessType.read_write() if self.ttl is None
                  else rocksdict.AccessType.with_ttl(self.ttl))
        options = self.as_options()  # one set: the database's and its family's
        db = rocksdict.Rdict(str(path), options=options, column_families={"default": options}, access_type=access)
        db.set_read_options(rocksdict.ReadOptions())
        return db


class Store(faust_rocksdb.Store):
    """faust's RocksDB store, written per partition by :class:`streams.writer.BatchWriter`."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.rocksdb_options = Options(**(self.options or {}), use_rocksdict=self.use_rocksdict)
        self._epochs: dict[int, int] = {}  # partition -> times its database was opened on this worker
        self.reads = 0  # by get_in and get_any (faust's sensors count them per batch: streams.sensors.table_reads)
        # the values are the JSON :func:`table_bytes` wrote: parsed straight, not through faust's codec registry
        # and its model reconstruction (2.6 against 1.0 µs per value; faust's own reads take this path too)
        self._plain_json = self.value_type is None and self.value_serializer in (None, "json")

    def _decode_value(self, value: bytes | None) -> Any:
        if not self._plain_json:
            return super()._decode_value(value)
        return None if value is None else pydantic_core.from_json(value)

    # ------------------------------------------------------------------ writes
    def epoch(self, partition: int) -> int | None:
        """An opaque token that changes whenever ``partition`` is assigned again (faust's revoke closes its
        database, and reopening counts); None while this worker does not hold it."""
        return self._epochs.get(partition) if partition in self._dbs else None

    def write_batch(self, partition: int, changes: Iterable[Change], offset: int, epoch: int | None) -> None:
        """Write ``changes`` to ``partition``'s database with the changelog ``offset`` of the last of them,
        atomically; only if the partition is still the one ``epoch`` saw (not revoked meanwhile)."""
        if epoch is None or self.epoch(partition) != epoch:
            return
        batch = rocksdict.WriteBatch(raw_mode=True)
        for key, value in changes:
            if value is None:
                batch.delete(key)
            else:
                batch.put(key, value)
        batch.put(self.offset_key, str(offset).encode())
        self._dbs[partition].write(batch)

    def get_in(self, key: str, partition: int) -> Any:
        """``key``'s value in ``partition``'s database (None when absent or the partition is not held here)."""
        self.reads += 1
        db = self._dbs.get(partition)
        if db is None:
            return None
        value = db.get(table_bytes(key))
        return None if value is None else self._decode_value(value)

    def get_any(self, key: str) -> Any:
        """``key``'s value in whichever database of this worker holds it (faust's ``table.get``, which walks
        them all twice through faust's layers: once to test, once to read)."""
        self.reads += 1
        encoded = table_bytes(key)
        for db in self._dbs.values():
            value = db.get(encoded)
            if value is not None:
                return self._decode_value(value)
        return None

    def _set(self, key: bytes, value: bytes | None) -> None:
        raise RuntimeError("alliance tables are written by streams.writer.BatchWriter only (write_batch)")

    # ------------------------------------------------------------------ reads (never by "the current event")
    def _get(self, key: bytes) -> bytes | None:
        found = self._get_bucket_for_key(key)
        return None if found is None else found[1]

    def _contains(self, key: bytes) -> bool:
        return self._get(key) is not None

    def approximate_keys(self) -> int:
        """RocksDB's estimate of the keys in this worker's partitions (counting them would read them all)."""
        return sum(int(db.property_int_value("rocksdb.estimate-num-keys") or 0) for db in self._dbs.values())

    # ------------------------------------------------------------------ assignment
    def _db_for_partition(self, partition: int) -> Any:
        if partition not in self._dbs:
            self._epochs[partition] = self._epochs.get(partition, 0) + 1
        return super()._db_for_partition(partition)


def store_options(horizon_s: int | None = None) -> dict[str, Any]:
    """A table's store options; ``horizon_s``: entries expire that long after they were written (RocksDB's
    TTL: dropped at compaction, so kept at least that long)."""
    return {**ROCKSDB_OPTIONS, **({"ttl": horizon_s} if horizon_s else {})}


def changelog_configs(horizon_s: int | None = None) -> dict[str, str]:
    """Topic configs of a table's changelog: compacted; with ``horizon_s`` also deleted after that long (one
    segment a day at most, so an entry leaves the changelog at most a day after its horizon)."""
    if not horizon_s:
        return {}
    return {"cleanup.policy": "compact,delete", "retention.ms": str(horizon_s * 1000),
            "segment.ms": str(min(horizon_s, 86_400) * 1000)}


def table_bytes(obj: Any) -> bytes:
    """A table key as the changelog and the store hold it (and a value as versions before 2026-12-05 wrote it;
    values are now :func:`value_bytes`): the JSON faust's ``json`` codec reads back (pydantic's serialiser:
    several times faster than the json module, which took 6 % of the worker's time). ASCII-escaped like
    ``json.dumps``: a key keeps the bytes it had in changelogs written before, or compaction would keep an old
    record of the same key beside the new one."""
    return pydantic_core.to_json(obj, ensure_ascii=True)


def value_bytes(obj: Any) -> bytes:
    """A table value as the changelog and the store hold it: the same JSON as :func:`table_bytes`, but in UTF-8,
    not ASCII-escaped (a fifth less time per value; ~5.7 values per event). Only a key's bytes must stay what
    they were; every reader parses a value (faust's ``json`` codec, :meth:`Store._decode_value`), so a value
    written either way reads back the same. An event's stored form given as its canonical record
    (``events.codec.StoredJson``) is written as those bytes."""
    return obj.json if type(obj) is StoredJson else pydantic_core.to_json(obj)


def partition_reader(table: Any) -> Callable[[str, int], Any]:
    """``read(key, partition)`` for the agents: straight from that partition's database with the persistent
    store (faust's ``table.get`` would try every partition of the worker in turn: 11 % of the worker's time);
    the in-memory store has one mapping for all partitions."""
    data = table.data
    if isinstance(data, Store):
        return data.get_in
    get = table.get
    return lambda key, partition: get(key)


def register() -> None:
    """Make :data:`URL` a faust store (idempotent)."""
    STORES.aliases["alliance-rocksdb"] = f"{__name__}:Store"


def any_reader(table: Any) -> Callable[[str], Any]:
    """``read(key)`` from whichever partition of this worker holds ``key`` (a key that is not tied to one
    partition: the ingest's dedupe ids, which a university may re-send under another record key)."""
    data = table.data
    return data.get_any if isinstance(data, Store) else table.get


def held(table: Any, partition: int) -> bool:
    """Whether this worker holds ``partition`` of ``table``'s store (always, for the in-memory store, which
    cannot tell). Reads of a partition not held find nothing, and its writes are not kept locally."""
    data = table.data
    return not isinstance(data, Store) or data.epoch(partition) is not None


def approximate_keys(table: Any) -> int:
    """Keys of a table on this worker: exact for the in-memory store, RocksDB's estimate for :class:`Store`."""
    data = table.data
    return data.approximate_keys() if isinstance(data, Store) else len(data)
