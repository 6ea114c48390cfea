"""The effectively-once projector: canonical and aggregated topics -> the PostgreSQL read model.

Per batch (``getmany``: at most ``batch_size`` records or ``batch_timeout_ms``): decode and map (pure,
``consumers.mapping``), then ONE transaction writes the rows, the rejects and the next offsets
(``consumers.store``). The next batch is fetched and mapped while the database writes the current one;
transactions still commit one at a time, in fetch order. Positions live in ``consumer_offsets``, not in
Kafka: the projector assigns itself every partition of its topics (no Kafka group membership, so no
rebalance can race with a seek) and seeks each one to the stored offset before the first fetch. Run one
process per group; a second group (own offsets, same tables) is a parallel replay. A crash between batches
or mid-transaction replays at most the uncommitted batch, and every write is idempotent, so nothing is
lost or doubled.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass

import asyncpg
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.structs import ConsumerRecord, TopicPartition
from prometheus_client import CollectorRegistry

from consumers.errors import ConsumerError, ProjectionError
from consumers.mapping import Plan, TopicKind, plan_batch
from consumers.metrics import ProjectorMetrics
from consumers.store import apply_plan, erased_markers, prepare_connection, stored_offsets
from core.kafka_access import KafkaAccess
from core.metrics import serve
from events.topics import AGGREGATES, EVENT_PARTITIONS, Family, agg_topic, family_topic

log = logging.getLogger("consumers.projector")

DEFAULT_GROUP = "alliance-read-model"
# Errors after which the same batch is retried (connection lost, server restarting, conflicts).
TRANSIENT = (
    OSError, asyncio.TimeoutError, asyncpg.InterfaceError, asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError, asyncpg.AdminShutdownError, asyncpg.CrashShutdownError,
    asyncpg.TooManyConnectionsError, asyncpg.SerializationError, asyncpg.DeadlockDetectedError,
    # a connection terminated in the middle of an operation can leave asyncpg's protocol in a broken state
    # ("cannot switch to state ..."): the pool is rebuilt, like for any lost connection
    asyncpg.InternalClientError,
)


@dataclass(frozen=True)
class ProjectorConfig:
    kafka: KafkaAccess  # the projector's principal: reads the canonical and aggregated topics
    dsn: str
    group: str = DEFAULT_GROUP
    event_topics: tuple[str, ...] = tuple(family_topic(f) for f in Family)
    agg_topics: tuple[str, ...] = tuple(agg_topic(n) for n in AGGREGATES)
    batch_size: int = 5000
    batch_timeout_ms: int = 500
    pause_ms: int = 0  # rest between batches (limits the load on a shared database)
    metrics_host: str = "0.0.0.0"
    metrics_port: int = 0  # 0 = no HTTP endpoint
    max_backoff_s: float = 30.0
    max_attempts: int = 5  # for non-transient database errors; transient ones retry until stopped

    def kinds(self) -> dict[str, TopicKind]:
        kinds = {t: TopicKind.EVENTS for t in self.event_topics}
        kinds.update({t: TopicKind.AGG for t in self.agg_topics})
        return kinds


class Projector:
    def __init__(self, config: ProjectorConfig, registry: CollectorRegistry | None = None) -> None:
        self.config = config
        self.metrics = ProjectorMetrics(registry)
        self.kinds = config.kinds()
        self.positions: dict[tuple[str, int], int] = {}  # next offsets as stored in the database
        self.batches = 0
        self._pool: asyncpg.Pool | None = None
        self._consumer: AIOKafkaConsumer | None = None
        self._db_ok = False
        self._stop: asyncio.Event | None = None
        self.dropped = 0  # records fetched below the stored offset (never applied twice)
        # erasures applied so far, (seeker digest, family, partition): read at assignment, then kept up to date
        # by plan_batch (a failed transaction stops the projector, and the restart reads them again)
        self.erased: set[tuple[str, str, int]] = set()
        self.event_partitions = EVENT_PARTITIONS  # of each canonical topic, as described at assignment

    # --- database --------------------------------------------------------------------------------------
    async def _pool_ready(self) -> asyncpg.Pool:
        if self._pool is None:
            self._pool = await asyncpg.create_pool(self.config.dsn, min_size=1, max_size=2,
                                                   init=prepare_connection, timeout=10)
        return self._pool

    async def _with_db_retry(self, what: str, stop: asyncio.Event | None, op: object) -> object:
        """Run ``op(conn)`` until it succeeds: transient errors retry with capped exponential backoff
        until ``stop``; other database errors retry ``max_attempts`` times, then raise ProjectionError."""
        delay, attempts = 0.2, 0
        while True:
            try:
                pool = await self._pool_ready()
                async with pool.acquire(timeout=10) as conn:
                    result = await op(conn)  # type: ignore[operator]
                self._db_ok = True
                return result
            except TRANSIENT as exc:
                self._db_ok = False
                self.metrics.errors_total.labels(kind="connect" if self._pool is None else "db").inc()
                log.warning("%s: database unavailable (%s: %s); retrying in %.1fs", what,
                            type(exc).__name__, exc, delay)
                conflict = isinstance(exc, asyncpg.SerializationError | asyncpg.DeadlockDetectedError)
                if self._pool is not None and not conflict:  # reconnect from scratch
                    self._pool.terminate()
                    self._pool = None
            except asyncpg.PostgresError as exc:
                attempts += 1
                self.metrics.errors_total.labels(kind="db").inc()
                if attempts >= self.config.max_attempts:
                    self.metrics.errors_total.labels(kind="fatal").inc()
                    raise ProjectionError(f"{what} failed {attempts} times, last: {type(exc).__name__}: "
                                          f"{exc}; nothing was committed for it") from exc
                log.error("%s failed (%s: %s), attempt %d/%d; rolled back, retrying in %.1fs", what,
                          type(exc).__name__, exc, attempts, self.config.max_attempts, delay)
            if stop is not None and stop.is_set():
                raise ProjectionError(f"stopped while retrying {what}; its batch was not committed")
            try:
                await asyncio.wait_for(stop.wait() if stop else asyncio.sleep(delay), timeout=delay)
            except TimeoutError:
                pass
            delay = min(delay * 2, self.config.max_backoff_s)

    async def seek_to_stored(self, partitions: list[TopicPartition]) -> None:
        async def read(conn: asyncpg.Connection) -> dict[tuple[str, int], int]:
            return await stored_offsets(conn, self.config.group, [(tp.topic, tp.partition) for tp in partitions])

        stored = await self._with_db_retry("reading stored offsets", self._stop, read)
        assert isinstance(stored, dict) and self._consumer is not None
        for tp in partitions:
            offset = stored.get((tp.topic, tp.partition))
            if offset is None:
                await self._consumer.seek_to_beginning(tp)
                self.positions[(tp.topic, tp.partition)] = 0
            else:
                self._consumer.seek(tp, offset)
                self.positions[(tp.topic, tp.partition)] = offset
        log.info("assigned %d partitions, resuming from stored offsets %s", len(partitions),
                 {f"{tp.topic}[{tp.partition}]": self.positions[(tp.topic, tp.partition)] for tp in partitions})

    # --- the loop --------------------------------------------------------------------------------------
    def ready(self) -> bool:
        return self._db_ok and self._consumer is not None and bool(self._consumer.assignment())

    async def apply(self, plan: Plan, stop: asyncio.Event | None = None) -> None:
        async def write(conn: asyncpg.Connection) -> object:
            return await apply_plan(conn, self.config.group, plan, self.event_partitions)

        started = time.perf_counter()
        written = await self._with_db_retry(f"batch of {plan.records} records", stop, write)
        elapsed = time.perf_counter() - started
        m = self.metrics
        m.batch_rows.observe(plan.records)
        m.batch_seconds.observe(elapsed)
        m.last_batch.set(time.time())
        assert isinstance(written, dict)
        for table, n in written.items():
            m.rows_total.labels(table=table).inc(n)
        for family, n in plan.families.items():
            m.events_total.labels(family=family).inc(n)
        if plan.erasures or plan.erased_skipped:  # counts only: a pseudonym is never logged
            log.info("erasures applied: %d; events naming an erased seeker not projected: %d",
                     len(plan.erasures), plan.erased_skipped)
        if plan.revisions:
            log.info("revisions applied: %d; refused like the worker refused them: %d", written.get("revisions", 0),
                     written.get("revisions_refused", 0))
        if plan.rejects:
            m.errors_total.labels(kind="reject").inc(len(plan.rejects))
            for r in plan.rejects:
                log.warning("rejected %s[%d]@%d: %s", r.topic, r.partition, r.offset, r.reason)
        for tp, offset in plan.offsets.items():
            self.positions[tp] = max(self.positions.get(tp, 0), offset)
        self.batches += 1

    def _update_lag(self) -> None:
        consumer = self._consumer
        if consumer is None:
            return
        for tp in consumer.assignment():
            high = consumer.highwater(tp)
            pos = self.positions.get((tp.topic, tp.partition))
            if high is not None and pos is not None:
                self.metrics.lag.labels(group=self.config.group, topic=tp.topic,
                                        partition=str(tp.partition)).set(max(high - pos, 0))

    async def _partitions(self) -> list[TopicPartition]:
        admin = AIOKafkaAdminClient(**self.config.kafka.aiokafka(),
                                    client_id=f"projector-{self.config.group}")
        await admin.start()
        try:
            described = await admin.describe_topics(sorted(self.kinds))
        finally:
            await admin.close()
        missing = sorted(t["topic"] for t in described if t.get("error_code") or not t.get("partitions"))
        if missing:
            raise ConsumerError(f"topics do not exist: {', '.join(missing)} (provision them: python -m infra "
                                "provision; the broker does not auto-create topics)")
        return sorted((TopicPartition(t["topic"], p["partition"]) for t in described for p in t["partitions"]),
                      key=lambda tp: (tp.topic, tp.partition))

    async def _assign(self, consumer: AIOKafkaConsumer) -> None:
        tps = await self._partitions()
        events = [tp for tp in tps if self.kinds.get(tp.topic) is TopicKind.EVENTS]
        if events:
            self.event_partitions = 1 + max(tp.partition for tp in events)
        markers = await self._with_db_retry("reading erasure markers", self._stop, erased_markers)
        assert isinstance(markers, set)
        self.erased = markers
        consumer.assign(tps)
        await self.seek_to_stored(tps)

    def _fresh(self, fetched: dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]]
               ) -> list[ConsumerRecord[bytes, bytes]]:
        """Records at or after the stored position (a stale fetch below it is dropped, not re-applied)."""
        out = []
        for tp, recs in fetched.items():
            start = self.positions.get((tp.topic, tp.partition), 0)
            keep = [r for r in recs if r.offset >= start]
            self.dropped += len(recs) - len(keep)
            out += keep
        return out

    async def run(self, stop: asyncio.Event) -> None:
        """Project until ``stop`` is set; the batch in progress is finished first."""
        cfg = self.config
        self._stop = stop
        runner = None
        if cfg.metrics_port:
            runner = await serve(self.metrics.registry, cfg.metrics_port, ready=self.ready, host=cfg.metrics_host)
        self._consumer = consumer = AIOKafkaConsumer(
            **cfg.kafka.aiokafka(), group_id=None, enable_auto_commit=False,
            auto_offset_reset="earliest", client_id=f"projector-{cfg.group}")
        try:
            await consumer.start()
            await self._assign(consumer)
            writing: asyncio.Task[None] | None = None  # the previous batch's transaction
            try:
                while not stop.is_set():
                    # fetched and planned while the database writes the previous batch; the mapping runs in
                    # a thread so that the event loop keeps sending that batch's statements meanwhile
                    fetched = await consumer.getmany(timeout_ms=cfg.batch_timeout_ms, max_records=cfg.batch_size)
                    records = self._fresh(fetched)
                    plan = (await asyncio.to_thread(plan_batch, records, self.kinds, self.erased)
                            if records else None)
                    if writing is not None:
                        await writing  # batches commit in order: one transaction at a time
                        writing = None
                        self._update_lag()
                    if plan is None:
                        self._update_lag()
                        continue
                    log.debug("batch: %s", {f"{tp.topic}[{tp.partition}]": (recs[0].offset, recs[-1].offset)
                                            for tp, recs in fetched.items()})
                    writing = asyncio.create_task(self.apply(plan, stop))
                    if cfg.pause_ms:
                        await writing
                        writing = None
                        try:
                            await asyncio.wait_for(stop.wait(), timeout=cfg.pause_ms / 1000)
                        except TimeoutError:
                            pass
                if writing is not None:  # stopping: the batch in progress is finished first
                    await writing
            finally:
                if writing is not None and not writing.done():
                    writing.cancel()
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await writing
        finally:
            await consumer.stop()
            self._consumer = None
            if self._pool is not None:
                await self._pool.close()
                self._pool = None
            if runner is not None:
                await runner.cleanup()
