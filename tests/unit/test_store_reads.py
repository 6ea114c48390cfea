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


def test_values_decode_as_fausts_json_codec_decodes_them(tmp_path: Path) -> None:
    """The store parses its values itself (not through faust's codec registry): the same Python values as
    faust's ``json`` codec, for what the writer stores and for JSON it never writes but a changelog might hold;
    an integer beyond 64 bits stays exact (faust's orjson makes it a float), and a value that looks like one
    of faust's serialized models stays data (faust would try to rebuild a model from it)."""
    table = _table(tmp_path, "states")
    store = table.data
    assert store._plain_json
    values: list[Any] = [{"a": [1, 2.5, None, True], "n": {"x": "é😀", "big": 2**63 - 1}}, [3, True], "s", 0, -0.0,
                         1e-300, {"_log": [4, False], "fields": {"positions": [3, "2026-12-01T10:00:00+00:00"]}}]
    # as the writer stores values (UTF-8), and as versions before it did (ASCII-escaped, still in changelogs)
    written = [encode(v) for v in values for encode in (st.value_bytes, st.table_bytes)]
    assert "é😀".encode() in st.value_bytes(values[0]) and b"\\u00e9" in st.table_bytes(values[0])
    others = [b'{"e": "\\u00e9\\ud83d\\ude00", "q": "\\"\\\\\\/"}', b' [1.0, 2E3, -7e-2] ', b'-9223372036854775808',
              b'{"d": 1, "d": 2}']
    for raw in written + others:
        assert store._decode_value(raw) == table.app.serializers.loads_value(None, raw, serializer="json"), raw
    assert [store._decode_value(raw) for raw in written] == [v for v in values for _ in range(2)]
    assert store._decode_value(None) is None
    assert store._decode_value(b'{"big": 12345678901234567890123}') == {"big": 12345678901234567890123}
    model_like = {"__faust": {"ns": "nothing.registered"}, "k": 1}
    assert store._decode_value(st.table_bytes(model_like)) == model_like
