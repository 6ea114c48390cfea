"""Projector rows/s (consumers.projector.Projector over the canonical topics, offsets in the same
transaction) against a raw asyncpg COPY of the same final rows into the same tables; and its write path applying
the 10th day of history against the 1st (:func:`history`)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from bench import kafka_io
from bench.env import Services, drop_topics, provision_run
from bench.kafka_io import Progress
from bench.report import BenchError
from bench.workload import Item
from core.db_access import with_database
from core.kafka_access import PROJECTOR
from events.topics import EVENT_PARTITIONS, Family, family_topic

BOOKKEEPING = ("consumer_offsets", "projector_rejects", "schema_migrations", "agg_snapshot",
               "reference_cities", "reference_universities")  # (and reference data the migrations seed)
POLL_S = 0.05


@dataclass
class ProjectorResult:
    rate: float
    copy_rate: float
    write_rate: float  # apply_plan alone over the same records (no Kafka, no decode): the write path's ceiling
    parameters: dict[str, Any] = field(default_factory=dict)
    note: str = ""


@dataclass(frozen=True)
class _Record:  # the part of a ConsumerRecord that consumers.mapping.plan_batch reads
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


def offline_batches(records: Sequence[Item], suffix: str, batch_size: int) -> list[list[_Record]]:
    """The canonical records as the projector would fetch them (partition by key, offsets per partition),
    in batches of ``batch_size``."""
    from core.partitioning import key_partition

    next_offset: dict[tuple[str, int], int] = {}
    out: list[_Record] = []
    for it in records:
        topic = it.topic + suffix
        p = key_partition(it.key, EVENT_PARTITIONS) if it.key is not None else 0
        offset = next_offset.get((topic, p), 0)
        next_offset[(topic, p)] = offset + 1
        out.append(_Record(topic, p, offset, it.key, it.value))
    return [out[i:i + batch_size] for i in range(0, len(out), batch_size)]


async def _write_path(dsn: str, group: str, batches: list[list[_Record]], kinds: dict[str, Any]) -> float:
    """Seconds for ``apply_plan`` of every batch (planned beforehand, off the clock) on one connection of its
    own."""
    from consumers.mapping import plan_batch
    from consumers.store import apply_plan, prepare_connection

    plans = [plan_batch(b, kinds) for b in batches]
    writer = await asyncpg.connect(dsn, timeout=10)
    try:
        await prepare_connection(writer)
        t0 = time.perf_counter()
        for plan in plans:
            await apply_plan(writer, group, plan)
        return time.perf_counter() - t0
    finally:
        await writer.close()


def canonical(items: Sequence[Item]) -> list[Item]:
    """The records the ingest agent writes: alliance.events.<family>, keyed by subject, the encoded event."""
    return [Item(family_topic(it.event.family), it.event.key, it.event.to_json(), it.event) for it in items]


async def _tables(conn: asyncpg.Connection) -> list[str]:
    rows = await conn.fetch("SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' "
                            "AND table_type = 'BASE TABLE' ORDER BY table_name")
    return [r["table_name"] for r in rows if r["table_name"] not in BOOKKEEPING]


async def _columns(conn: asyncpg.Connection, table: str) -> str:
    """The table's stored (non-generated) columns, quoted, for SELECT and COPY."""
    rows = await conn.fetch("SELECT column_name FROM information_schema.columns WHERE table_schema = 'public' "
                            "AND table_name = $1 AND is_generated = 'NEVER' ORDER BY ordinal_position", table)
    return ", ".join(f'"{r["column_name"]}"' for r in rows)


async def _on_server(dsn: str, statement: str) -> None:
    """Run one statement (CREATE / DROP DATABASE) on ``dsn``'s server."""
    admin = await asyncpg.connect(dsn, timeout=10)
    try:
        await admin.execute(statement)
    finally:
        await admin.close()


async def _new_database(dsn: str, database: str) -> str:
    """Create ``database`` on ``dsn``'s server; its DSN."""
    await _on_server(dsn, f'CREATE DATABASE "{database}"')
    return with_database(dsn, database)


async def _run(svc: Services, suffix: str, items: Sequence[Item], progress: Progress,
               limit_s: float) -> ProjectorResult:
    total = len(items)
    from consumers.migrate import migrate
    from consumers.projector import Projector, ProjectorConfig

    dsn = await _new_database(svc.dsn, f"bench_{svc.run_id}")
    await migrate(dsn)
    group = f"bench-{svc.run_id}"
    config = ProjectorConfig(kafka=svc.kafka(PROJECTOR), dsn=dsn, group=group,
                             event_topics=tuple(family_topic(f) + suffix for f in Family), agg_topics=())
    projector = Projector(config)
    stop = asyncio.Event()
    task = asyncio.create_task(projector.run(stop))
    conn = await asyncpg.connect(dsn, timeout=10)
    try:
        deadline = time.monotonic() + limit_s
        t0: float | None = None
        done_at_t0 = 0
        last = 0.0
        while True:
            if task.done():
                task.result()
                raise BenchError("the projector stopped before reaching the end of the topics")
            if time.monotonic() > deadline:
                raise BenchError(f"projector did not reach the end of the topics in {limit_s:.0f}s")
            done = int(await conn.fetchval(
                "SELECT coalesce(sum(next_offset), 0) FROM consumer_offsets WHERE group_id = $1", group))
            now = time.perf_counter()
            if t0 is None and done > 0:
                t0, done_at_t0 = now, done
            if done >= total:
                break
            if now - last > 2:
                progress(f"  ... projector at {done:,} / {total:,} records")
                last = now
            await asyncio.sleep(POLL_S)
        assert t0 is not None
        seconds = now - t0
        stop.set()
        await asyncio.wait_for(task, timeout=60)
        tables = await _tables(conn)
        contents = {t: await conn.fetch(f'SELECT {await _columns(conn, t)} FROM "{t}"') for t in tables}
        rows = sum(len(v) for v in contents.values())
        share = (total - done_at_t0) / total
        rate = rows * share / seconds if seconds > 0 else 0.0
        # baseline: the same final rows, COPY-ed into the same (emptied) tables in one transaction
        await conn.execute("TRUNCATE " + ", ".join(f'"{t}"' for t in tables) + " CASCADE")
        c0 = time.perf_counter()
        async with conn.transaction():
            for t, recs in contents.items():
                if recs:
                    await conn.copy_records_to_table(t, records=[tuple(r.values()) for r in recs],
                                                     columns=list(recs[0].keys()))
        copy_s = time.perf_counter() - c0
        copied = sum([int(await conn.fetchval(f'SELECT count(*) FROM "{t}"')) for t in tables])
        if copied != rows:
            raise BenchError(f"COPY baseline wrote {copied} rows, expected {rows}")
        # the write path alone: the same records planned beforehand, then only apply_plan on the clock
        await conn.execute("TRUNCATE " + ", ".join(f'"{t}"' for t in tables) + " CASCADE")
        write_s = await _write_path(dsn, f"{group}-write", offline_batches(items, suffix, config.batch_size),
                                    projector.kinds)
        written = sum([int(await conn.fetchval(f'SELECT count(*) FROM "{t}"')) for t in tables])
        if written != rows:
            raise BenchError(f"the write-path baseline wrote {written} rows, the projector {rows}")
        progress(f"  write path alone (apply_plan of pre-planned batches): {write_s:.2f}s ({rows / write_s:,.0f} "
                 "rows/s)")
        per_table = {t: len(v) for t, v in contents.items()}
        progress(f"  projector: {total:,} records -> {rows:,} rows in {seconds:.2f}s ({rate:,.0f} rows/s, "
                 f"{projector.batches} batches); COPY of the same rows {copy_s:.2f}s ({rows / copy_s:,.0f} rows/s)")
        return ProjectorResult(rate, rows / copy_s, rows / write_s, {
            "records": total, "rows": rows, "rows_per_table": per_table, "seconds": round(seconds, 3),
            "copy_seconds": round(copy_s, 3), "write_path_seconds": round(write_s, 3),
            "batches": projector.batches, "batch_size": config.batch_size,
            "topics": "alliance.events.* (aggregated topics not included)", "database": "fsync=off (local)"})
    finally:
        stop.set()
        if not task.done():
            task.cancel()
        await conn.close()


def measure(svc: Services, items: Sequence[Item], progress: Progress = print,
            limit_s: float = 600.0) -> ProjectorResult:
    suffix = svc.suffix("proj")
    try:
        provision_run(svc, suffix)
        records = canonical(items)
        kafka_io.load(svc.kafka, records, suffix)
        progress(f"  loaded {len(records):,} canonical events into alliance.events.*{suffix}")
        return asyncio.run(_run(svc, suffix, records, progress, limit_s))
    finally:
        drop_topics(svc, "proj", progress)


# --- the write path as history grows ------------------------------------------------------------------------------

@dataclass(frozen=True)
class HistoryDay:
    day: int  # 1-based: the tables held day - 1 days before it
    records: int
    seconds: float  # apply_plan of the day's batches (planned beforehand, off the clock)

    @property
    def records_per_s(self) -> float:
        return self.records / self.seconds if self.seconds > 0 else 0.0


async def _history(server_dsn: str, database: str, days: int, day_items: Callable[[int], Sequence[Item]],
                   batch_size: int, progress: Progress, keep_database: bool) -> list[HistoryDay]:
    from consumers.mapping import TopicKind
    from consumers.migrate import migrate

    dsn = await _new_database(server_dsn, database)
    await migrate(dsn)
    kinds = {family_topic(f): TopicKind.EVENTS for f in Family}
    conn = await asyncpg.connect(dsn, timeout=10)
    out: list[HistoryDay] = []
    logged = 0
    try:
        for day in range(1, days + 1):
            records = canonical(day_items(day - 1))
            seconds = await _write_path(dsn, "bench-history", offline_batches(records, "", batch_size), kinds)
            out.append(HistoryDay(day, len(records), seconds))
            logged += len(records)
            # the independent count: every canonical event of every day is logged once (no id repeats across days)
            in_log = int(await conn.fetchval("SELECT count(*) FROM event_log"))
            if in_log != logged:
                raise BenchError(f"after day {day} event_log holds {in_log:,} events, {logged:,} were applied")
            progress(f"  day {day}: {len(records):,} records in {out[-1].seconds:.2f}s "
                     f"({out[-1].records_per_s:,.0f} records/s; {in_log:,} events in the log)")
    finally:
        await conn.close()
        if not keep_database:
            await _on_server(server_dsn, f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
    return out


def history(server_dsn: str, database: str, days: int, day_items: Callable[[int], Sequence[Item]],
            batch_size: int | None = None, progress: Progress = print, keep_database: bool = False
            ) -> list[HistoryDay]:
    """The projector's write path (``apply_plan`` of pre-planned batches, one connection, no Kafka) applying
    ``days`` simulated days one after the other into ``database``, created on ``server_dsn``'s server for it
    and dropped at the end (unless ``keep_database``: the caller reads it): the seconds of each day, so that the
    last day (its tables holding every earlier day) compares with the first. Each day's events are new
    (``day_items(i)``: day i, 0-based); batches of the projector's own size by default. Checks after each day
    that event_log holds every event applied."""
    from consumers.projector import ProjectorConfig

    return asyncio.run(_history(server_dsn, database, days, day_items, batch_size or ProjectorConfig.batch_size,
                                progress, keep_database))
