"""A batch that cannot be written at all (here: the broker refuses the DLQ copy) stops the worker without
committing: the committed offset stays before the failed record, and a restarted worker, once the cause is
fixed, applies every event exactly once."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace
from typing import Any

import pytest
from kafka import KafkaAdminClient, KafkaProducer
from kafka.admin import ConfigResource, ConfigResourceType

from core.kafka_access import ADMIN
from core.settings import Settings
from core.topic_admin import provision
from events.simulator import alliance_day
from events.simulator.publish import publish
from events.topics import AGGREGATES, DLQ_TOPIC, agg_topic, ingest_topic, registry
from infra.oracle import accepted_events, expected_aggregates
from infra.processes import free_ports, worker
from infra.verify import aggregates_on_topics, all_match, latest, value_diffs
from streams.app import EXIT_BATCH_FAILED

pytestmark = pytest.mark.integration


def _dlq_config(admin: KafkaAdminClient, name: str, **extra: str) -> None:
    """Set the DLQ topic's configuration to the registry's (plus ``extra``)."""
    [spec] = [s for s in registry() if s.name == DLQ_TOPIC]
    admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, name, configs={**spec.config(), **extra})])


def _committed(admin: KafkaAdminClient, group: str, topic: str) -> dict[int, int]:
    offsets = admin.list_group_offsets(group).get(group, {})
    return {tp.partition: meta.offset for tp, meta in offsets.items() if tp.topic == topic}


async def test_a_batch_the_broker_refuses_stops_the_worker_without_committing(settings: Settings, unique: str) -> None:
    records = alliance_day(seed=41, scale=0.03, duplicate_rate=0.0, invalid_rate=0.0, spoofed_rate=0.0)
    suffix = f".t{unique}"
    provision(settings.kafka(ADMIN), suffix=suffix, app_id=f"failed-{unique}")
    admin = KafkaAdminClient(**settings.kafka(ADMIN).kafka_python())
    dlq = DLQ_TOPIC + suffix
    _dlq_config(admin, dlq, **{"max.message.bytes": "100"})  # no DLQ copy fits any more
    cfg = settings.model_copy(update={"topic_suffix": suffix, "app_id": f"failed-{unique}"})
    log_dir = settings.local_dir / f"failed-{unique}"
    [first_port] = free_ports(1)
    first = worker(0, cfg.model_copy(update={"web_port": first_port}), log_dir)
    # the same worker (same static membership, same port) started again: it takes its partitions back at once
    second = worker(0, cfg.model_copy(update={"web_port": first_port}), log_dir / "restarted")
    topic = ingest_topic("scu") + suffix
    try:
        first.start(cfg)
        await asyncio.to_thread(first.wait_ready, 120)
        producer = KafkaProducer(**settings.kafka("scu").kafka_python(), acks="all")  # scu's own system
        before = [r for r in records if r.topic == ingest_topic("scu")][:20]
        for r in before:  # good events, then a bad one in the same partition, then the rest of the day
            producer.send(topic, r.value, key=r.key, partition=0)
        bad = producer.send(topic, b"{not an event", key=b"bad", partition=0).get(timeout=30)
        producer.flush()
        assert first.proc is not None
        code = await asyncio.to_thread(first.proc.wait, 120)
        assert code == EXIT_BATCH_FAILED, first.log_tail(40)
        assert "stopping without committing" in first.log.read_text()
        committed = _committed(admin, cfg.app_id, topic)
        assert committed.get(0, 0) <= bad.offset, (committed, bad.offset)

        # the operator fixes the DLQ; the restarted worker replays from the committed offsets
        _dlq_config(admin, dlq, **{"max.message.bytes": "1048588"})  # the broker's default
        producer.close()
        assert publish([replace(r, topic=r.topic + suffix) for r in records], settings.kafka) == len(records)
        second.start(cfg)
        expected = expected_aggregates(accepted_events(records))

        def done(state: dict[str, dict[str, Any]]) -> bool:
            assert second.alive(), second.log_tail(40)
            return all_match(aggregates_on_topics(state, suffix), expected) and len(state[dlq]) >= 1

        state = await latest(settings.kafka(ADMIN), [*(agg_topic(n) + suffix for n in AGGREGATES), dlq],
                             f"check-{unique}", done, wait_s=180)
        actual = aggregates_on_topics(state, suffix)
        for name in AGGREGATES:  # the 20 events before the failure are re-sends of the day's: counted once
            assert not value_diffs(actual[name], expected[name]), (name, value_diffs(actual[name], expected[name])[:5])
        sources = {h["x-alliance-source-offset"] for _, h in state[dlq].values()}
        assert str(bad.offset).encode() in sources
        deadline = time.monotonic() + 30
        while _committed(admin, cfg.app_id, topic).get(0, 0) <= bad.offset:
            assert time.monotonic() < deadline, "the restarted worker never committed past the repaired record"
            await asyncio.sleep(0.5)
    finally:
        second.stop()
        first.stop()
        admin.close()
