"""core.partitioning's murmur2 against two independent implementations (aiokafka's and kafka-python's) and
the values Kafka's own test of ``Utils.murmur2`` expects."""

from __future__ import annotations

import random

from aiokafka.partitioner import DefaultPartitioner
from aiokafka.partitioner import murmur2 as aiokafka_murmur2
from kafka.partitioner.default import murmur2 as kafka_python_murmur2

from core.partitioning import key_partition, murmur2

# org.apache.kafka.common.utils.UtilsTest#testMurmur2 (signed 32-bit results)
KAFKA_CASES = {b"21": -973932308, b"foobar": -790332482, b"a-little-bit-long-string": -985981536,
               b"a-little-bit-longer-string": -1486304829,
               b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971, b"abc": 479470107}


def signed(h: int) -> int:
    return h - (1 << 32) if h >= 1 << 31 else h


def test_the_values_kafkas_own_test_expects() -> None:
    for key, expected in KAFKA_CASES.items():
        assert signed(murmur2(key)) == expected, key


def test_every_length_and_every_byte_value_hash_as_both_libraries_hash_them() -> None:
    rng = random.Random(16)
    keys = [bytes(rng.randrange(256) for _ in range(n)) for n in range(0, 261) for _ in range(8)]
    keys += [bytes([b]) * n for b in (0, 0x7F, 0x80, 0xFF) for n in range(1, 9)]  # high bits: Java's signed bytes
    keys += ["招聘会:scu/2026".encode(), b""]
    for key in keys:
        assert murmur2(key) == aiokafka_murmur2(key) == kafka_python_murmur2(key), key


def test_key_partition_is_the_default_partitioners_choice() -> None:
    aio = DefaultPartitioner()
    rng = random.Random(7)
    for _ in range(3000):
        key = rng.randbytes(rng.randrange(1, 80))
        for n in (1, 3, 6, 12):
            parts = list(range(n))
            assert key_partition(key, n) == aio(key, parts, parts)
