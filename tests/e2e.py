"""Helpers of the end-to-end tests: read the latest record per key of Kafka topics as an outside client
would, and compare aggregate values with the independent oracle (tests/oracle.py)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from typing import Any

from aiokafka import AIOKafkaConsumer

from events.topics import AGGREGATES, DLQ_TOPIC, agg_topic

TopicState = dict[str, dict[str, Any]]  # topic -> key (or partition:offset for the DLQ) -> (value, headers)


def value_diffs(actual: dict[str, dict[str, Any]], expected: dict[str, dict[str, Any]]) -> list[str]:
    """Keys missing on either side, and the expected fields whose actual value differs."""
    diffs = []
    for key in expected.keys() | actual.keys():
        e, a = expected.get(key), actual.get(key)
        if e is None or a is None:
            diffs.append(f"{key}: expected {e}, got {a}")
            continue
        wrong = {f: (v, a.get(f)) for f, v in e.items() if a.get(f) != v}
        if wrong:
            diffs.append(f"{key}: {wrong}")
    return diffs


async def latest(bootstrap: str, topics: list[str], group: str, until: Callable[[TopicState], bool],
                 wait_s: float) -> TopicState:
    """Latest value per (topic, key), read until ``until(state)`` holds or the timeout expires. DLQ records
    are all kept (by partition:offset) with their headers."""
    consumer = AIOKafkaConsumer(*topics, bootstrap_servers=bootstrap, group_id=group,
                                auto_offset_reset="earliest", enable_auto_commit=False)
    await consumer.start()
    state: TopicState = {t: {} for t in topics}
    try:
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            for tp, records in batch.items():
                for r in records:
                    if tp.topic.startswith(DLQ_TOPIC):
                        state[tp.topic][f"{tp.partition}:{r.offset}"] = (r.value, dict(r.headers))
                    else:
                        state[tp.topic][(r.key or b"").decode()] = (json.loads(r.value) if r.value else None, None)
            if until(state):
                break
    finally:
        await consumer.stop()
    return state


def agg_key(dims: dict[str, str]) -> str:
    """The oracle's key of an aggregate record: the entity id, or the sorted dimension string."""
    return dims["id"] if set(dims) == {"id"} else "|".join(f"{d}={dims[d]}" for d in sorted(dims))


def aggregates_on_topics(state: TopicState, suffix: str) -> dict[str, dict[str, dict[str, Any]]]:
    """{aggregate: {key: value}} from the latest records of the alliance.agg.* topics."""
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for name in AGGREGATES:
        out[name] = {}
        for rec, _headers in state[agg_topic(name) + suffix].values():
            if isinstance(rec, dict) and isinstance(rec.get("key"), dict) and "value" in rec:  # not a forgery
                out[name][agg_key(rec["key"])] = rec["value"]
    return out


def all_match(actual: dict[str, dict[str, dict[str, Any]]], expected: dict[str, dict[str, dict[str, Any]]],
              names: Iterable[str] = AGGREGATES) -> bool:
    return all(not value_diffs(actual.get(n, {}), expected[n]) for n in names)
