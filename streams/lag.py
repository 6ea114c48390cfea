"""Consumer lag of the worker's own partitions (alliance_consumer_lag_messages{group,topic,partition}),
and the guard that rewinds partitions faust stopped delivering.

Lag = the partition's end offset - the offset this worker has committed for it. A partition that stops
being consumed shows up as growing lag, which the alert rules watch.

:class:`StallGuard` handles what faust leaves behind after some rebalances (two workers on a backlog, about
one run in five here; docs/streams.md): records it fetched but dropped without seeking back, so they are
never delivered to the agent, and the committed offset stops short of them (faust would even commit over
them as a "gap"; :mod:`streams.consumer` stops that). A restart would heal it, since the worker resumes from
the committed offset; the guard does the same in-process: a partition with lag whose committed offset has
not moved for ``stall_s`` while its agent had no batch for ``stall_s`` (or for ``busy_stall_s`` while the
agent keeps working on other partitions) is sought back to its committed offset. Every step of the
pipeline is idempotent under such a replay (dedupe at ingest, applied event ids remembered whole, absolute
partials).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from core.kafka_access import KafkaAccess
from core.metrics import set_consumer_lag
from streams.metrics import PipelineMetrics

log = logging.getLogger("streams.lag")


def _first(*offsets: int | None) -> int:
    return next((o for o in offsets if o is not None), 0)


class LagReporter:
    def __init__(self, app: Any, metrics: PipelineMetrics | None, kafka: KafkaAccess, group: str) -> None:
        self.app, self.metrics, self.kafka, self.group = app, metrics, kafka, group
        self._client: AIOKafkaConsumer | None = None
        self._admin: AIOKafkaAdminClient | None = None

    async def _consumer(self) -> AIOKafkaConsumer:
        if self._client is None:
            self._client = AIOKafkaConsumer(**self.kafka.aiokafka(), enable_auto_commit=False)
            await self._client.start()
        return self._client

    async def starts(self, tps: list[Any]) -> dict[Any, int]:
        """Where the group's consumption of ``tps`` starts: its committed offset in Kafka, else the
        partition's first offset (for faust's partitions without a committed offset of its own)."""
        if self._admin is None:
            self._admin = AIOKafkaAdminClient(**self.kafka.aiokafka())
            await self._admin.start()
        try:
            stored = await self._admin.list_consumer_group_offsets(self.group, partitions=tps)
            firsts = await (await self._consumer()).beginning_offsets(tps)
        except KafkaError:
            return {}
        out: dict[Any, int] = {}
        for tp in tps:
            meta = stored.get(tp)
            out[tp] = meta.offset if meta is not None and meta.offset >= 0 else int(firsts[tp])
        return out

    async def report(self) -> dict[tuple[str, int], int]:
        consumer = self.app.consumer
        tps = [tp for tp in consumer.assignment()
               if not tp.topic.endswith("-changelog") and "__assignor" not in tp.topic]
        if not tps:
            self._publish({})
            return {}
        try:
            ends = await (await self._consumer()).end_offsets(tps)
        except KafkaError:
            return {}  # the next tick tries again; a stale gauge is better than a wrong one
        committed = consumer._committed_offset  # faust keeps the offsets it committed per partition
        starts = getattr(consumer, "start_offsets", {})  # streams.consumer.GaplessConsumer, before a commit
        lags = {(tp.topic, tp.partition): max(0, int(ends[tp]) - int(_first(committed.get(tp), starts.get(tp))))
                for tp in tps}
        self._publish(lags)
        return lags

    def _publish(self, lags: dict[tuple[str, int], int]) -> None:
        if self.metrics is not None:
            set_consumer_lag(self.metrics.consumer_lag, self.group, lags)

    async def close(self) -> None:
        if self._admin is not None:
            await self._admin.close()
            self._admin = None
        if self._client is not None:
            await self._client.stop()
            self._client = None


class StallGuard:
    def __init__(self, app: Any, agent_of: Callable[[str], str | None], last_batch_at: Mapping[str, float],
                 metrics: PipelineMetrics | None = None, stall_s: float = 6.0,
                 busy_stall_s: float = 30.0,
                 starts: Callable[[list[Any]], Awaitable[dict[Any, int]]] | None = None,
                 give_up_after: int = 3, on_stuck: Callable[[Any], None] | None = None,
                 rebalance_stuck_s: float = 120.0, busy_give_up_s: float = 600.0) -> None:
        self.app, self.agent_of, self.last_batch_at, self.starts = app, agent_of, last_batch_at, starts
        self.give_up_after, self.on_stuck = give_up_after, on_stuck
        self.rebalance_stuck_s = rebalance_stuck_s
        self.busy_give_up_s = busy_give_up_s  # a busy worker is restarted only after this long stalled
        self._busy_since: dict[Any, float] = {}  # tp -> when it first reached give_up_after rewinds
        self._rebalancing_since: float | None = None
        self._rewinds: dict[Any, tuple[int | None, int]] = {}  # tp -> (committed offset, rewinds without progress)
        self.metrics, self.stall_s, self.busy_stall_s = metrics, stall_s, busy_stall_s
        self._since: dict[Any, tuple[int | None, float]] = {}  # tp -> (committed offset, first seen at)

    async def learn_starts(self) -> None:
        """Tell a :class:`streams.consumer.GaplessConsumer` where its partitions without a committed offset
        start (it makes no commit for them before). Cheap when there are none; part of every check."""
        consumer = self.app.consumer
        start_offsets: dict[Any, int] | None = getattr(consumer, "start_offsets", None)
        if start_offsets is None or self.starts is None or self.app.rebalancing:
            return
        committed = consumer._committed_offset
        # asked once per assignment (revoked partitions are forgotten by the consumer): a partition that never
        # gets a record never commits, and must not cost the group coordinator a request every tick
        unknown = [tp for tp in consumer.assignment() if committed.get(tp) is None and tp not in start_offsets
                   and self.agent_of(tp.topic) is not None]
        if unknown:
            start_offsets.update(await self.starts(unknown))

    def watch_rebalance(self, now: float | None = None) -> bool:
        """Give up on a worker whose rebalance (or table recovery) has not ended after ``rebalance_stuck_s``:
        faust can hang inside one (two workers after a broker bounce both stopped fetching, heartbeating
        'the group is rebalancing', for minutes, docs/streams.md). Returns True when it gave up."""
        now = time.time() if now is None else now
        if not (self.app.rebalancing or self.app.in_recovery):
            self._rebalancing_since = None
            return False
        if self._rebalancing_since is None:
            self._rebalancing_since = now
            return False
        if now - self._rebalancing_since < self.rebalance_stuck_s or self.on_stuck is None:
            return False
        log.critical("still rebalancing or recovering tables after %.0fs: faust is stuck in the rebalance; a "
                     "restart resumes from the committed offsets", now - self._rebalancing_since)
        self.on_stuck(None)
        self.on_stuck = None  # once
        return True

    async def check(self, lags: Mapping[tuple[str, int], int], now: float | None = None) -> list[Any]:
        """Rewind the stalled partitions among ``lags`` (from :meth:`LagReporter.report`); returns them."""
        now = time.time() if now is None else now
        if self.app.rebalancing or self.app.in_recovery:
            self._since.clear()
            return []
        consumer = self.app.consumer
        committed = consumer._committed_offset
        start_offsets: dict[Any, int] | None = getattr(consumer, "start_offsets", None)
        await self.learn_starts()
        stalled: list[tuple[Any, int | None, str, float]] = []
        for tp in consumer.assignment():
            lag = lags.get((tp.topic, tp.partition), 0)
            offset = committed.get(tp)
            first = self._since.get(tp)
            if lag <= 0 or first is None or first[0] != offset:
                self._since[tp] = (offset, now)
                continue
            agent = self.agent_of(tp.topic)
            stuck_for = now - first[1]
            if agent is None or stuck_for < self.stall_s:
                continue
            idle = now - self.last_batch_at.get(agent, 0.0)
            if idle < self.stall_s and stuck_for < self.busy_stall_s:
                continue  # the agent is busy: its buffer may still hold this partition's records
            stalled.append((tp, offset, agent, idle))
        for tp, offset, agent, idle in stalled:
            target = _first(offset, (start_offsets or {}).get(tp))
            log.warning("%s[%d] stalled at offset %d, %d records behind, agent %s %s; seeking back to it "
                        "(faust dropped records it had fetched, see docs/streams.md)", tp.topic, tp.partition,
                        target, lags[(tp.topic, tp.partition)], agent,
                        f"idle for {idle:.0f}s" if idle < now - 1.0 else "without a batch yet")
            await consumer.seek_wait({tp: target})
            self._since[tp] = (offset, now)  # the next rewind of the same partition waits stall_s again
            if self.metrics is not None:
                self.metrics.record_rewind(agent)
            last, count = self._rewinds.get(tp, (offset, 0))
            count = count + 1 if last == offset else 1
            self._rewinds[tp] = (offset, count)
            if count == 1:
                self._busy_since.pop(tp, None)
            if count >= self.give_up_after and self.on_stuck is not None:
                busy = [a for a, at in self.last_batch_at.items() if now - at < self.stall_s]
                since = self._busy_since.setdefault(tp, now)
                if busy and now - since < self.busy_give_up_s:
                    # a starved agent, not a dead consumer: faust dispatches fetched records in order and
                    # waits while another agent's full buffer holds them back; a restart would only cost a
                    # recovery and start the backlog again (seen: a 100,000-event backlog after a restart)
                    log.warning("%s[%d] stalled after %d rewinds while agent(s) %s keep processing: not "
                                "restarting while the worker is busy", tp.topic, tp.partition, count,
                                ", ".join(sorted(busy)))
                    continue
                log.critical("%s[%d] still stalled at offset %d after %d rewinds: this worker's consumer no longer "
                             "delivers it (seen with two workers starting together on a backlog, docs/streams.md); "
                             "a restart resumes from the committed offsets", tp.topic, tp.partition, target, count)
                self.on_stuck(tp)
                self.on_stuck = None  # once
        return [tp for tp, _, _, _ in stalled]
