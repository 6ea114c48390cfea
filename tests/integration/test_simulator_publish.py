"""A simulated day published to the real broker comes back byte for byte, in order per key."""

from __future__ import annotations

import time
from collections import Counter, defaultdict

import pytest
from kafka import KafkaConsumer, TopicPartition

from core.kafka_access import KafkaAccess
from core.settings import Settings
from core.topic_admin import provision
from events.reference import UNIVERSITIES
from events.simulator import Record, alliance_day
from events.simulator.publish import SimulatorPublishError, build_parser, main, publish
from events.topics import ingest_topic

pytestmark = pytest.mark.integration

INGEST_TOPICS = [ingest_topic(u) for u in UNIVERSITIES]
CONSUME_TIMEOUT_S = 60.0
Message = tuple[str, bytes, bytes]  # topic, key, value


def end_offsets(kafka: KafkaAccess, topics: list[str]) -> dict[TopicPartition, int]:
    """The current end offset of every partition of ``topics``."""
    consumer = KafkaConsumer(**kafka.kafka_python(), enable_auto_commit=False)
    try:
        partitions = [TopicPartition(t, p) for t in topics for p in sorted(consumer.partitions_for_topic(t) or ())]
        return dict(consumer.end_offsets(partitions))
    finally:
        consumer.close()


def consume_range(kafka: KafkaAccess, start: dict[TopicPartition, int], end: dict[TopicPartition, int]
                  ) -> dict[TopicPartition, list[Message]]:
    """Every message with start <= offset < end, per partition, in offset order (explicit timeout)."""
    consumer = KafkaConsumer(**kafka.kafka_python(), enable_auto_commit=False)
    out: dict[TopicPartition, list[Message]] = defaultdict(list)
    try:
        consumer.assign(list(start))
        for tp, offset in start.items():
            consumer.seek(tp, offset)
        remaining = {tp for tp in start if end[tp] > start[tp]}
        deadline = time.monotonic() + CONSUME_TIMEOUT_S
        while remaining:
            assert time.monotonic() < deadline, f"timed out; partitions still behind: {sorted(remaining)}"
            for tp, messages in consumer.poll(timeout_ms=1000).items():
                out[tp] += [(m.topic, m.key or b"", m.value or b"") for m in messages if m.offset < end[tp]]
                if consumer.position(tp) >= end[tp]:
                    remaining.discard(tp)
    finally:
        consumer.close()
    return out


def test_published_day_comes_back_byte_for_byte_in_order_per_key(
        kafka_admin: KafkaAccess, kafka_settings: Settings, unique: str) -> None:
    provision(kafka_admin)
    records = alliance_day(seed=int(unique, 16) % 2**31, scale=0.02)  # a seed of its own: unique bytes
    assert {r.kind for r in records} == {"valid", "duplicate", "invalid", "spoofed", "foreign"}
    before = end_offsets(kafka_admin, INGEST_TOPICS)
    calls: list[tuple[int, int]] = []
    sent = publish(records, kafka_settings.kafka, progress=lambda done, total: calls.append((done, total)))
    after = end_offsets(kafka_admin, INGEST_TOPICS)

    assert sent == len(records)
    assert calls[-1] == (len(records), len(records))
    consumed = consume_range(kafka_admin, before, after)

    expected = Counter((r.topic, r.key, r.value) for r in records)
    ours = [m for messages in consumed.values() for m in messages if m in expected]  # others may publish too
    assert Counter(ours) == expected
    assert Counter(m[0] for m in ours) == Counter(r.topic for r in records)

    # the list order is the publish order: per topic and key the broker keeps it exactly
    published: dict[tuple[str, bytes], list[bytes]] = defaultdict(list)
    for r in records:
        published[(r.topic, r.key)].append(r.value)
    received: dict[tuple[str, bytes], list[bytes]] = defaultdict(list)
    for messages in consumed.values():
        for topic, key, value in messages:
            if (topic, key, value) in expected:
                received[(topic, key)].append(value)
    assert received == published


def test_rate_limited_publish_sends_everything(kafka_admin: KafkaAccess, kafka_settings: Settings, unique: str) -> None:
    provision(kafka_admin)
    records = alliance_day(seed=int(unique, 16) % 2**31, scale=0.02)[:40]
    before = end_offsets(kafka_admin, INGEST_TOPICS)
    assert publish(records, kafka_settings.kafka, rate=400.0) == 40
    consumed = consume_range(kafka_admin, before, end_offsets(kafka_admin, INGEST_TOPICS))
    expected = Counter((r.topic, r.key, r.value) for r in records)
    assert Counter(m for ms in consumed.values() for m in ms if m in expected) == expected


def test_publishing_to_a_missing_topic_fails_loudly(kafka_settings: Settings, unique: str) -> None:
    record = Record(f"alliance.ingest.not-provisioned-{unique}", b"k", b"{}", "invalid", None)
    with pytest.raises(SimulatorPublishError, match="not-provisioned"):
        publish([record], kafka_settings.kafka)


def test_cli_publishes_and_summarises(kafka_admin: KafkaAccess, kafka_settings: Settings, unique: str,
                                      capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in kafka_settings.kafka_env().items():  # the CLI reads its settings from the environment
        monkeypatch.setenv(name, value)
    provision(kafka_admin)
    before = end_offsets(kafka_admin, INGEST_TOPICS)
    seed = str(int(unique, 16) % 2**31)
    assert main(["--scale", "0.01", "--seed", seed, "--bootstrap", kafka_admin.bootstrap]) == 0
    captured = capsys.readouterr()
    n = len(alliance_day(seed=int(seed), scale=0.01, revision_rate=build_parser().get_default("revision_rate")))
    assert f"published {n}/{n}" in captured.err
    assert f"published {n} records" in captured.out and "alliance.ingest.cqu" in captured.out
    after = end_offsets(kafka_admin, INGEST_TOPICS)
    assert sum(after.values()) - sum(before.values()) >= n
