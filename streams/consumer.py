"""faust's Kafka consumer with a strict commit rule: never commit over a record the agent did not ack.

faust decides what to commit from the offsets its agents acked, and tolerates holes in two ways that lose
records when a rebalance drops messages it had fetched but not delivered (reproduced with two workers on
a 20,000-record backlog: 1 to 80 events never processed, and committed, so not even a restart brought them
back; docs/streams.md):

* a jump in offsets seen by the fetcher is booked as a "gap" (what compaction or transaction markers
  leave) and later committed over. Our agents read only topics with neither (ingest, canonical event and
  partials topics: delete retention, no transactions), so a jump there always means dropped records;
* the hole check at the head of the acked offsets is off by one (a single missing record at the committed
  offset passes) and is skipped when nothing was committed yet or the committed offset is 0.

:class:`GaplessConsumer` books no gaps and commits only a run of acked offsets that starts exactly at the
committed offset (or, before the first commit, at the partition's first offset, which
:class:`streams.lag.StallGuard` learns from the broker). Records behind a hole stay uncommitted; the stall
guard then seeks the partition back so that they are delivered again (replays are idempotent).
"""

from __future__ import annotations

import logging
from typing import Any

import faust
from faust.transport.drivers.aiokafka import Consumer

log = logging.getLogger("streams.consumer")


class GaplessConsumer(Consumer):
    skipped_jumps = 0  # offset jumps seen by the fetcher (never committed over), per process

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.start_offsets: dict[Any, int] = {}  # tp -> first offset, for partitions never committed

    async def on_partitions_revoked(self, revoked: set[Any]) -> None:
        for tp in revoked:
            self.start_offsets.pop(tp, None)
        await super().on_partitions_revoked(revoked)

    async def _add_gap(self, tp: Any, offset_from: int, offset_to: int) -> None:
        GaplessConsumer.skipped_jumps += 1
        log.warning("%s[%d]: faust skipped offsets %d..%d (records it dropped in a rebalance); not committing "
                    "over them, the stall guard will re-read them", tp.topic, tp.partition, offset_from,
                    offset_to - 1)

    def _new_offset(self, tp: Any) -> int | None:
        acked: list[int] = self._acked[tp]
        if not acked:
            return None
        committed = self._committed_offset[tp]
        start = committed if committed is not None else self.start_offsets.get(tp)
        if start is None:
            return None  # first commit waits until the partition's first offset is known
        acked.sort()
        if acked[0] != start:
            return None  # a hole at the head: the record at ``start`` was never acked
        end = 0
        while end + 1 < len(acked) and acked[end + 1] == acked[end] + 1:
            end += 1
        run = acked[:end + 1]
        del acked[:end + 1]
        self._acked_index[tp].difference_update(run)
        return run[-1] + 1


def install(app: faust.App) -> None:
    """Make ``app`` create a :class:`GaplessConsumer` (before its consumer exists)."""
    app.transport.Consumer = GaplessConsumer  # type: ignore[misc]
