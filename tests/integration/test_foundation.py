"""The foundation: a message round-trips through the real broker and a row through the real database."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer
from kafka import KafkaAdminClient, KafkaProducer

from core.kafka_access import ADMIN, STREAMS, KafkaAccess
from core.settings import Settings
from core.topic_admin import create_missing, provision
from events.topics import TopicSpec, registry

pytestmark = pytest.mark.integration


def test_provision_creates_registry_topics_idempotently(kafka_admin: KafkaAccess) -> None:
    first = provision(kafka_admin)
    second = provision(kafka_admin)
    names = {s.name for s in registry()}
    assert set(first.created) | set(first.existing) == names
    assert second.created == [] and set(second.existing) == names
    admin = KafkaAdminClient(**kafka_admin.kafka_python())
    try:
        described = {t["name"]: t for t in admin.describe_topics(sorted(names))}
    finally:
        admin.close()
    for spec in registry():
        assert len(described[spec.name]["partitions"]) == spec.partitions, spec.name


def test_a_topic_keeping_data_longer_than_the_registry_says_is_reported(kafka_admin: KafkaAccess,
                                                                          unique: str) -> None:
    """Retention is part of the documented data lifecycle (docs/security.md): provisioning verifies it."""
    from core.errors import TopicError

    spec = TopicSpec(f"alliance.events.retention-{unique}", 1, retention_ms=7 * 24 * 3600 * 1000)
    provision(kafka_admin, [TopicSpec(spec.name, 1, retention_ms=365 * 24 * 3600 * 1000)])  # made earlier, longer
    with pytest.raises(TopicError, match=rf"{spec.name}: retention.ms=31536000000, the registry says 604800000"):
        provision(kafka_admin, [spec], timeout_s=1)


def test_provisioning_refuses_an_existing_topic_of_another_size_at_once(kafka_admin: KafkaAccess,
                                                                       unique: str) -> None:
    """Settings that changed a topic's partition count against an existing deployment: waiting cannot change
    an existing topic, so provisioning names both counts at once instead of waiting out its timeout."""
    import time

    from core.errors import TopicError

    name = f"alliance.events.resized-{unique}"
    provision(kafka_admin, [TopicSpec(name, 2)])
    t0 = time.monotonic()
    with pytest.raises(TopicError, match=rf"{name}: 2 partitions, 4 expected"):
        provision(kafka_admin, [TopicSpec(name, 4)], timeout_s=60)
    assert time.monotonic() - t0 < 30


def test_a_worker_creates_its_changelogs_as_streams_and_refuses_one_of_another_size(settings: Settings,
                                                                                   unique: str) -> None:
    """streams.worker.ensure_changelogs (core.topic_admin.create_missing) as the streams principal: a missing
    changelog is created and shown with its partitions at once; one that exists with another partition count
    (tables resized against an old deployment) is refused at once, naming both counts."""
    import time

    from core.errors import TopicError

    app_id = f"changelogs-{unique}"
    provision(settings.kafka(ADMIN), [], app_id=app_id)  # the streams principal's ACLs for the app's topics
    specs = [TopicSpec(f"{app_id}-rollups-changelog", 3, compacted=True)]
    report = create_missing(settings.kafka(STREAMS), specs, settings.replication_factor)
    assert report.created == [specs[0].name]
    again = create_missing(settings.kafka(STREAMS), specs, settings.replication_factor)
    assert again.created == [] and again.existing == [specs[0].name]
    t0 = time.monotonic()
    with pytest.raises(TopicError, match=rf"{specs[0].name}: 3 partitions, 6 expected"):
        create_missing(settings.kafka(STREAMS), [TopicSpec(specs[0].name, 6, compacted=True)],
                       settings.replication_factor, timeout_s=60)
    assert time.monotonic() - t0 < 60  # it did not wait out its timeout: waiting cannot change a partition count


def test_broker_does_not_auto_create_topics(kafka_admin: KafkaAccess, unique: str) -> None:
    from kafka.errors import KafkaTimeoutError

    producer = KafkaProducer(**kafka_admin.kafka_python(), max_block_ms=3000)
    try:
        with pytest.raises(KafkaTimeoutError):
            producer.send(f"not-provisioned-{unique}", b"x").get(timeout=5)
    finally:
        producer.close(timeout=2)


async def test_message_round_trips_through_real_broker(kafka_admin: KafkaAccess, unique: str) -> None:
    topic = f"roundtrip-{unique}"
    provision(kafka_admin, [TopicSpec(topic, 3)])
    producer = KafkaProducer(**kafka_admin.kafka_python(), acks="all", enable_idempotence=True)
    sent = {f"key-{i}".encode(): f"value-{i}".encode() for i in range(30)}
    for k, v in sent.items():
        producer.send(topic, v, key=k)
    producer.flush(timeout=15)
    producer.close()

    consumer = AIOKafkaConsumer(topic, **kafka_admin.aiokafka(), group_id=f"g-{unique}",
                                auto_offset_reset="earliest", enable_auto_commit=False)
    await consumer.start()
    received: dict[bytes, bytes] = {}
    try:
        async with asyncio.timeout(30):
            while len(received) < len(sent):
                batch = await consumer.getmany(timeout_ms=1000)
                for records in batch.values():
                    received.update({r.key: r.value for r in records if r.key is not None and r.value})
    finally:
        await consumer.stop()
    assert received == sent


async def test_row_round_trips_through_real_database(pg_dsn: str) -> None:
    conn = await asyncpg.connect(pg_dsn)
    try:
        await conn.execute("CREATE TABLE probe (id int PRIMARY KEY, university text NOT NULL)")
        await conn.executemany("INSERT INTO probe VALUES ($1, $2)", [(1, "scu"), (2, "cqu")])
        rows = await conn.fetch("SELECT id, university FROM probe ORDER BY id")
        version = await conn.fetchval("SHOW server_version_num")
    finally:
        await conn.close()
    assert [tuple(r) for r in rows] == [(1, "scu"), (2, "cqu")]
    assert int(version) >= 150000
