"""faust's Kafka consumer with a strict commit rule (never commit over a record the agent did not ack) and
with the two places fixed where faust 0.15.3 loses fetched records (docs/reliability.md lists each defect
with file:line):

* ``getmany`` breaks out of a fetched batch when the flow stops or the generation changes and drops the
  rest of it (faust/transport/consumer.py:748-758) without seeking back: :meth:`GaplessConsumer.getmany`
  seeks every partition back to its first record that was not delivered;
* ``_drain_messages`` marks a record read even when the flow suspension won the race against its delivery
  (consumer.py:1220-1223: ``wait_first(callback(message), suspend_flow.wait())`` cancels the delivery, then
  ``set_read_offset``): :meth:`GaplessConsumer._drain_messages` marks only delivered records read and seeks
  the partition back to the first one that was not.

The fetch loop also hands the records of the agents' topics to their inboxes (:mod:`streams.inbox`) instead of
faust's per-record delivery; the agents acknowledge them once processed (``track_batch``, ``ack_batch``).

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

import asyncio
import logging
from collections.abc import AsyncIterator, Mapping, Sequence
from types import MappingProxyType
from typing import Any, cast

import faust
from aiokafka import AIOKafkaConsumer
from faust.transport.consumer import CONSUMER_FETCHING
from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread, Consumer, ConsumerRebalanceListener
from faust.types.tuples import ack_lock
from mode.utils.futures import notify

from streams.fence import MembershipFence
from streams.inbox import Inbox

log = logging.getLogger("streams.consumer")


def _firsts(records_it: Any) -> dict[Any, int]:
    """The first (lowest) offset per partition of what is left in a fetched batch's iterator."""
    firsts: dict[Any, int] = {}
    for tp, record in records_it:
        firsts.setdefault(tp, record.offset)
    return firsts


class FencedRebalanceListener(ConsumerRebalanceListener):
    """faust's listener, which also lets the consumer's :class:`MembershipFence` watch the group
    coordinator (before the first JoinGroup: the revoke callback runs when a join is prepared)."""

    def on_partitions_revoked(self, revoked: Any) -> Any:
        fence: MembershipFence | None = getattr(self._thread.consumer, "fence", None)
        if fence is not None:
            fence.watch_coordinator(self._thread._ensure_consumer()._coordinator)
        return super().on_partitions_revoked(revoked)


# How long the broker may hold a fetch request open when none of its partitions has new records. faust fixes
# 1,500 ms. aiokafka leaves out of a node's next fetch every partition whose records are still buffered and sends
# no second request to a node while one is open; a partition whose buffer the agent emptied meanwhile can only be
# fetched again once that request returns, so a record arriving there could wait out the whole hold (not
# separately visible in the latency runs; docs/benchmarks.md). An idle worker sends an empty fetch per broker this
# often.
FETCH_MAX_WAIT_MS = 100


class WorkerConsumerThread(AIOKafkaConsumerThread):
    """faust's consumer thread with :data:`FETCH_MAX_WAIT_MS` for the worker's consumer."""

    def _create_worker_consumer(self, transport: Any) -> AIOKafkaConsumer:
        consumer = super()._create_worker_consumer(transport)
        consumer._fetch_max_wait_ms = FETCH_MAX_WAIT_MS  # read when the consumer starts its fetcher
        return consumer


class GaplessConsumer(Consumer):
    RebalanceListener = FencedRebalanceListener
    fence: MembershipFence | None = None  # set per app by :func:`install`
    inboxes: Mapping[str, Inbox] = MappingProxyType({})  # topic -> its agent's inbox; set per app by :func:`install`
    skipped_jumps = 0  # offset jumps seen by the fetcher (never committed over), per process
    rewinds = 0  # partitions sought back to a record fetched but not delivered, per process

    def _new_consumer_thread(self) -> WorkerConsumerThread:
        return WorkerConsumerThread(self, loop=self.loop, beacon=self.beacon)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.start_offsets: dict[Any, int] = {}  # tp -> first offset, for partitions never committed

    async def on_partitions_revoked(self, revoked: set[Any]) -> None:
        for tp in revoked:
            self.start_offsets.pop(tp, None)
        await super().on_partitions_revoked(revoked)

    async def _rewind(self, undelivered: dict[Any, int], why: str) -> None:
        """Seek each partition back to its first record that was fetched but not delivered."""
        for tp, offset in undelivered.items():
            if tp not in self.assignment():
                continue  # revoked: its new owner reads it from the committed offset
            try:
                await self.seek(tp, offset)
            except Exception as exc:  # the next rebalance or the stall guard seeks it back instead
                log.warning("%s[%d]: could not seek back to %d (%s): %r", tp.topic, tp.partition, offset, why, exc)
            else:
                GaplessConsumer.rewinds += 1
                log.info("%s[%d]: sought back to %d, the first record not delivered (%s)", tp.topic,
                         tp.partition, offset, why)

    async def getmany(self, timeout: float) -> AsyncIterator[tuple[Any, Any]]:  # noqa: ASYNC109  (faust's signature)
        """faust's ``getmany`` (round-robin over the fetched partitions), but a batch cut short by a stopped
        flow or a new generation seeks its partitions back instead of dropping the rest."""
        records, active_partitions = await self._wait_next_records(timeout)
        generation_id = self.app.consumer_generation_id
        if records is None or self.should_stop:
            return

        def deliverable(tp: Any) -> bool:
            return active_partitions is None or tp in active_partitions or tp in self._buffered_partitions

        monitor = self.app.monitor
        for tp in filter(deliverable, records):  # faust's end-offset gauge, once per partition and fetch
            monitor.track_tp_end_offset(tp, self.highwater(tp))  # (faust: once per record)
        records_it = self.scheduler.iterate(records)
        to_message = self._to_message
        if not self.flow_active:
            await self._rewind(_firsts(records_it), "flow not active")
            return
        for tp, record in records_it:
            cut = ("flow stopped" if not self.flow_active
                   else "generation changed" if self.app.consumer_generation_id != generation_id else None)
            if cut is not None:
                undelivered = _firsts(records_it)
                undelivered.setdefault(tp, record.offset)
                undelivered[tp] = min(undelivered[tp], record.offset)
                await self._rewind(undelivered, cut)
                return
            if deliverable(tp):
                yield tp, to_message(tp, record)

    async def _drain_messages(self, fetcher: Any) -> None:  # pragma: no cover - the fetcher's background task
        """faust's fetcher loop, but a record counts as read only once it was delivered: when the flow
        suspension wins the race, the partition is sought back to that record."""
        callback = self.callback
        consumer_stopped = self._stopped.is_set
        fetcher_stopped = fetcher._stopped.is_set
        read_offset = self._read_offset
        commit_every = self._commit_every
        acks_enabled_for = self.app.topics.acks_enabled_for
        inboxes = self.inboxes
        suspended = self.suspend_flow.is_set
        num_since_yield = 0
        try:
            while not (consumer_stopped() or fetcher_stopped()):
                self.diag.set_flag(CONSUMER_FETCHING)
                ait = self.getmany(timeout=1.0)
                await self.sleep(0)
                if self.should_stop:
                    continue
                rewound: set[Any] = set()  # partitions sought back in this fetch: skip the rest of theirs
                async for tp, message in ait:
                    num_since_yield += 1
                    if num_since_yield > 100:
                        await asyncio.sleep(0)
                        num_since_yield = 0
                    if tp in rewound:
                        continue
                    offset = message.offset
                    r_offset = read_offset[tp]
                    if r_offset is not None and offset < r_offset:
                        continue  # read before (faust logs these as DROPPED MESSAGE)
                    if offset - (r_offset or 0) > 1 and r_offset and acks_enabled_for(message.topic):
                        await self._add_gap(tp, r_offset + 1, offset)
                    if commit_every is not None and self._n_acked >= commit_every:
                        self._n_acked = 0
                        await self.commit()
                    inbox = inboxes.get(tp.topic)
                    if inbox is not None:  # an agent's record: straight into its inbox (streams.inbox)
                        if inbox.full():
                            await self.wait_first(inbox.wait_space(), self.suspend_flow.wait())
                        if inbox.full() or suspended() or not self.flow_active:
                            rewound.add(tp)  # a rebalance began: read it again after (as below)
                            await self._rewind({tp: offset}, "flow suspended before the record reached the inbox")
                            continue
                        inbox.put(message)
                        read_offset[tp] = offset
                        continue
                    delivery = callback(message)
                    waited = await self.wait_first(delivery, self.suspend_flow.wait())
                    if delivery in waited.done:
                        read_offset[tp] = offset
                    else:  # suspended (or stopping) before the record reached the stream: read it again later
                        rewound.add(tp)
                        await self._rewind({tp: offset}, "flow suspended during delivery")
                self.diag.unset_flag(CONSUMER_FETCHING)
        except self.consumer_stopped_errors:
            if self.transport.app.should_stop:
                return
            raise
        except asyncio.CancelledError:
            if self.transport.app.should_stop:
                return
            raise
        finally:
            self.diag.unset_flag(CONSUMER_FETCHING)

    async def _add_gap(self, tp: Any, offset_from: int, offset_to: int) -> None:
        GaplessConsumer.skipped_jumps += 1
        log.warning("%s[%d]: faust skipped offsets %d..%d (records it dropped in a rebalance); not committing "
                    "over them, the stall guard will re-read them", tp.topic, tp.partition, offset_from,
                    offset_to - 1)

    def track_batch(self, messages: Sequence[Any]) -> None:
        """An agent took ``messages`` from its inbox: a rebalance now waits until they are acknowledged
        (faust's ``wait_empty``), as it waits for the records a faust stream took."""
        track = self._unacked_messages.add
        for message in messages:
            track(message)

    def ack_batch(self, messages: Sequence[Any]) -> None:
        """The agent processed ``messages`` (its writes acknowledged by the broker): they may be committed.
        faust's ``ack`` for each message, with its lock taken, its topic test made and its waiter woken once
        per batch instead of once per record (tests/unit/test_inbox.py compares the two)."""
        enabled: dict[str, bool] = {}
        acks_enabled_for = self.app.topics.acks_enabled_for
        committed_offset, acked_index, acked = self._committed_offset, self._acked_index, self._acked
        unacked = self._unacked_messages
        n = 0
        with ack_lock:
            try:
                for message in messages:
                    if message.acked:
                        continue
                    message.acked = True
                    topic = message.topic
                    if (on := enabled.get(topic)) is None:
                        on = enabled[topic] = acks_enabled_for(topic)
                    if not on:
                        continue
                    tp, offset = message.tp, message.offset
                    committed = committed_offset[tp]
                    if committed is None or offset >= committed:
                        index = acked_index[tp]
                        if offset not in index:
                            unacked.discard(message)
                            index.add(offset)
                            acked[tp].append(offset)
                            n += 1
            finally:
                self._n_acked += n
                notify(self._waiting_for_ack)

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


def install(app: faust.App, fence: MembershipFence | None = None, inboxes: Sequence[Inbox] = ()) -> None:
    """Make ``app`` create a :class:`GaplessConsumer` (before its consumer exists) whose group membership
    ``fence`` watches and which hands the records of each inbox's topics to that inbox. Each inbox is cleared
    with faust's own queues when a rebalance suspends the flow."""
    by_topic = {topic: inbox for inbox in inboxes for topic in inbox.topics}
    if len(by_topic) != sum(len(inbox.topics) for inbox in inboxes):
        raise ValueError("a topic can feed one inbox only")
    for inbox in inboxes:
        app.flow_control.manage_queue(cast(Any, inbox))
    app.transport.Consumer = type("GaplessConsumer", (GaplessConsumer,),  # type: ignore[misc]
                                  {"fence": fence, "inboxes": by_topic})


def fence_of(app: faust.App) -> MembershipFence | None:
    """The membership fence :func:`install` gave ``app``'s consumer."""
    return getattr(app.transport.Consumer, "fence", None)
