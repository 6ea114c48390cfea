"""Publisher SDK throughput (validation + encoding + CloudEvents headers + idempotent acks=all sends)
against raw kafka-python sends of pre-serialised bytes and headers with the same producer settings."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from bench import kafka_io
from bench.env import Services, drop_topics, provision_run
from bench.kafka_io import Progress
from bench.report import BenchError
from bench.workload import Item
from events.reference import UNIVERSITIES
from events.tools.publisher import Publisher
from events.topics import ingest_topic
from events.wire import cloudevent_headers


@dataclass(frozen=True)
class PublisherRates:
    raw: float
    dicts: float  # mappings in: events.codec.from_dict validation, encode, headers, send
    models: float  # models in (already validated): encode, headers, send


def raw_rate(svc: Services, items: Sequence[Item], suffix: str) -> float:
    prepared = [(it.topic + suffix, it.key, it.value, cloudevent_headers(it.event)) for it in items]
    by_writer = kafka_io.producers(svc.kafka)  # one per university, as its own system (and the SDK) would send
    try:
        for u in UNIVERSITIES:
            by_writer(ingest_topic(u) + suffix).partitions_for(ingest_topic(u) + suffix)  # outside the clock
        t0 = time.perf_counter()
        futures = [by_writer(topic).send(topic, value=value, key=key, headers=headers)
                   for topic, key, value, headers in prepared]
        by_writer.flush(120)
        elapsed = time.perf_counter() - t0
    finally:
        by_writer.close()
    if any(f.failed() or not f.is_done for f in futures):
        raise BenchError("raw sends: not every record was acknowledged")
    return len(items) / elapsed


def sdk_rate(svc: Services, inputs: Sequence[tuple[str, Any]], suffix: str) -> float:
    """``inputs``: (university, event model or mapping). One Publisher per university, created and connected
    before the clock starts; every publisher flushed (DeliveryError on any failure) before it stops."""
    pubs = {u: Publisher(svc.kafka(u), u, topic=ingest_topic(u) + suffix) for u in UNIVERSITIES}
    try:
        t0 = time.perf_counter()
        for u, ev in inputs:
            pubs[u].publish(ev)
        for pub in pubs.values():
            pub.flush(timeout=120)
        return len(inputs) / (time.perf_counter() - t0)
    finally:
        for pub in pubs.values():
            pub.close(timeout=10)


def measure(svc: Services, items: Sequence[Item], rounds: int, progress: Progress = print) -> PublisherRates:
    """Best of ``rounds`` for each variant, interleaved (raw, dicts, models, raw, ...), each into its own
    freshly provisioned topics so no variant writes behind another's data."""
    dict_inputs = [(it.event.source, it.event.model_dump(mode="json")) for it in items]
    model_inputs = [(it.event.source, it.event) for it in items]
    best = {"raw": 0.0, "dicts": 0.0, "models": 0.0}
    try:
        warm = svc.suffix("pub-warmup")  # first connections, topic creation, JIT-less but cold caches
        provision_run(svc, warm, only_ingest=True)
        raw_rate(svc, items[: min(len(items), 3000)], warm)
        sdk_rate(svc, dict_inputs[: min(len(items), 1000)], warm)
        for r in range(rounds):
            for variant in best:
                suffix = svc.suffix(f"pub-{variant}-{r}")
                provision_run(svc, suffix, only_ingest=True)
                if variant == "raw":
                    v = raw_rate(svc, items, suffix)
                else:
                    v = sdk_rate(svc, dict_inputs if variant == "dicts" else model_inputs, suffix)
                progress(f"  publisher round {r + 1}/{rounds} {variant}: {v:,.0f} events/s")
                best[variant] = max(best[variant], v)
    finally:
        drop_topics(svc, "pub", progress)  # (the warm-up's and every round's: all of them start with "pub-")
    return PublisherRates(best["raw"], best["dicts"], best["models"])
