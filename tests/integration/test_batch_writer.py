"""streams.writer.BatchWriter against the real broker: every record arrives once, in order per
topic-partition, on the partition the default partitioner would choose (or the explicit one), with its
headers; batches that overflow the producer's batch size are split."""

from __future__ import annotations

import asyncio
import json
from collections import defaultdict
from types import SimpleNamespace

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.structs import TopicPartition
from kafka.partitioner.default import murmur2 as kafka_python_murmur2

from core.kafka_access import KafkaAccess
from core.partitioning import key_partition
from core.topic_admin import provision
from events.topics import TopicSpec
from streams.store import table_bytes
from streams.writer import BatchWriter

pytestmark = pytest.mark.integration


def test_key_partition_matches_kafka_python_and_aiokafka() -> None:
    from aiokafka.partitioner import DefaultPartitioner as AioPartitioner

    aio = AioPartitioner()
    for i in range(2000):
        key = f"posting-{i:05d}".encode()
        for n in (1, 3, 6, 7):
            parts = list(range(n))
            kafka_python = (kafka_python_murmur2(key) & 0x7FFFFFFF) % n  # kafka-python's DefaultPartitioner
            assert key_partition(key, n) == kafka_python == aio(key, parts, parts)


async def _read(kafka: KafkaAccess, topic: str, partitions: int, expected: int) -> dict[int, list]:
    consumer = AIOKafkaConsumer(**kafka.aiokafka(), enable_auto_commit=False)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        out: dict[int, list] = defaultdict(list)
        for _ in range(100):
            for tp, recs in (await consumer.getmany(timeout_ms=500)).items():
                out[tp.partition].extend(recs)
            if sum(len(v) for v in out.values()) >= expected:
                break
        return out
    finally:
        await consumer.stop()


async def test_batch_writer_delivers_in_order_on_the_right_partitions(kafka_admin: KafkaAccess, unique: str) -> None:
    keyed, fixed = f"writer-keyed-{unique}", f"writer-fixed-{unique}"
    provision(kafka_admin, [TopicSpec(keyed, 3), TopicSpec(fixed, 2)])
    producer = AIOKafkaProducer(**kafka_admin.aiokafka(), acks="all", max_batch_size=16 * 1024)
    await producer.start()
    try:
        writer = BatchWriter(lambda: producer)
        padding = "x" * 300  # 1,000 records of ~330 bytes: several 16 KiB batches per partition
        for i in range(1000):
            writer.add(keyed, f"k{i % 37}".encode(), json.dumps({"seq": i, "pad": padding}).encode(),
                       headers=[("x-seq", str(i).encode())])
        table = SimpleNamespace(data={}, changelog_topic=SimpleNamespace(get_topic_name=lambda: fixed))
        writer.put_all(table, [(i % 2, f"key-{i}", {"n": i}) for i in range(10)])
        assert await writer.seal()() == 1010
        assert await writer.seal()() == 0  # nothing pending
        assert writer.records == 1010
        assert table.data == {f"key-{i}": {"n": i} for i in range(10)}

        got = await _read(kafka_admin, keyed, 3, 1000)
        seqs: list[int] = []
        for partition, recs in got.items():
            per_key: dict[bytes, list[int]] = defaultdict(list)
            for r in recs:
                assert key_partition(r.key, 3) == partition
                seq = json.loads(r.value)["seq"]
                assert dict(r.headers)["x-seq"] == str(seq).encode()
                per_key[r.key].append(seq)
                seqs.append(seq)
            for key_seqs in per_key.values():
                assert key_seqs == sorted(key_seqs)  # order kept per key (and per partition)
        assert sorted(seqs) == list(range(1000))

        changelog = await _read(kafka_admin, fixed, 2, 10)
        for partition, recs in changelog.items():
            assert [json.loads(r.key) for r in recs] == [f"key-{i}" for i in range(partition, 10, 2)]
            assert [json.loads(r.value) for r in recs] == [{"n": i} for i in range(partition, 10, 2)]
            assert recs[0].key == table_bytes("key-" + str(partition))

        # a record larger than the batch size goes in a batch of its own (the broker's limit is 1 MiB)
        writer.add(fixed, b"big", b"y" * (64 * 1024), partition=0)
        writer.add(fixed, b"after", b"z", partition=0)
        assert await writer.seal()() == 2
        tail = (await _read(kafka_admin, fixed, 2, 12))[0][-2:]
        assert [(r.key, len(r.value)) for r in tail] == [(b"big", 64 * 1024), (b"after", 1)]
    finally:
        await producer.stop()


async def test_the_writer_s_record_batches_do_not_wait_out_the_producer_s_linger(kafka_admin: KafkaAccess,
                                                                                  unique: str) -> None:
    """The writer batches already: it closes each record batch it hands to the producer, so the batch goes out
    with the next produce request (aiokafka sends an open batch only once its linger passed) and nothing else
    sent through the same producer is appended to it. With a linger of ten minutes, a flush is acknowledged
    all the same (with open batches it waited the ten minutes: the stall guard below failed)."""
    topic, changelog = f"writer-linger-{unique}", f"writer-linger-cl-{unique}"
    provision(kafka_admin, [TopicSpec(topic, 2), TopicSpec(changelog, 2)])
    producer = AIOKafkaProducer(**kafka_admin.aiokafka(), acks="all", linger_ms=600_000)
    await producer.start()
    try:
        writer = BatchWriter(lambda: producer)
        table = SimpleNamespace(data={}, changelog_topic=SimpleNamespace(get_topic_name=lambda: changelog))
        writer.put_all(table, [(0, "a", {"n": 1}), (1, "b", {"n": 2})])
        writer.add(topic, b"k", b"v")
        writer.add(topic, b"fixed", b"w", partition=1)
        assert await asyncio.wait_for(writer.seal()(), 60) == 4  # (a stall guard: an open batch waits 10 min)
    finally:
        await producer.stop()  # (nothing lingers: returns at once)
    got = await _read(kafka_admin, topic, 2, 2)
    assert sorted(r.value for recs in got.values() for r in recs) == [b"v", b"w"]
    assert b"w" in [r.value for r in got[1]]  # the explicit partition
    changelog_records = await _read(kafka_admin, changelog, 2, 2)
    assert {p: [json.loads(r.value) for r in recs] for p, recs in changelog_records.items()} == {0: [{"n": 1}],
                                                                                                  1: [{"n": 2}]}


async def test_a_changelog_batch_up_to_the_split_size_fits_the_broker_even_incompressible(
        kafka_admin: KafkaAccess, unique: str) -> None:
    """Puts are staged and counted per changelog partition (``largest_changelog_batch``, what the pipeline
    splits a batch by; ``entry_bytes`` counts one entry the same way, what an erasure's parts are cut by) and
    reach an in-memory table only with the flush; a discard forgets them. A changelog record batch of just under
    ``SPLIT_BYTES`` of random text (zstd saves a quarter at most) is accepted by a
    topic with the broker's default message size."""
    import random
    import string

    from streams.writer import RECORD_OVERHEAD, SPLIT_BYTES

    changelog = f"writer-split-{unique}"
    provision(kafka_admin, [TopicSpec(changelog, 2)])
    producer = AIOKafkaProducer(**kafka_admin.aiokafka(), acks="all")
    await producer.start()
    try:
        writer = BatchWriter(lambda: producer)
        table = SimpleNamespace(data={}, changelog_topic=SimpleNamespace(get_topic_name=lambda: changelog))
        writer.put_all(table, [(0, "a", {"n": 1}), (1, "b", None), (1, "c", {"n": 22})])
        assert writer.largest_changelog_batch() == len(b'"c"') + len(b'{"n":22}') + len(b'"b"') + 2 * RECORD_OVERHEAD
        assert writer.entry_bytes("c", {"n": 22}) + writer.entry_bytes("b", None) == writer.largest_changelog_batch()
        assert table.data == {}  # staged, not written
        writer.discard()
        assert writer.largest_changelog_batch() == 0 and await writer.seal()() == 0 and table.data == {}

        value_chars = 8 * 1024
        n = SPLIT_BYTES // (value_chars + 2 + 12 + RECORD_OVERHEAD)  # a JSON string's quotes; a key's 12 bytes
        rng = random.Random(7)
        table_entries = [(f"key-{i:06d}", "".join(rng.choices(string.ascii_letters + string.digits, k=value_chars)))
                         for i in range(n)]
        writer.put_all(table, [(0, k, v) for k, v in table_entries])
        assert SPLIT_BYTES * 0.9 < writer.largest_changelog_batch() <= SPLIT_BYTES
        assert writer.largest_changelog_batch() == sum(writer.entry_bytes(k, v) for k, v in table_entries)
        assert await writer.seal()() == n
        assert len(table.data) == n
        got = await _read(kafka_admin, changelog, 2, n)
        assert [json.loads(r.key) for r in got[0]] == [f"key-{i:06d}" for i in range(n)]
    finally:
        await producer.stop()
