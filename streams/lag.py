"""Consumer lag of the worker's own partitions (alliance_consumer_lag_messages{group,topic,partition}),
and the guard that rewinds partitions faust stopped delivering.

Lag = the partition's end offset - the offset this worker has committed for it. A partition that stops
being consumed shows up as growing lag, which the alert rules watch.

:class:`StallGuard` handles the case seen with two workers on a backlog (about one run in eight, see
docs/streams.md): after a rebalance faust clears its stream buffers but does not always seek the
partitions back to their committed offsets, so the records that were buffered are never delivered to the
agent and the committed offset stops short of them (faust's read offset is already at the end, nothing is
left to fetch). Restarting the worker would heal it (it resumes from the committed offset); the guard does
the same in-process: a partition with lag whose committed offset has not moved for ``stall_s`` while its
agent had no batch for ``stall_s`` is sought back to its committed offset. Every step of the pipeline is
idempotent under such a replay (dedupe at ingest, event ids remembered per entity, absolute partials).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from aiokafka import AIOKafkaConsumer
from aiokafka.errors import KafkaError

from infra.observability import PipelineMetrics, set_consumer_lag

log = logging.getLogger("streams.lag")


class LagReporter:
    def __init__(self, app: Any, metrics: PipelineMetrics | None, bootstrap: str, group: str) -> None:
        self.app, self.metrics, self.bootstrap, self.group = app, metrics, bootstrap, group
        self._client: AIOKafkaConsumer | None = None

    async def report(self) -> dict[tuple[str, int], int]:
        consumer = self.app.consumer
        tps = [tp for tp in consumer.assignment()
               if not tp.topic.endswith("-changelog") and "__assignor" not in tp.topic]
        if not tps:
            self._publish({})
            return {}
        if self._client is None:
            self._client = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, enable_auto_commit=False)
            await self._client.start()
        try:
            ends = await self._client.end_offsets(tps)
        except KafkaError:
            return {}  # the next tick tries again; a stale gauge is better than a wrong one
        committed = consumer._committed_offset  # faust keeps the offsets it committed per partition
        lags = {(tp.topic, tp.partition): max(0, int(ends[tp]) - int(committed.get(tp) or 0)) for tp in tps}
        self._publish(lags)
        return lags

    def _publish(self, lags: dict[tuple[str, int], int]) -> None:
        if self.metrics is not None:
            set_consumer_lag(self.metrics.consumer_lag, self.group, lags)

    async def close(self) -> None:
        if self._client is not None:
            await self._client.stop()
            self._client = None


class StallGuard:
    def __init__(self, app: Any, agent_of: Callable[[str], str | None], last_batch_at: Mapping[str, float],
                 metrics: PipelineMetrics | None = None, stall_s: float = 20.0) -> None:
        self.app, self.agent_of, self.last_batch_at = app, agent_of, last_batch_at
        self.metrics, self.stall_s = metrics, stall_s
        self._since: dict[Any, tuple[int | None, float]] = {}  # tp -> (committed offset, first seen at)

    async def check(self, lags: Mapping[tuple[str, int], int], now: float | None = None) -> list[Any]:
        """Rewind the stalled partitions among ``lags`` (from :meth:`LagReporter.report`); returns them."""
        now = time.time() if now is None else now
        if self.app.rebalancing or self.app.in_recovery:
            self._since.clear()
            return []
        consumer = self.app.consumer
        committed = consumer._committed_offset
        stalled: list[tuple[Any, int | None, str, float]] = []
        for tp in consumer.assignment():
            lag = lags.get((tp.topic, tp.partition), 0)
            offset = committed.get(tp)
            first = self._since.get(tp)
            if lag <= 0 or first is None or first[0] != offset:
                self._since[tp] = (offset, now)
                continue
            agent = self.agent_of(tp.topic)
            if agent is None or now - first[1] < self.stall_s:
                continue
            idle = now - self.last_batch_at.get(agent, 0.0)
            if idle < self.stall_s:
                continue  # the agent is busy: its buffer may still hold this partition's records
            stalled.append((tp, offset, agent, idle))
        for tp, offset, agent, idle in stalled:
            log.warning("%s[%d] stalled: committed offset %s, %d records behind, agent %s idle for %.0fs; "
                        "seeking back to the committed offset (faust dropped its buffered records in a "
                        "rebalance, see docs/streams.md)", tp.topic, tp.partition, offset,
                        lags[(tp.topic, tp.partition)], agent, idle)
            await consumer.seek_wait({tp: offset or 0})
            self._since[tp] = (offset, now)  # the next rewind of the same partition waits stall_s again
            if self.metrics is not None:
                self.metrics.record_rewind(agent)
        return [tp for tp, _, _, _ in stalled]
