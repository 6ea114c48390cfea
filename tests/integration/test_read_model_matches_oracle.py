"""Every figure exact everywhere: one alliance day (event ids of every UUID version, duplicates, bad and
spoofed records, 5% of the events retracted or corrected by their university later in the day) through a
real worker and the real projector. Every aggregate kind is checked against the
independent oracle (infra/oracle.py) three times: on its compacted topic, in the read model's
``agg_snapshot``, and in the read model's typed tables (postings, fairs, mentors, service_progress);
``projector_rejects`` must hold exactly the records that were made bad on purpose."""

from __future__ import annotations

import asyncio
import json
import uuid
from dataclasses import replace
from typing import Any

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from pydantic import SecretStr

from consumers.migrate import migrate
from consumers.queries import run_query
from core.kafka_access import ADMIN, STREAMS, KafkaAccess
from core.settings import Settings
from core.topic_admin import provision
from events.aggregates import parse_record
from events.codec import decode
from events.simulator import UUID_VERSIONS, alliance_day
from events.simulator.publish import publish
from events.topics import AGGREGATES, DLQ_TOPIC, Family, agg_topic, family_topic
from infra.oracle import accepted_events, expected_aggregates
from infra.processes import free_ports, projector, worker
from infra.verify import TYPED, aggregates_on_topics, all_match, latest, poll, snapshot, typed_tables, value_diffs

pytestmark = pytest.mark.integration

def readable_event_id(raw: bytes) -> str | None:
    try:
        obj = json.loads(raw)
        return str(uuid.UUID(obj["event_id"]))
    except (ValueError, TypeError, KeyError, AttributeError, RecursionError):
        return None


async def _canonical_records_point_at_their_source(kafka: KafkaAccess, topic: str) -> None:
    """Every canonical record names the ingest topic, partition and offset it came from, and the record
    there is the same event."""
    consumer = AIOKafkaConsumer(topic, **kafka.aiokafka(), auto_offset_reset="earliest",
                                enable_auto_commit=False)
    source = AIOKafkaConsumer(**kafka.aiokafka(), enable_auto_commit=False)
    await consumer.start()
    await source.start()
    try:
        batch = await consumer.getmany(timeout_ms=5000, max_records=200)
        records = [r for rs in batch.values() for r in rs if r.key != b"bad-event"]
        assert records
        for r in records[:50]:
            h = dict(r.headers)
            tp = TopicPartition(h["x-alliance-ingest-topic"].decode(), int(h["x-alliance-ingest-partition"]))
            source.assign([tp])
            source.seek(tp, int(h["x-alliance-ingest-offset"]))
            original = await source.getone()
            assert original.value is not None and r.value is not None
            assert decode(original.value).event_id == decode(r.value).event_id
    finally:
        await consumer.stop()
        await source.stop()


async def test_every_aggregate_is_exact_on_topics_in_agg_snapshot_and_in_typed_tables(
        settings: Settings, pg_dsn: str, unique: str) -> None:
    records = alliance_day(seed=23, scale=0.05, uuid_versions=UUID_VERSIONS, revision_rate=0.05)
    assert {r.event.event_id.version for r in records if r.event is not None} == set(UUID_VERSIONS)
    suffix = f".t{unique}"
    provision(settings.kafka(ADMIN), suffix=suffix, app_id=f"rm-{unique}")
    await migrate(pg_dsn)
    expected = expected_aggregates(accepted_events(records))
    typed_names = TYPED  # windows are not kept in typed tables; every other aggregate is

    cfg = settings.model_copy(update={"topic_suffix": suffix, "app_id": f"rm-{unique}",
                                      "database_url": SecretStr(pg_dsn)})
    log_dir = settings.local_dir / f"read-model-{unique}"
    worker_port, projector_port = free_ports(2)
    w = worker(0, cfg.model_copy(update={"web_port": worker_port}), log_dir)
    p = projector(cfg, log_dir, projector_port)
    # made bad on purpose: not an event on a canonical topic, and a forged record on an aggregated topic
    bad = [(family_topic(Family.RECRUITMENT) + suffix, b"bad-event", b'{"not": "an event"}'),
           (agg_topic("fairs") + suffix, b"forged-fair", b'{"aggregate": "fairs", "key": {"id": "x"}}')]
    try:
        w.start(cfg)
        p.start(cfg)
        await asyncio.to_thread(w.wait_ready, 120)
        await asyncio.to_thread(p.wait_ready, 60)
        assert publish([replace(r, topic=r.topic + suffix) for r in records], settings.kafka) == len(records)
        # only the streams principal may write these topics: the bad records stand for a bug in a worker
        producer = AIOKafkaProducer(**settings.kafka(STREAMS).aiokafka(), acks="all")
        await producer.start()
        try:
            for topic, key, value in bad:
                await producer.send_and_wait(topic, value, key=key)
        finally:
            await producer.stop()

        agg_topics = [agg_topic(n) + suffix for n in AGGREGATES]
        dlq = DLQ_TOPIC + suffix

        def done(state: dict[str, dict[str, Any]]) -> bool:
            assert w.alive() and p.alive(), f"a process exited; see {log_dir}"
            internal = [h for _, h in state[dlq].values() if h.get("x-alliance-university") == b"internal"]
            return all_match(aggregates_on_topics(state, suffix), expected) and len(internal) == 1

        state = await latest(settings.kafka(ADMIN), [*agg_topics, dlq], f"check-{unique}", done, wait_s=180)
        on_topics = aggregates_on_topics(state, suffix)
        for name in AGGREGATES:
            assert not value_diffs(on_topics[name], expected[name]), (name, value_diffs(on_topics[name],
                                                                                       expected[name])[:10])
        # every record on the aggregated topics satisfies its contract (the forged one aside)
        for name in AGGREGATES:
            for key, (rec, _) in state[agg_topic(name) + suffix].items():
                if rec is not None and key != "forged-fair":
                    parse_record(name, json.dumps(rec))
        await _canonical_records_point_at_their_source(settings.kafka(ADMIN), family_topic(Family.RECRUITMENT) + suffix)
        # an invalid record whose JSON still shows a valid event id carries it in x-alliance-event-id
        named = 0
        for value, headers in state[dlq].values():
            if headers.get("x-alliance-university") != b"internal" and \
                    (event_id := readable_event_id(value)) is not None:
                assert headers.get("x-alliance-event-id") == event_id.encode(), headers
                named += 1
        assert named, "no rejected record with a readable event id: the day has too little noise"
        # the tables agent sent the bad canonical record to the DLQ instead of stopping
        [(value, headers)] = [v for v in state[dlq].values() if v[1].get("x-alliance-university") == b"internal"]
        assert value == bad[0][2] and headers["x-alliance-reject-reason"] == b"unknown_type"  # no "type"

        conn = await asyncpg.connect(pg_dsn)
        try:
            async def caught_up() -> bool:
                return all_match(await snapshot(conn), expected) and \
                    all_match(await typed_tables(conn), expected, typed_names)

            await poll(caught_up, 120)
            in_snapshot, in_tables = await snapshot(conn), await typed_tables(conn)
            for name in AGGREGATES:
                assert not value_diffs(in_snapshot[name], expected[name]), (
                    "agg_snapshot", name, value_diffs(in_snapshot[name], expected[name])[:10])
            for name in typed_names:
                assert not value_diffs(in_tables[name], expected[name]), (
                    "typed tables", name, value_diffs(in_tables[name], expected[name])[:10])
            rejects = await conn.fetch('SELECT topic, key, value, reason FROM projector_rejects')
            # the day's retractions and corrections reached the read model's event log (events.corrections)
            revisions = [r.event for r in records if r.kind == "valid" and r.event is not None
                         and r.event.type.startswith("corrections.")]
            retracted = {(e.source, str(e.data.event_id)) for e in revisions if e.type.endswith("retracted")}
            logged = await conn.fetch("SELECT source, event_id::text AS id, payload IS NULL AS gone FROM event_log "
                                      "WHERE revised_at IS NOT NULL")
            assert {(r["source"], r["id"]) for r in logged} == {(e.source, str(e.data.event_id)) for e in revisions}
            assert {(r["source"], r["id"]) for r in logged if r["gone"]} == retracted
            # the portal's talent-flow query: per university, from the oracle's flows
            flows = [(dict(p.split("=", 1) for p in k.split("|")), v["hires"])
                     for k, v in expected["talent-flow"].items() if "university=*" not in k]
            accepted = {d["university"]: 0 for d, _ in flows}
            for k, v in expected["talent-flow"].items():
                if "university=*" not in k:
                    accepted[dict(p.split("=", 1) for p in k.split("|"))["university"]] += v["accepted_offers"]
            portal = {r["university"]: r for r in await run_query(conn, "talent-flow", None, 100)}
            assert portal and set(portal) == {d["university"] for d, _ in flows}
            for university, row in portal.items():
                mine = [(d, n) for d, n in flows if d["university"] == university]
                assert row["hires"] == sum(n for _, n in mine)
                assert row["left_circle"] == sum(n for d, n in mine if d["destination"] == "outside_circle")
                assert row["stayed_in_province"] == sum(n for d, n in mine if d["destination"] == d["origin"])
                assert row["accepted_offers"] == accepted[university]
                assert row["retention_in_circle"] == (round(1 - row["left_circle"] / row["hires"], 3)
                                                      if row["hires"] else None)
        finally:
            await conn.close()
        assert sorted((r["topic"], bytes(r["key"]), bytes(r["value"])) for r in rejects) == sorted(bad), \
            [dict(r) for r in rejects]
        assert w.alive() and p.alive()
    finally:
        p.stop()
        w.stop()
