"""The agents' reads of the worker's persistent store (streams.store: ``get_in``, ``get_any`` and the readers
built on them) against faust's own ``table.get`` as the oracle, on real RocksDB databases of three
partitions (no broker: the databases are written as the batch writer writes them after an acknowledgement)."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import faust

from streams import store as st


def _table(tmp_path: Path, name: str, store: str = "alliance-rocksdb://") -> Any:
    st.register()
    app = faust.App(f"reads-{name}", datadir=str(tmp_path), store=store)
    return app.Table(name, partitions=3)


def test_reads_find_what_fausts_table_get_finds(tmp_path: Path) -> None:
    table = _table(tmp_path, "seen")
    store = table.data
    assert isinstance(store, st.Store)
    for partition in (0, 1, 2):
        store._db_for_partition(partition)
    rng = random.Random(5)
    written: dict[str, tuple[int, Any]] = {}
    for offset in range(40):
        partition = rng.randrange(3)
        changes = []
        for _ in range(rng.randrange(1, 6)):
            key = f"scu/{rng.randrange(60)}"
            if key in written and written[key][0] != partition:
                continue  # a key lives on one partition
            value = None if rng.random() < 0.2 else [rng.random(), partition, offset]
            changes.append((st.table_bytes(key), None if value is None else st.table_bytes(value)))
            written[key] = (partition, value)
        store.write_batch(partition, changes, offset, store.epoch(partition))
    any_read, partition_read = st.any_reader(table), st.partition_reader(table)
    for remembered in (True, False):  # faust's key -> partition memory as its reads fill it, then empty (a restart)
        if not remembered:
            store._key_index.clear()
        for n in range(70):
            key = f"scu/{n}"
            assert any_read(key) == (written[key][1] if key in written else None)
            assert table.get(key) == any_read(key)  # (faust's walk, which fills the memory: after ours)
            for partition in (0, 1, 2):
                here = key in written and written[key][0] == partition
                assert partition_read(key, partition) == (any_read(key) if here else None)
    reads = store.reads
    any_read("scu/1")
    assert store.reads == reads + 1  # counted for faust's table-read sensor (once per read)


def test_a_partition_not_held_is_not_read(tmp_path: Path) -> None:
    table = _table(tmp_path, "rollups")
    store = table.data
    store._db_for_partition(0)
    store.write_batch(0, [(st.table_bytes("k"), st.table_bytes(1))], 0, store.epoch(0))
    assert st.partition_reader(table)("k", 0) == 1 and st.partition_reader(table)("k", 1) is None
    assert st.any_reader(table)("k") == 1 and st.any_reader(table)("other") is None


def test_the_in_memory_store_reads_through_the_table(tmp_path: Path) -> None:
    table = _table(tmp_path, "mem", store="memory://")
    table.data["k"] = {"v": 1}
    assert st.any_reader(table)("k") == {"v": 1} and st.partition_reader(table)("k", 2) == {"v": 1}
    assert st.any_reader(table)("absent") is None
