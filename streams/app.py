"""The Faust application factory. Nothing happens at import time: ``create_app(settings)`` builds it.

Agents (explicitly named):
  ingest   alliance.ingest.*  -> validate, dedupe (table ingest-seen), spoofing check
                               -> alliance.events.<family> | alliance.dlq (x-alliance-reject-* headers)
  tables   alliance.events.*  -> entity state tables, per-partition partial aggregates (table partials)
                               -> alliance.agg.<per-entity aggregates> and alliance.internal.partials
  rollup   alliance.internal.partials -> table rollups -> alliance.agg.<rollup aggregates>
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn, Protocol, cast

import faust
from faust.types import Message
from prometheus_client import CollectorRegistry

from core.kafka_access import MECHANISM, STREAMS, KafkaAccess
from core.runtime import trim_memory
from core.settings import Settings
from events.reference import UNIVERSITIES
from events.topics import (
    DLQ_TOPIC,
    PARTIALS_TOPIC,
    Family,
    TopicSpec,
    family_topic,
    ingest_topic,
)
from streams.consumer import GaplessConsumer
from streams.consumer import install as install_gapless_consumer
from streams.domains import domains
from streams.fence import MembershipFence
from streams.inbox import Inbox
from streams.lag import LagReporter, StallGuard
from streams.pipeline import NOTHING_PENDING, Pending, Pipeline
from streams.sensors import batch_in, batch_out
from streams.store import URL as STORE_URL
from streams.store import changelog_configs, store_options
from streams.store import register as register_store
from streams.writer import BatchWriter

log = logging.getLogger("streams.app")

# records per agent batch at most: fewer flushes, record batches and produce requests per event the larger it is
# (2,000 against 1,000: 4 % less CPU per event in two interleaved runs of 6 rounds, docs/benchmarks.md); a batch
# of 2,000 simulator events writes at most ~860 KiB to one changelog partition, one over SPLIT_BYTES is
# processed in parts (streams.writer)
BATCH_SIZE = 2000
# seconds a batch waits, from its first record, to fill up. While an agent's flush waits for the broker, its
# inbox fills anyway, so batches grow with the load; a longer wait only adds latency at every stage (at 20 %
# load: p99 0.38-0.80 s with 50 ms, 0.20-0.23 s with 10 ms; docs/benchmarks.md)
BATCH_WITHIN = 0.01
LAG_INTERVAL_S = 2.0  # consumer lag report, partition starts and stall check
TRIM_INTERVAL_S = 60.0  # the allocator's free pages returned to the OS (core.runtime.trim_memory)
LAG_TICK_TIMEOUT_S = 30.0  # one tick of it at most


def broker_url(bootstrap: str) -> str:
    return ";".join(f"kafka://{hp.strip()}" for hp in bootstrap.split(",") if hp.strip())


def heartbeat_interval(settings: Settings) -> float:
    return min(3.0, settings.session_timeout_seconds / 5)


def broker_credentials(kafka: KafkaAccess) -> faust.SASLCredentials | None:
    """faust's form of the worker's Kafka credentials (None: the cluster does not authenticate)."""
    if kafka.username is None or kafka.password is None:
        return None
    return faust.SASLCredentials(username=kafka.username, password=kafka.password.get_secret_value(),
                                 mechanism=MECHANISM, ssl_context=kafka.ssl_context())


def worker_datadir(settings: Settings, *, app_id: str | None = None, web_port: int | None = None) -> Path:
    """Where a worker keeps its tables (streams.store): one directory per worker identity, so that two
    workers of a host never share (RocksDB locks a database) and a restarted worker finds its own."""
    port = web_port or settings.web_port
    worker = f"{settings.group_instance_id}-{port}" if settings.group_instance_id else f"port-{port}"
    return settings.tables_dir / (app_id or settings.app_id) / worker


def faust_config(settings: Settings, *, app_id: str | None = None, web_port: int | None = None) -> dict[str, Any]:
    """The ``faust.App`` arguments of a worker (also used by the benchmark's no-op agent)."""
    datadir = worker_datadir(settings, app_id=app_id, web_port=web_port)
    datadir.parent.mkdir(parents=True, exist_ok=True)  # faust creates only the last level
    register_store()
    kafka = settings.kafka(STREAMS)
    return dict(
        id=app_id or settings.app_id,
        broker=broker_url(kafka.bootstrap),
        broker_credentials=broker_credentials(kafka),
        store=STORE_URL if settings.table_store == "rocksdb" else "memory://",
        datadir=str(datadir),
        topic_replication_factor=settings.replication_factor,
        topic_allow_declare=True,  # only faust's own changelog topics; ours come from the registry
        producer_acks=-1,
        consumer_auto_offset_reset="earliest",
        # static membership: a restarted worker takes its partitions back without a rebalance. faust keeps
        # the worker's URL in the assignment and refuses one made for another URL, so the web port is part
        # of the identity (a worker restarted on another port joins as a new member)
        consumer_group_instance_id=(f"{settings.group_instance_id}-{web_port or settings.web_port}"
                                    if settings.group_instance_id else None),
        broker_session_timeout=settings.session_timeout_seconds,
        broker_heartbeat_interval=heartbeat_interval(settings),
        web_enabled=web_port is not None,
        web_port=web_port or settings.web_port,
        web_bind=settings.http_bind,
        # faust's own endpoints would list the assignment (/router/) and every table's keys (/table/):
        # off. The /entities/ view routes to the owning worker without them.
        web_router_enabled=False,
        web_tables_enabled=False,
        web_graph_enabled=False,
        web_stats_enabled=False,
        web_metrics_enabled=False,
        web_in_thread=False,
        # large fetches (the agents take batches of up to 1,000 events from their inboxes, streams.inbox); the
        # stream buffer is faust's own channel queues (the agents' records never go through them)
        stream_buffer_maxsize=65536,
        broker_max_poll_records=10_000,
        consumer_max_fetch_size=8 * 1024 * 1024,
        broker_commit_every=10_000,
        broker_commit_interval=1.0,
        producer_linger_ms=5,  # faust's own sends; the writer closes its batches, which then do not linger
        producer_max_batch_size=512 * 1024,
        table_cleanup_interval=60.0,
        # No standby replicas: with them, two workers starting on a backlog stopped processing after the
        # first rebalance (reproduced with 20,000 records; see docs/streams.md). A partition that moves is
        # recovered from its changelog instead (from the store's persisted offset on, streams.store).
        table_standby_replicas=0,
    )


EXIT_BATCH_FAILED = 70  # EX_SOFTWARE: a batch failed; nothing of it was committed


def stop_without_committing(agent: str, batch: Sequence[Message]) -> NoReturn:
    """A batch failed although every record that cannot be processed goes to the DLQ (the broker refused
    a write, a bug): end the process at once, before faust's commit loop can run, so nothing of the batch
    is committed. The supervisor restarts the worker, which resumes from the committed offsets."""
    first = batch[0] if batch else None
    where = f"{first.topic}[{first.partition}]@{first.offset}" if first is not None else "?"
    log.critical("%s batch of %d records from %s failed; stopping without committing", agent, len(batch), where,
                 exc_info=True)
    logging.shutdown()
    os._exit(EXIT_BATCH_FAILED)


def changelog_specs(app: faust.App) -> list[TopicSpec]:
    """The changelog topic of every table of ``app``, as faust names and configures it (compacted, the
    table's partitions, its ``extra_topic_configs``)."""
    specs = []
    for table in app.tables.values():
        topic = table.changelog_topic
        specs.append(TopicSpec(topic.get_topic_name(), topic.partitions or app.conf.topic_partitions,
                               compacted=True, extra_config=dict(topic.config or {}),
                               description=f"changelog of the {table.name} table (faust)"))
    return specs


def raw_topic(app: faust.App, *names: str) -> faust.TopicT:
    return app.topic(*names, key_serializer="raw", value_serializer="raw")


def agent_inbox(name: str, topics: Iterable[str], size: int = BATCH_SIZE, within: float = BATCH_WITHIN) -> Inbox:
    """An agent's inbox as the worker sizes it: batches of up to ``size`` records, at most ten batches (and
    :data:`streams.inbox.MAX_BYTES`) held before the fetch loop waits for the agent."""
    return Inbox(name, topics, size=size, within=within, capacity=10 * size)


class Staged(Protocol):
    """An agent whose batch runs in two phases (streams.pipeline.AgentSteps): ``compute`` awaits nothing;
    ``launch`` stages what it computed and returns what completes the batch, with the entries the next
    batch must read through until then (None: compute the next batch only after it completed)."""

    def compute(self, batch: Sequence[Message], pending: Pending) -> Any: ...
    def launch(self, batch: Sequence[Message], computed: Any) -> tuple[Awaitable[None], Pending | None]: ...


@dataclass(frozen=True)
class Sequential:
    """A plain batch handler as a :class:`Staged` agent: everything in ``launch``, nothing overlapped."""

    handle: Callable[[Sequence[Message]], Awaitable[None]]

    def compute(self, batch: Sequence[Message], pending: Pending) -> None:
        return None

    def launch(self, batch: Sequence[Message], computed: None) -> tuple[Awaitable[None], Pending | None]:
        return self.handle(batch), None


@dataclass
class _Flight:
    """A launched batch whose completion (its writes acknowledged) the serving loop has not awaited yet."""

    batch: Sequence[Message]
    task: asyncio.Future[None]
    pending: Pending | None
    generation: int
    time_in: float


SEND_TURNS = 4  # event-loop turns after a launch: the producer's sender takes them to put the requests on the wire


def serve_inbox(app: faust.App, inbox: Inbox,
                handle: Staged | Callable[[Sequence[Message]], Awaitable[None]]) -> None:
    """Subscribe ``app`` to ``inbox``'s topics and run ``handle`` on each batch taken from it (as an app task,
    started once the tables are recovered): records are acknowledged, so that they may be committed, only
    after the batch completed, i.e. after the broker acknowledged everything it wrote. A batch taken while a
    rebalance suspends the flow (or fetched in an earlier generation) is left unacknowledged: faust seeks the
    partitions back to their committed offsets after the rebalance. A batch that fails stops the worker
    without committing (:func:`stop_without_committing`).

    A :class:`Staged` agent computes its next batch while the broker acknowledges the previous one's writes
    (reading through their entries, which the store takes only after the acknowledgement): the next batch is
    staged and sent only after that acknowledgement, so a changelog record batch never lands on top of an
    earlier one that failed, and it is dropped unsent (read again after the rebalance) when a rebalance began
    meanwhile. With nothing taken to compute, a launched batch is completed and acknowledged first."""
    for topic in inbox.topics:
        app.topics.add(raw_topic(app, topic))  # subscribed by faust's conductor, acknowledged records commit
    steps = cast(Staged, handle) if hasattr(handle, "launch") else Sequential(cast(Any, handle))

    def moved(generation: int) -> bool:  # a rebalance began, or ended, since ``generation``
        return not app.flow_control.is_active() or app.consumer_generation_id != generation

    async def agent() -> None:
        flight: _Flight | None = None
        batch: Sequence[Message] = []

        async def land() -> None:
            nonlocal flight
            assert flight is not None
            try:
                await flight.task
            except Exception:
                stop_without_committing(inbox.name, flight.batch)  # (the batch whose writes failed)
            cast(GaplessConsumer, app.consumer).ack_batch(flight.batch)
            batch_out(app.monitor, flight.batch, flight.time_in)
            flight = None

        try:  # whatever fails here stops the worker: a dead agent would leave its inbox full and the fetch stuck
            while not app.should_stop:
                if flight is not None and (flight.pending is None or not len(inbox)):
                    await land()  # nothing to compute meanwhile (or no entries to read through): complete it
                batch = await inbox.take()
                if not batch:
                    continue  # cleared by a rebalance while it filled up
                generation = app.consumer_generation_id
                if moved(generation) or any(m.generation_id != generation for m in batch):
                    continue  # a rebalance began: these records are read again after it
                if flight is not None and flight.generation != generation:  # its entries may be of moved partitions
                    await land()
                    if moved(generation):
                        continue
                started = app.monitor.time()
                through = flight.pending if flight is not None else None  # (None: none, completed above)
                computed = steps.compute(batch, through or NOTHING_PENDING)
                if flight is not None:
                    await land()
                    if moved(generation):
                        continue  # computed from partitions that may have moved: read again after the rebalance
                cast(GaplessConsumer, app.consumer).track_batch(batch)
                batch_in(app.monitor, inbox.name, batch)
                completion, pending = steps.launch(batch, computed)
                flight = _Flight(batch, asyncio.ensure_future(completion), pending, generation, started)
                batch = []
                if pending is not None:
                    for _ in range(SEND_TURNS):
                        await asyncio.sleep(0)
            if flight is not None:
                await land()
        except Exception:  # (a failed completion stopped the worker in ``land``: this is the batch at hand)
            stop_without_committing(inbox.name, batch)

    agent.__name__ = f"{inbox.name}-agent"
    app.task(agent)


def create_app(
    settings: Settings,
    *,
    app_id: str | None = None,
    registry: CollectorRegistry | None = None,
    batch_size: int = BATCH_SIZE,
    batch_within: float = BATCH_WITHIN,
    web_port: int | None = None,
) -> faust.App:
    """Build the worker app (topic names get ``settings.topic_suffix``)."""
    n = settings.topic
    app = faust.App(**faust_config(settings, app_id=app_id, web_port=web_port))
    # a worker expelled from its group (frozen past the session timeout) must not write (streams.fence)
    fence = MembershipFence(settings.session_timeout_seconds, heartbeat_interval(settings))

    # the consumer hands each agent's records to its inbox; it commits only runs of acknowledged offsets (faust
    # would commit over records it dropped in a rebalance)
    topics_of = {"ingest": [n(ingest_topic(u)) for u in UNIVERSITIES],
                 "tables": [n(family_topic(f)) for f in Family], "rollup": [n(PARTIALS_TOPIC)]}
    inboxes = {agent: agent_inbox(agent, topics, batch_size, batch_within) for agent, topics in topics_of.items()}

    install_gapless_consumer(app, fence, list(inboxes.values()))

    # each table is co-partitioned with the topics its agent reads (same partition count, same worker)
    def table(name: str, partitions: int, horizon_s: int | None = None) -> Any:
        options = store_options(horizon_s) if settings.table_store == "rocksdb" else None
        return app.Table(name, partitions=partitions, default=None, options=options,
                         extra_topic_configs=changelog_configs(horizon_s))

    # event ids for the ingest's duplicate check: kept for the dedupe horizon, no longer (streams.store)
    seen = table("ingest-seen", settings.ingest_partitions, horizon_s=settings.dedupe_horizon_days * 86_400)
    # entity states, members, applied event ids and partial sums: one table, so one atomic changelog write
    # per partition and batch (streams.writer)
    states = table("entity-state", settings.event_partitions)
    rollups = table("rollups", settings.agg_partitions)

    # faust's producer wraps one aiokafka producer; the writer batches onto it (see streams.writer)
    def producer() -> Any:
        aiokafka_producer = app.producer._ensure_producer()  # type: ignore[attr-defined]
        fence.guard_producer(aiokafka_producer)  # idempotent
        return aiokafka_producer

    fence_wait_s = max(30.0, 2 * settings.session_timeout_seconds)
    writer = BatchWriter(producer, before_flush=lambda: fence.wait_writable(fence_wait_s))
    pipeline = Pipeline(
        seen=seen, states=states, rollups=rollups, domains=domains(),
        topic=n, dlq=n(DLQ_TOPIC), writer=writer, registry=registry, event_partitions=settings.event_partitions,
    )

    for agent_name, inbox in inboxes.items():
        serve_inbox(app, inbox, pipeline.steps(agent_name))

    # every 2 s: consumer lag per partition (a gauge when metrics are on) and the stall check on it
    lag = LagReporter(app, pipeline.metrics, settings.kafka(STREAMS), app.conf.id)
    agent_of = {topic: agent for agent, topics in topics_of.items() for topic in topics}

    def restart_worker(tp: object) -> None:  # graceful stop; the supervisor (compose: unless-stopped) restarts it
        os.kill(os.getpid(), signal.SIGTERM)

    guard = StallGuard(app, agent_of.get, pipeline.last_batch_at, pipeline.metrics, starts=lag.starts,
                       on_stuck=restart_worker)

    @app.timer(interval=LAG_INTERVAL_S, name="consumer-lag")  # type: ignore[untyped-decorator]
    async def report_lag() -> None:
        if guard.watch_rebalance():
            return
        async def tick() -> None:
            await guard.check(await lag.report())

        try:  # bounded: a request that never returns (a broker bounced) must not switch the guard off
            await asyncio.wait_for(tick(), timeout=LAG_TICK_TIMEOUT_S)
        except Exception:  # a monitoring tick must never stop the worker; the next one tries again
            log.exception("consumer lag report / stall check failed")

    @app.timer(interval=TRIM_INTERVAL_S, name="memory-trim")  # type: ignore[untyped-decorator]
    async def trim() -> None:  # free heap pages back to the OS (core.runtime)
        try:
            await asyncio.to_thread(trim_memory)
        except Exception:  # housekeeping must never stop the worker; the next tick tries again
            log.exception("returning freed memory to the OS failed")

    @app.on_before_shutdown.connect  # type: ignore[arg-type]  # mode types receivers narrower than it calls them
    async def close_lag_client(sender: object, *args: object, signal: object, **kwargs: object) -> None:
        await lag.close()

    from streams.views import register_views

    register_views(app, pipeline, settings.http_token)
    return app

