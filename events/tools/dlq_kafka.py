"""Kafka I/O of the DLQ tooling (events.tools.dlq): read the DLQ, find what was redriven, redrive."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from kafka import KafkaConsumer, TopicPartition
from kafka.errors import AuthorizationError, KafkaError

from core.kafka_access import KafkaAccess
from events import wire
from events.errors import EventValidationError
from events.tools.dlq import RedrivePlan, Reject, parse
from events.tools.publisher import Publisher, PublisherError

Progress = Callable[[int, int], None]


def read_topic(kafka: KafkaAccess, topic: str, progress: Progress | None = None) -> Iterator[Any]:
    """Every record of ``topic`` from its beginning to its end offsets at the time of the call."""
    try:
        consumer = KafkaConsumer(**kafka.kafka_python(), enable_auto_commit=False,
                                 client_id="alliance-dlq-tool", consumer_timeout_ms=10_000)
    except KafkaError as exc:
        raise PublisherError(f"cannot connect to {kafka}: {exc}") from None
    try:
        try:
            partitions = consumer.partitions_for_topic(topic)
        except AuthorizationError:
            raise PublisherError(f"{kafka.principal} may not read {topic}") from None
        if not partitions:
            raise PublisherError(f"topic {topic} does not exist on {kafka.bootstrap} or {kafka.principal} may "
                                 "not read it")
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(tps)
        begin, end = consumer.beginning_offsets(tps), consumer.end_offsets(tps)
        total = sum(end[tp] - begin[tp] for tp in tps)
        consumer.seek_to_beginning(*tps)
        done = 0
        while any(consumer.position(tp) < end[tp] for tp in tps):
            batch = consumer.poll(timeout_ms=1000)
            for tp, records in batch.items():
                for record in records:
                    if record.offset < end[tp]:
                        done += 1
                        yield record
            if progress is not None and batch:
                progress(done, total)
    finally:
        consumer.close()


def read_dlq(kafka: KafkaAccess, topic: str, university: str | None = None,
             progress: Progress | None = None) -> list[Reject]:
    rejects = (parse(r.partition, r.offset, r.timestamp, r.value, r.headers)
               for r in read_topic(kafka, topic, progress))
    return [r for r in rejects if university is None or r.university == university]


def redriven(kafka: KafkaAccess, ingest_topic: str) -> set[str]:
    """DLQ coordinates already redriven to ``ingest_topic`` (its records' x-alliance-redrive-of headers)."""
    found: set[str] = set()
    for record in read_topic(kafka, ingest_topic):
        for key, value in record.headers:
            if key == wire.REDRIVE_OF:
                found.add(value.decode(errors="replace"))
    return found


def redrive(kafka: KafkaAccess, university: str, topic: str, plan: RedrivePlan) -> tuple[int, list[tuple[int, str]]]:
    """Send the plan's records; returns (sent, [(line, problem)] of records that are still invalid)."""
    invalid: list[tuple[int, str]] = []
    publisher = Publisher(kafka, university, topic=topic, client_id=f"alliance-redrive-{university}")
    sent = 0
    try:
        for number, coords, record in plan.send:
            if not isinstance(record, dict):
                invalid.append((number, "record is not a JSON object (fix it into an event first)"))
                continue
            try:
                publisher.publish(record, headers=[(wire.REDRIVE_OF, coords.encode())])
            except EventValidationError as exc:
                invalid.append((number, str(exc)))
                continue
            sent += 1
    finally:
        publisher.close()
    return sent, invalid
