"""Where a keyed record lives: the default partitioner's choice (murmur2, as aiokafka's DefaultPartitioner and
kafka-python compute it), so that the publisher, the worker and the projector agree on a key's partition."""

from __future__ import annotations

from functools import lru_cache

from aiokafka.partitioner import murmur2


@lru_cache(maxsize=262_144)
def key_partition(key: bytes, partitions: int) -> int:
    return int(murmur2(key) & 0x7FFFFFFF) % partitions
