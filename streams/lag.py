"""Consumer lag of the worker's own partitions (alliance_consumer_lag_messages{group,topic,partition}).

Lag = the partition's end offset - the offset this worker has committed for it. A partition that stops
being consumed (see docs/streams.md, known issue) shows up as growing lag, which the alert rules watch.
"""

from __future__ import annotations

from typing import Any

from aiokafka import AIOKafkaConsumer
from aiokafka.errors import KafkaError

from infra.observability import PipelineMetrics, set_consumer_lag


class LagReporter:
    def __init__(self, app: Any, metrics: PipelineMetrics, bootstrap: str, group: str) -> None:
        self.app, self.metrics, self.bootstrap, self.group = app, metrics, bootstrap, group
        self._client: AIOKafkaConsumer | None = None

    async def report(self) -> dict[tuple[str, int], int]:
        consumer = self.app.consumer
        tps = [tp for tp in consumer.assignment()
               if not tp.topic.endswith("-changelog") and "__assignor" not in tp.topic]
        if not tps:
            set_consumer_lag(self.metrics.consumer_lag, self.group, {})
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
        set_consumer_lag(self.metrics.consumer_lag, self.group, lags)
        return lags

    async def close(self) -> None:
        if self._client is not None:
            await self._client.stop()
            self._client = None
