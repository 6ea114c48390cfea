"""Throughput of the projector vs a raw COPY of the same rows into the same table, in the same run.

Prints the measurement (the benchmark issue wants the projector at >= 50% of raw COPY); asserts only that
both paths produced the same rows.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, date, datetime, timedelta

import asyncpg
import pytest
from kafka import KafkaProducer
from prometheus_client import CollectorRegistry

from bench import projector, state
from bench.env import drop_measurement
from bench.workload import load_items
from consumers.mapping import event_rows
from consumers.migrate import migrate
from consumers.tables import POSTINGS
from core.access_policy import Grant, Resource
from core.db_access import with_database
from core.kafka_access import ADMIN, PROJECTOR
from core.settings import Settings
from core.topic_admin import grant, provision
from events import recruitment as rc
from events.codec import encode
from events.topics import Family, TopicSpec
from tests.bench_services import bench_services, topics_left
from tests.integration.test_projector import Topics, config_for, end_offsets, project_until_caught_up

pytestmark = pytest.mark.integration
N = 20_000


async def test_projector_rows_per_second_vs_raw_copy(kafka_settings: Settings, pg_dsn: str, unique: str) -> None:
    t0 = datetime(2025, 3, 3, tzinfo=UTC)
    events = [rc.JobPosted(source="scu", occurred_at=t0 + timedelta(seconds=i), data=rc.JobPostedData(
        posting_id=f"bench-{i}", employer_id=f"emp-{i % 50}", employer_name="Bench Co", employer_type="private",
        industry="it_software", city="chengdu", title=f"Job {i}", positions=1 + i % 5, degree_min="bachelor",
        salary_min=5000, salary_max=9000, deadline=date(2025, 9, 1))) for i in range(N)]
    topics = Topics({Family.RECRUITMENT: f"b{unique}.events.recruitment"}, {})
    admin = kafka_settings.kafka(ADMIN)
    provision(admin, [TopicSpec(topics.events[Family.RECRUITMENT], 6)])
    grant(admin, [Grant(PROJECTOR, Resource.TOPIC, t, op) for t in topics.all for op in ("READ", "DESCRIBE")])
    producer = KafkaProducer(**admin.kafka_python(), acks="all", linger_ms=20, batch_size=256 * 1024)
    for e in events:
        producer.send(topics.events[Family.RECRUITMENT], encode(e), key=e.key)
    producer.flush(timeout=60)
    producer.close(timeout=10)
    await migrate(pg_dsn)
    want = end_offsets(kafka_settings.kafka(ADMIN), topics.all)

    registry = CollectorRegistry()
    started = time.perf_counter()
    await project_until_caught_up(config_for(kafka_settings, pg_dsn, topics, f"bench-{unique}", batch_size=2000),
                                  want, registry, limit_s=240)
    projector_s = time.perf_counter() - started
    db_s = registry.get_sample_value("alliance_projector_batch_seconds_sum") or 0.0

    rows = [r for e in events for t, r in event_rows(e) if t is POSTINGS]
    conn = await asyncpg.connect(pg_dsn)
    try:
        projected = {tuple(r) for r in await conn.fetch("SELECT * FROM postings ORDER BY posting_id")}
        await conn.execute("CREATE TABLE postings_copy (LIKE postings INCLUDING ALL)")
        started = time.perf_counter()
        await conn.copy_records_to_table("postings_copy", records=rows, columns=list(POSTINGS.column_names))
        copy_s = time.perf_counter() - started
        copied = {tuple(r) for r in await conn.fetch("SELECT * FROM postings_copy ORDER BY posting_id")}
    finally:
        await conn.close()
    assert projected == copied and len(copied) == N

    print(f"\n[bench] {N} JobPosted -> postings rows"
          f"\n[bench] projector end to end (Kafka fetch + decode + map + COPY/upsert + offsets, incl. startup): "
          f"{projector_s:.2f}s = {N / projector_s:,.0f} rows/s"
          f"\n[bench] projector DB transactions only: {db_s:.2f}s = {N / db_s:,.0f} rows/s"
          f"\n[bench] raw COPY of the same rows into the same table: {copy_s:.2f}s = {N / copy_s:,.0f} rows/s"
          f"\n[bench] projector / raw COPY = {copy_s / projector_s:.0%} end to end, {copy_s / db_s:.0%} DB only")


def test_the_history_measurement_applies_every_day_into_a_database_of_its_own(pg_server_dsn: str,
                                                                             unique: str) -> None:
    """``python -m bench --only projector-history`` (bench.projector.history) at a small size: three simulated days
    applied one after the other; the read model then holds exactly the events of the three days (their ids, read
    back from its event_log), and every day is timed and reported. Run again, the measurement drops its database
    when it ends."""
    per_day, database = 400, f"hist_{unique}"
    lines: list[str] = []
    days = projector.history(pg_server_dsn, database, 3, lambda i: state.day_items(i, per_day),
                             progress=lines.append, keep_database=True)
    events = [it.event for i in range(3) for it in state.day_items(i, per_day)]
    assert [d.day for d in days] == [1, 2, 3] and sum(d.records for d in days) == len(events)
    assert all(d.seconds > 0 and d.records_per_s > 0 for d in days) and len(lines) == 3

    async def logged() -> set[tuple[str, str]]:
        conn = await asyncpg.connect(with_database(pg_server_dsn, database))
        try:
            rows = await conn.fetch("SELECT source, event_id FROM event_log")
            return {(r["source"], str(r["event_id"])) for r in rows}
        finally:
            await conn.close()
            admin = await asyncpg.connect(pg_server_dsn)
            await admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
            await admin.close()

    assert asyncio.run(logged()) == {(e.source, str(e.event_id)) for e in events}
    projector.history(pg_server_dsn, database, 1, lambda i: state.day_items(i, 50), progress=lines.append)

    async def databases() -> list[str]:
        admin = await asyncpg.connect(pg_server_dsn)
        try:
            return [r["datname"] for r in await admin.fetch("SELECT datname FROM pg_database")]
        finally:
            await admin.close()

    assert database not in asyncio.run(databases())  # (left by default: dropped)


def test_the_projector_measurement_compares_the_same_rows_on_every_path(settings: Settings, pg_server_dsn: str,
                                                                       unique: str) -> None:
    """``python -m bench --only projector`` (bench.projector.measure) at a small size: the projector through Kafka, a
    COPY of its final rows and its write path alone must end with the same rows. The reference tables the
    migrations seed are not its output: counted, they made every run an ERROR (the write path's baseline starts
    from truncated tables) from migration 007 on."""
    svc = bench_services(settings, pg_server_dsn, unique)
    lines: list[str] = []
    try:
        result = projector.measure(svc, load_items(600), progress=lines.append, limit_s=180)
    finally:
        leftover = topics_left(settings, unique)
        drop_measurement(svc, "proj")  # (so that a failure here leaves nothing behind for the next tests)
    assert leftover == [] and any(line.startswith("  dropped the ") and "topics of proj" in line for line in lines)
    # (measure raises BenchError when the COPY or the write path ends with other rows than the projector; its rate
    # may be 0 at this size: the clock starts at the first committed batch, which can hold every record)
    assert result.copy_rate > 0 and result.write_rate > 0 and result.rate >= 0
    assert result.parameters["records"] == 600 and result.parameters["rows"] > 600
    assert sum(result.parameters["rows_per_table"].values()) == result.parameters["rows"]
    assert not any(t.startswith("reference_") for t in result.parameters["rows_per_table"])
