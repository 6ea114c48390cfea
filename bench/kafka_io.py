"""Bare Kafka clients used by the benchmark: a fast loader, a paced producer, and the baseline consume loop."""

from __future__ import annotations

import asyncio
import os
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from aiokafka import AIOKafkaConsumer
from aiokafka.structs import TopicPartition

from bench.report import BenchError
from bench.workload import Item
from core.kafka_access import KafkaAccess
from events.tools.publisher import PRODUCER_DEFAULTS, ProducersByWriter

Progress = Callable[[str], None]
T = TypeVar("T")


#: a principal's access to the run's broker (``Services.kafka``)
Credentials = Callable[[str], KafkaAccess]


def producers(credentials: Credentials, **overrides: object) -> ProducersByWriter:
    """kafka-python producers with the publisher SDK's settings (acks=all, idempotent, same batching), one per
    principal that may write a topic: a university's records as that university, canonical ones as streams."""
    return ProducersByWriter(credentials, **{**PRODUCER_DEFAULTS, "client_id": f"bench-{uuid.uuid4().hex[:6]}",
                                             **overrides})


def warm_up(by_writer: ProducersByWriter, topics: set[str]) -> None:
    """Connect each topic's producer and read the topic's metadata (outside any clock)."""
    for topic in topics:
        by_writer(topic).partitions_for(topic)


def load(credentials: Credentials, items: Sequence[Item], suffix: str, timeout: float = 300.0) -> float:
    """Send every item to its suffixed topic as fast as possible, each as the principal that may write it;
    returns seconds taken."""
    by_writer = producers(credentials)
    try:
        warm_up(by_writer, {it.topic + suffix for it in items})
        t0 = time.perf_counter()
        futures = [by_writer(it.topic + suffix).send(it.topic + suffix, value=it.value, key=it.key) for it in items]
        by_writer.flush(timeout)
        elapsed = time.perf_counter() - t0
        failed = [f for f in futures if not f.is_done or f.failed()]
        if failed:
            raise BenchError(f"{len(failed)} of {len(items)} records were not acknowledged by the broker")
        return elapsed
    finally:
        by_writer.close()


@dataclass(frozen=True)
class Paced:
    sent_ms: list[int]  # record timestamps (CreateTime we set) in item order
    seconds: float
    acked_ms: list[float]  # when the broker's acknowledgement of each record reached the producer, same order


def in_niced_thread(fn: Callable[[], T], nice: int) -> T:
    """Run ``fn`` in a thread of its own whose CPU priority is lowered by ``nice`` (``os.nice``: on Linux a
    thread's own, inherited by the threads it starts, such as kafka-python's network threads); returns its
    result or raises its exception. The calling thread's priority is untouched, so nothing has to be raised
    back (which an unprivileged user may not do)."""
    result: list[T] = []
    error: list[BaseException] = []

    def run() -> None:
        try:
            if nice:
                os.nice(nice)
            result.append(fn())
        except BaseException as exc:  # handed to the caller
            error.append(exc)

    thread = threading.Thread(target=run, name=f"bench-nice-{nice}", daemon=True)
    thread.start()
    thread.join()
    if error:
        raise error[0]
    return result[0]


def paced(credentials: Credentials, items: Sequence[Item], suffix: str, rate: float, nice: int = 0) -> Paced:
    """Send at ``rate`` items/s (evenly spaced), each record's timestamp set to its send time. Every producer
    connects and reads its topic's metadata before the first send: a university's first record would otherwise
    wait for that (about half a second) after its timestamp was taken, which is the publisher's start-up, not
    the pipeline's latency. ``nice``: the sending (and the producers' network threads) run at that much lower
    CPU priority (:func:`in_niced_thread`); the universities' systems that this stands in for do not share the
    backbone's cores."""
    return in_niced_thread(lambda: _paced(credentials, items, suffix, rate), nice)


def _paced(credentials: Credentials, items: Sequence[Item], suffix: str, rate: float) -> Paced:
    by_writer = producers(credentials, linger_ms=2)
    sent: list[int] = []
    futures = []
    acked: list[float] = [0.0] * len(items)

    def on_ack(i: int) -> Callable[[object], None]:
        def record(_metadata: object) -> None:
            acked[i] = time.time() * 1000
        return record

    try:
        warm_up(by_writer, {it.topic + suffix for it in items})
        interval = 1.0 / rate
        t0 = time.perf_counter()
        for i, it in enumerate(items):
            due = t0 + i * interval
            delay = due - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            ts = int(time.time() * 1000)
            future = by_writer(it.topic + suffix).send(it.topic + suffix, value=it.value, key=it.key,
                                                       timestamp_ms=ts)
            future.add_callback(on_ack(i))
            futures.append(future)
            sent.append(ts)
        by_writer.flush(60)
        failed = [f for f in futures if not f.is_done or f.failed()]
        if failed:
            raise BenchError(f"{len(failed)} of {len(items)} paced records were not acknowledged by the broker")
        return Paced(sent, time.perf_counter() - t0, acked)
    finally:
        by_writer.close()


@dataclass(frozen=True)
class ConsumeResult:
    records: int
    seconds: float  # from partition assignment (group join excluded) to the last needed record
    first_batch: int

    @property
    def rate(self) -> float:
        n = self.records - self.first_batch
        return n / self.seconds if self.seconds > 0 and n > 0 else 0.0


async def bare_consume(kafka: KafkaAccess, topics: Sequence[str], expected: int,
                       limit_s: float = 180.0) -> ConsumeResult:
    """The baseline: a fresh group reads ``topics`` from the beginning with getmany, no processing."""
    consumer = AIOKafkaConsumer(
        *topics, **kafka.aiokafka(), group_id=f"bench-bare-{uuid.uuid4().hex[:8]}",
        auto_offset_reset="earliest", enable_auto_commit=False, client_id="bench-bare")
    await consumer.start()
    try:
        deadline = time.monotonic() + limit_s
        while not consumer.assignment():  # group join excluded (as the worker's start-up is)
            if time.monotonic() > deadline:
                raise BenchError(f"bare consumer got no partitions in {limit_s:.0f}s")
            await asyncio.sleep(0.005)
        t0 = time.perf_counter()
        count = 0
        while count < expected:
            if time.monotonic() > deadline:
                raise BenchError(f"bare consumer read {count} of {expected} records in {limit_s:.0f}s")
            batches = await consumer.getmany(timeout_ms=500)
            count += sum(len(v) for v in batches.values())
        return ConsumeResult(count, time.perf_counter() - t0, 0)
    finally:
        await consumer.stop()


Record = tuple[int, int, int, bytes | None, bytes | None]  # partition, offset, timestamp (ms), key, value


async def read_records(kafka: KafkaAccess, topic: str, partitions: int, limit_s: float = 60.0) -> list[Record]:
    """Every record of ``topic`` up to its current end, with its partition and offset."""
    consumer = AIOKafkaConsumer(**kafka.aiokafka(), enable_auto_commit=False, client_id="bench-read")
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        out: list[Record] = []
        deadline = time.monotonic() + limit_s
        while [tp for tp in tps if await consumer.position(tp) < ends[tp]]:
            if time.monotonic() > deadline:
                raise BenchError(f"reading {topic} to its end took more than {limit_s:.0f}s")
            for tp, recs in (await consumer.getmany(timeout_ms=300)).items():
                out += [(tp.partition, r.offset, r.timestamp, r.key, r.value) for r in recs]
        return out
    finally:
        await consumer.stop()
