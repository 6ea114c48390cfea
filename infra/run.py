"""The main job (``make run`` = ``python -m infra run``): the whole backbone on one machine.

1. local Kafka (KRaft) and PostgreSQL (unless ALLIANCE_* point at existing servers; --fresh resets local state)
2. topics from the registry, read-model migrations
3. Faust worker(s) and the PostgreSQL projector, as separate processes (logs in .local/logs/)
4. a realistic alliance day from the simulator (all universities and families, with duplicates,
   out-of-order and bad records), published to the ingest topics with progress output
5. waits until the workers have processed it and the projector has caught up, then prints what the
   portals see (read-model queries), the rejects by reason, and where to look (views, metrics)
6. stops everything cleanly (workers, projector, then broker and database unless --keep)
"""

from __future__ import annotations

import asyncio
import os
import random
import secrets
import shutil
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from pydantic import SecretStr

from core.db_access import OWNER, READER
from core.kafka_access import ADMIN
from core.settings import Settings
from core.topic_admin import provision_deployment
from infra.errors import InfraError
from infra.kafka_local import LocalKafkaCluster
from infra.local import LocalStack
from infra.processes import Service, free_port, freshness, label, metric_sum, projector, wait_until, worker


def _progress(done: int, total: int) -> None:
    width = 30
    filled = width * done // max(total, 1)
    end = "\n" if done >= total else ""
    line = f"[run] publishing [{'=' * filled}{' ' * (width - filled)}] {done}/{total}"
    if sys.stderr.isatty():
        print(f"\r{line}", end=end, file=sys.stderr, flush=True)
    elif done >= total or done % 5000 == 0:
        print(line, file=sys.stderr, flush=True)


def _wait(what: str, check: Callable[[], tuple[bool, str]], timeout: float, services: list[Service]) -> None:
    """Wait for ``what`` with a progress line per change; a child that exits ends the wait with its log."""
    def progress() -> tuple[bool, str]:
        for s in services:
            if not s.alive():
                raise InfraError(f"{s.name} exited; see {s.log}:\n{s.log_tail(20)}")
        return check()

    wait_until(progress, timeout, what, interval=1.0,
               report=lambda status: print(f"[run] {what}: {status}", flush=True))


async def _projector_position(settings: Settings) -> int:
    import asyncpg

    conn = await asyncpg.connect(settings.dsn_for(READER))
    try:
        return int(await conn.fetchval("SELECT coalesce(sum(next_offset), 0) FROM portal.projector_positions") or 0)
    finally:
        await conn.close()


def _end_offsets(settings: Settings, topics: list[str]) -> int:
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(**settings.kafka(ADMIN).kafka_python())
    try:
        tps = [TopicPartition(t, p) for t in topics for p in (consumer.partitions_for_topic(t) or ())]
        return int(sum(consumer.end_offsets(tps).values()))
    finally:
        consumer.close()


async def _report(settings: Settings) -> None:
    import asyncpg

    from consumers.queries import format_table, run_query

    conn = await asyncpg.connect(settings.dsn_for(READER))  # as a portal would read it
    try:
        for name, limit in (("open-postings", 8), ("fairs", 5), ("mentors", 6), ("service-guarantee", 10),
                            ("talent-flow", 10)):
            rows = await run_query(conn, name, limit=limit)
            print(f"\n== {name} (read model, first {limit}) ==\n{format_table(rows)}")
        rejects = await conn.fetch("SELECT topic, sum(records) AS n FROM portal.projector_rejects GROUP BY topic "
                                   "ORDER BY topic")
        print("\n== records the projector could not store (projector_rejects) ==\n"
              + ("\n".join(f"  {r['topic']:40} {r['n']}" for r in rejects) or "  none"))
    finally:
        await conn.close()


def token_file(settings: Settings) -> Path:
    return settings.local_dir / "http-token"


def with_http_token(settings: Settings) -> Settings:
    """``settings`` with ALLIANCE_HTTP_TOKEN, generated once for the local stack when it is not set (kept in
    ``<local_dir>/http-token``, mode 0600, never printed)."""
    if settings.http_token is not None:
        return settings
    path = token_file(settings)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_urlsafe(32))
    return settings.model_copy(update={"http_token": SecretStr(path.read_text().strip())})


def run_main_job(settings: Settings, *, events: int = 20000, duration: float = 0.0, keep: bool = False,
                 workers: int = 1, fresh: bool = True, seed: int | None = None) -> int:
    from consumers.migrate import migrate
    from events.simulator import alliance_day
    from events.simulator.publish import publish
    from events.topics import AGGREGATES, Family, agg_topic, family_topic

    settings = with_http_token(settings)
    stack = LocalStack(settings)
    if fresh:
        stack.down()
        for svc in (stack.kafka, stack.postgres):
            if isinstance(svc, LocalKafkaCluster):
                for node in svc.nodes:  # every node's log; the cluster keeps its id
                    shutil.rmtree(node.home / "data", ignore_errors=True)
            elif svc is not None:
                shutil.rmtree(svc.home / "data", ignore_errors=True)
        if stack.kafka is not None:  # the workers' tables mirror changelogs of the Kafka just wiped
            shutil.rmtree(settings.tables_dir, ignore_errors=True)
    log_dir = settings.local_dir / "logs"
    services: list[Service] = []
    started = time.monotonic()
    try:
        stack.up()
        report = provision_deployment(settings)
        print(f"[run] topics: {len(report.created)} created, {len(report.existing)} already present", flush=True)
        applied = asyncio.run(migrate(settings.dsn_for(OWNER)))
        print(f"[run] migrations: {len(applied)} applied", flush=True)

        workers_ = [worker(i, settings, log_dir) for i in range(workers)]
        proj = projector(settings, log_dir, free_port() if settings.metrics_port == 0 else settings.metrics_port + 1)
        services = [*workers_, proj]
        for s in services:
            s.start(settings)
        for s in services:
            s.wait_ready(timeout=120)
        print("[run] workers and projector ready", flush=True)

        seed = random.randrange(1_000_000) if seed is None else seed
        records = alliance_day(seed=seed, scale=events / 20000, revision_rate=0.01)
        kinds = Counter(r.kind for r in records)
        revisions = Counter(r.event.type.split(".")[1] for r in records
                            if r.kind == "valid" and r.event is not None and r.event.family == "corrections")
        print(f"[run] alliance day (seed {seed}): {len(records)} records "
              + ", ".join(f"{k} {n}" for k, n in sorted(kinds.items()))
              + f" (valid: {revisions['event_retracted']} retractions, {revisions['event_corrected']} corrections)",
              flush=True)
        t0 = time.monotonic()
        publish(records, settings.kafka, progress=_progress)  # each university as itself
        published_s = time.monotonic() - t0
        accepted = kinds["valid"]

        def streams_done() -> tuple[bool, str]:
            f = freshness(workers_)
            applied = freshness(workers_, "events_applied").get("tables", 0)  # replays are not progress
            return (f.get("ingest", 0) >= len(records) and applied >= accepted,
                    f"ingest read {f.get('ingest', 0)}/{len(records)} records (re-reads after a rebalance "
                    f"included), tables applied {applied}/{accepted} events")

        _wait("stream processing", streams_done, 600, services)
        processed_s = time.monotonic() - t0
        projected = [settings.topic(family_topic(f)) for f in Family] + \
                    [settings.topic(agg_topic(n)) for n in AGGREGATES]

        def projector_done() -> tuple[bool, str]:
            end = _end_offsets(settings, projected)
            pos = asyncio.run(_projector_position(settings))
            return pos >= end, f"stored offsets {pos}/{end}"

        _wait("read model", projector_done, 600, services)
        print(f"[run] {len(records)} records published in {published_s:.1f}s, processed in {processed_s:.1f}s, "
              f"read model caught up after {time.monotonic() - t0:.1f}s", flush=True)

        asyncio.run(_report(settings))
        by_reason: Counter[str] = Counter()
        for worker_svc in workers_:
            for labels, value in metric_sum(worker_svc, "alliance_events_rejected_total").items():
                by_reason[label(labels, "reason")] += int(value)
        if by_reason:
            print("\n== rejected to alliance.dlq by reason ==\n" +
                  "\n".join(f"  {r:15} {n}" for r, n in sorted(by_reason.items()) if n))
        web = workers_[0].port
        print(f"\n[run] worker views: http://127.0.0.1:{web}/aggregates/postings-by-segment/ (header "
              f"'Authorization: Bearer <token>', the token is in {token_file(settings)})  /freshness/  /metrics"
              f"\n[run] projector metrics: http://127.0.0.1:{proj.port}/metrics"
              f"\n[run] portal queries: .venv/bin/python -m consumers query open-postings --university scu")
        if duration > 0:
            print(f"[run] keeping the stack up for {duration:.0f}s (Ctrl-C to stop)", flush=True)
            time.sleep(duration)
        return 0
    finally:
        for s in reversed(services):
            code = s.stop()
            print(f"[run] {s.name} stopped (exit {code})", flush=True)
        if not keep:
            stack.down()
        print(f"[run] done in {time.monotonic() - started:.0f}s", flush=True)
