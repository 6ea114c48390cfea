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


def _firsts(runs: Sequence[tuple[Any, Sequence[Any]]]) -> dict[Any, int]:
    """The first (lowest) offset of each partition's run of a fetch (to seek back to)."""
    return {tp: run[0].offset for tp, run in runs if run}


def _unread(run: Sequence[Any], read_offset: int | None) -> Sequence[Any] | None:
    """One partition's fetched records (in offset order) less those read before, if they continue where the
    partition's reading stands without a hole: the run an inbox takes at once. None otherwise (records out of
    order, or a hole that faust books as a gap): those go one by one."""
    first, last = run[0].offset, run[-1].offset
    if last - first + 1 != len(run) or (read_offset and first - read_offset > 1):
        return None
    return run[read_offset - first:] if read_offset is not None and first < read_offset else run


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

    async def _fetched(self, timeout: float) -> tuple[int, list[tuple[Any, list[Any]]], set[Any]] | None:  # noqa: ASYNC109
        """The next fetch as runs: each partition's records in offset order (faust's ``getmany`` hands them out
        one at a time, round-robin over the partitions), the generation it was fetched in and the partitions
        whose records may be delivered (faust skips the others: paused, or being revoked). None if there is
        nothing to deliver; a fetch that arrives while the flow is stopped is sought back whole."""
        records, active_partitions = await self._wait_next_records(timeout)
        generation_id = self.app.consumer_generation_id
        if records is None or self.should_stop:
            return None
        runs = [(tp, run) for tp, run in records.items() if run]
        buffered = self._buffered_partitions
        deliverable = {tp for tp, _ in runs if active_partitions is None or tp in active_partitions or tp in buffered}
        monitor = self.app.monitor
        for tp in deliverable:  # faust's end-offset gauge, once per partition and fetch (faust: once per record)
            monitor.track_tp_end_offset(tp, self.highwater(tp))
        if not self.flow_active:
            await self._rewind(_firsts(runs), "flow not active")
            return None
        return generation_id, runs, deliverable

    def _cut(self, generation_id: int) -> str | None:
        """Why the rest of a fetch must not be delivered (it is sought back then), or None."""
        if not self.flow_active:
            return "flow stopped"
        if self.app.consumer_generation_id != generation_id:
            return "generation changed"
        return None

    async def getmany(self, timeout: float) -> AsyncIterator[tuple[Any, Any]]:  # noqa: ASYNC109  (faust's signature)
        """faust's ``getmany``, one record at a time (a partition's run after another), but a fetch cut short by a
        stopped flow or a new generation seeks its partitions back instead of dropping the rest. (The fetch loop,
        :meth:`_drain_messages`, delivers whole runs instead.)"""
        fetched = await self._fetched(timeout)
        if fetched is None:
            return
        generation_id, runs, deliverable = fetched
        for i, (tp, run) in enumerate(runs):
            if tp not in deliverable:
                continue
            for record in run:
                if (cut := self._cut(generation_id)) is not None:
                    await self._rewind({**_firsts(runs[i + 1:]), tp: record.offset}, cut)
                    return
                yield tp, self._to_message(tp, record)

    async def _drain_messages(self, fetcher: Any) -> None:  # pragma: no cover - the fetcher's background task
        """faust's fetcher loop, but a record counts as read only once it was delivered: when the flow
        suspension wins the race, the partition is sought back to that record. A fetch is delivered a
        partition's run at a time: an agent's records into its inbox in as few steps as its room allows
        (:meth:`_to_inbox`), any other topic's one by one through faust's callback (:meth:`_one_by_one`)."""
        consumer_stopped = self._stopped.is_set
        fetcher_stopped = fetcher._stopped.is_set
        inboxes = self.inboxes
        try:
            while not (consumer_stopped() or fetcher_stopped()):
                self.diag.set_flag(CONSUMER_FETCHING)
                fetched = await self._fetched(timeout=1.0)
                await self.sleep(0)
                if fetched is None or self.should_stop:
                    continue
                generation_id, runs, deliverable = fetched
                for i, (tp, run) in enumerate(runs):
                    if (cut := self._cut(generation_id)) is not None:  # (a rebalance began at the last await)
                        await self._rewind(_firsts(runs[i:]), cut)
                        break
                    if tp not in deliverable:
                        continue
                    inbox = inboxes.get(tp.topic)
                    records = _unread(run, self._read_offset[tp]) if inbox is not None else None
                    go_on = (await self._to_inbox(tp, records, inbox, generation_id)
                             if records is not None and inbox is not None
                             else await self._one_by_one(tp, run, inbox, generation_id))
                    if not go_on:  # cut short: this run was sought back from its first record not delivered
                        await self._rewind(_firsts(runs[i + 1:]), self._cut(generation_id) or "cut")
                        break
                    await asyncio.sleep(0)  # (a run may hold thousands of records: let the agents and a rebalance in)
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

    async def _to_inbox(self, tp: Any, records: Sequence[Any], inbox: Inbox, generation_id: int) -> bool:
        """Hand one partition's run (:func:`_unread`) to its agent's inbox, as many records at a time as fit,
        waiting for the agent to take a batch when it is full. When the flow is suspended first, the partition
        is sought back to its first record not handed over. False if the fetch must stop (sought back)."""
        to_message, read_offset = self._to_message, self._read_offset
        messages = [to_message(tp, record) for record in records]
        i = 0
        while i < len(messages):
            await self._commit_if_due()
            if inbox.full():
                await self.wait_first(inbox.wait_space(), self.suspend_flow.wait())
            if (cut := self._cut(generation_id)) is not None:  # (the flow stopped, or a new generation, meanwhile)
                await self._rewind({tp: messages[i].offset}, cut)
                return False
            if inbox.full() or self.suspend_flow.is_set():
                await self._rewind({tp: messages[i].offset}, "flow suspended before the record reached the inbox")
                return True  # (every later partition of the fetch meets the same, and is sought back in turn)
            i = inbox.put_many(messages, i)
            read_offset[tp] = messages[i - 1].offset
        return True

    async def _one_by_one(self, tp: Any, run: Sequence[Any], inbox: Inbox | None, generation_id: int) -> bool:
        """faust's per-record delivery of one partition's run, into ``inbox`` or else through the conductor's
        callback, with its checks: records read before skipped, a hole booked (:meth:`_add_gap`), a record whose
        delivery lost the race against the flow suspension sought back. False if the fetch must stop."""
        read_offset = self._read_offset
        acks_enabled_for = self.app.topics.acks_enabled_for
        for record in run:
            if (cut := self._cut(generation_id)) is not None:
                await self._rewind({tp: record.offset}, cut)
                return False
            message = self._to_message(tp, record)
            offset = message.offset
            r_offset = read_offset[tp]
            if r_offset is not None and offset < r_offset:
                continue  # read before (faust logs these as DROPPED MESSAGE)
            if offset - (r_offset or 0) > 1 and r_offset and acks_enabled_for(message.topic):
                await self._add_gap(tp, r_offset + 1, offset)
            await self._commit_if_due()
            if inbox is not None:
                if inbox.full():
                    await self.wait_first(inbox.wait_space(), self.suspend_flow.wait())
                if inbox.full() or self.suspend_flow.is_set() or not self.flow_active:
                    await self._rewind({tp: offset}, "flow suspended before the record reached the inbox")
                    return True
                inbox.put(message)
                read_offset[tp] = offset
                continue
            delivery = self.callback(message)
            waited = await self.wait_first(delivery, self.suspend_flow.wait())
            if delivery in waited.done:
                read_offset[tp] = offset
            else:  # suspended (or stopping) before the record reached the stream: read it again later
                await self._rewind({tp: offset}, "flow suspended during delivery")
                return True
        return True

    async def _commit_if_due(self) -> None:
        """faust's commit after every ``broker_commit_every`` acknowledged records (if set)."""
        if self._commit_every is not None and self._n_acked >= self._commit_every:
            self._n_acked = 0
            await self.commit()

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
