"""The worker's persistent table store (streams.store) against the real broker.

The store must always be a prefix of its changelog: after a kill -9 in the middle of a backlog, every
partition database holds exactly the changelog's latest value per key up to the offset it persisted, read
back here from Kafka independently of the worker. A restarted worker then reads only the changelog after
that offset and still ends exactly at the oracle's aggregates; after a graceful stop every database has
caught up with its changelog (a restart reads nothing)."""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import rocksdict
from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition
from kafka.admin import ConfigResource, ConfigResourceType

from core.kafka_access import ADMIN, STREAMS
from core.settings import Settings
from core.topic_admin import provision
from events.simulator import alliance_day
from events.simulator.publish import publish
from events.topics import AGGREGATES, agg_topic
from infra.oracle import accepted_events, expected_aggregates
from infra.processes import free_ports, wait_applied, worker
from infra.verify import aggregates_on_topics, all_match, latest, value_diffs
from streams.app import worker_datadir

pytestmark = pytest.mark.integration

OFFSET_KEY = b"__faust\0offset__"
TABLES = ("ingest-seen", "entity-state", "rollups")
HORIZON_S = Settings().dedupe_horizon_days * 86_400


def read_store(path: Path, ttl: int | None) -> tuple[int | None, dict[bytes, Any]]:
    """(persisted offset, {key: decoded value}) of one partition database (``ttl``: a database with a horizon,
    whose values carry RocksDB's TTL timestamps), opened while no worker holds it."""
    access = rocksdict.AccessType.with_ttl(ttl) if ttl else rocksdict.AccessType.read_only()
    db = rocksdict.Rdict(str(path), options=rocksdict.Options(raw_mode=True), access_type=access)
    try:
        items = dict(db.items())
    finally:
        db.close()
    offset = items.pop(OFFSET_KEY, None)
    return (int(offset) if offset is not None else None), {k: json.loads(v) for k, v in items.items()}


def changelog_partitions(settings: Settings, app_id: str) -> dict[str, int]:
    admin = KafkaAdminClient(**settings.kafka(ADMIN).kafka_python())
    try:
        names = [f"{app_id}-{t}-changelog" for t in TABLES]
        return {t["name"]: len(t["partitions"]) for t in admin.describe_topics(names)}
    finally:
        admin.close()


def topic_configs(settings: Settings, topics: list[str]) -> dict[str, dict[str, str]]:
    admin = KafkaAdminClient(**settings.kafka(ADMIN).kafka_python())
    try:
        described = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, t) for t in topics])
        return {name: {key: entry.get("value") for key, entry in configs.items()}
                for name, configs in described.get("topic", {}).items()}
    finally:
        admin.close()


def check_stores(settings: Settings, datadir: Path, app_id: str, *, caught_up: bool) -> int:
    """Every partition database equals its changelog's prefix up to the offset it persisted (read here with
    a plain consumer, tombstones applied); ``caught_up``: and that offset is the changelog's last. Returns
    the number of databases that persisted an offset."""
    consumer = KafkaConsumer(**settings.kafka(STREAMS).kafka_python(), enable_auto_commit=False)
    checked = 0
    try:
        for table in TABLES:
            topic = f"{app_id}-{table}-changelog"
            for path in sorted((datadir / "v1" / "tables").glob(f"{table}-*.db")):
                tp = TopicPartition(topic, int(path.name[len(table) + 1:-3]))
                end = consumer.end_offsets([tp])[tp]
                offset, stored = read_store(path, HORIZON_S if table == "ingest-seen" else None)
                if offset is None:
                    assert not stored, f"{path.name}: {len(stored)} keys but no persisted offset"
                    continue
                assert offset < end, (path.name, offset, end)
                expected: dict[bytes, Any] = {}
                consumer.assign([tp])
                consumer.seek_to_beginning(tp)
                while consumer.position(tp) <= offset:
                    for record in consumer.poll(timeout_ms=2000, max_records=10_000).get(tp, []):
                        if record.offset > offset:
                            break
                        if record.value is None:
                            expected.pop(record.key, None)
                        else:
                            expected[record.key] = json.loads(record.value)
                assert stored == expected, (
                    f"{path.name} at offset {offset}: {len(stored.keys() - expected.keys())} keys not in the "
                    f"changelog prefix, {len(expected.keys() - stored.keys())} missing, "
                    f"{sum(stored[k] != expected[k] for k in stored.keys() & expected.keys())} differ")
                if caught_up:
                    assert offset == end - 1, (path.name, offset, end)
                checked += 1
    finally:
        consumer.close()
    return checked


async def test_store_is_a_prefix_of_its_changelog_across_kill_9_and_restart(settings: Settings,
                                                                          unique: str) -> None:
    records = alliance_day(seed=23, scale=0.25)
    suffix, app_id = f".t{unique}", f"store-{unique}"
    provision(settings.kafka(ADMIN), suffix=suffix, app_id=app_id)
    expected = expected_aggregates(accepted_events(records))
    (port,) = free_ports(1)
    cfg = settings.model_copy(update={"topic_suffix": suffix, "app_id": app_id, "web_port": port,
                                      "table_store": "rocksdb"})
    log_dir = settings.local_dir / f"store-{unique}"
    w = worker(0, cfg, log_dir, port=port)
    cfg_worker = cfg.model_copy(update={"worker_instance_id": f"{app_id}-1"})
    datadir = worker_datadir(cfg_worker, web_port=port)
    try:
        w.start(cfg)
        await asyncio.to_thread(w.wait_ready, 120)
        assert publish([replace(r, topic=r.topic + suffix) for r in records], settings.kafka) == len(records)
        await asyncio.to_thread(wait_applied, [w], 500, 90)
        assert w.proc is not None
        w.proc.kill()  # kill -9 between (or inside) a changelog write and the store write that follows it
        w.proc.wait(timeout=10)
        assert await asyncio.to_thread(check_stores, settings, datadir, app_id, caught_up=False) > 0

        w.start(cfg)  # the same identity and port: the same directory, recovered from the persisted offsets on

        def done(state: dict[str, dict[str, Any]]) -> bool:
            assert w.alive(), f"the restarted worker exited; see {log_dir}"
            return all_match(aggregates_on_topics(state, suffix), expected)

        state = await latest(settings.kafka(ADMIN), [agg_topic(n) + suffix for n in AGGREGATES],
                             f"check-{unique}", done, wait_s=180)
        actual = aggregates_on_topics(state, suffix)
        for name in AGGREGATES:
            assert not value_diffs(actual[name], expected[name]), (name, value_diffs(actual[name],
                                                                                   expected[name])[:10])
        assert w.stop() == 0
        # a graceful stop leaves every database at the end of its changelog: a restart reads nothing
        assert await asyncio.to_thread(check_stores, settings, datadir, app_id, caught_up=True) > 0
        # the ingest's event ids leave the changelog after the dedupe horizon; the other tables' never do
        configs = topic_configs(settings, [f"{app_id}-{t}-changelog" for t in TABLES])
        assert configs[f"{app_id}-ingest-seen-changelog"]["cleanup.policy"] == "compact,delete"
        assert configs[f"{app_id}-ingest-seen-changelog"]["retention.ms"] == str(HORIZON_S * 1000)
        assert configs[f"{app_id}-entity-state-changelog"]["cleanup.policy"] == "compact"
        assert configs[f"{app_id}-rollups-changelog"]["cleanup.policy"] == "compact"
        # the worker created its changelogs before joining the group (streams.worker.ensure_changelogs), with
        # its tables' partitions, so faust's assignor never left one out ("Ignoring missing topic")
        partitions = {"ingest-seen": settings.ingest_partitions, "entity-state": settings.event_partitions,
                      "rollups": settings.agg_partitions}
        assert changelog_partitions(settings, app_id) == {f"{app_id}-{t}-changelog": n for t, n in partitions.items()}
        logs = "".join(p.read_text(errors="replace") for p in log_dir.glob("*.log"))
        assert "Ignoring missing topic" not in logs and "not found in cluster metadata" not in logs
    finally:
        w.stop()
