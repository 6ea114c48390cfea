"""Where a keyed record lives: the default partitioner's choice (murmur2, as aiokafka's DefaultPartitioner and
kafka-python compute it), so that the publisher, the worker and the projector agree on a key's partition."""

from __future__ import annotations

from functools import lru_cache

from aiokafka.partitioner import murmur2

#: keys whose partition is remembered (aiokafka's murmur2 is pure Python: ~7 us a key). Keys keep coming with
#: history (new entities, new hourly windows), so a larger cache is memory that grows with history: at
#: 262,144 it held ~60 MB when full; a day's working set is a few thousand keys
KEY_CACHE = 16_384


@lru_cache(maxsize=KEY_CACHE)
def key_partition(key: bytes, partitions: int) -> int:
    return int(murmur2(key) & 0x7FFFFFFF) % partitions
