"""streams.inbox and the consumer's path into it (streams.consumer.GaplessConsumer): whole fetches handed to an
agent's inbox without faust's per-record events, taken in batches, acknowledged only when processed, and cleared
(never acknowledged) when a rebalance suspends the flow.

The consumer is built but never started (no broker): its fetch loop runs over a stubbed fetch."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any

import faust
import pytest
from aiokafka.structs import ConsumerRecord
from faust.sensors.prometheus import FaustMetrics
from faust.transport.consumer import ConsumerMessage
from faust.types import TP
from prometheus_client import CollectorRegistry, generate_latest

from streams.app import serve_inbox
from streams.consumer import GaplessConsumer, install
from streams.inbox import Inbox
from streams.sensors import Sensors, batch_in, batch_out

INGEST, FAMILY, OTHER = "alliance.ingest.scu", "alliance.events.recruitment", "alliance.other"


def message(topic: str, partition: int, offset: int, generation: int = 1) -> ConsumerMessage:
    return ConsumerMessage(topic, partition, offset, time.time(), 0, [], b"k", b"v", None, 1, 1,
                           TP(topic, partition), generation_id=generation)


def inbox(topics: Sequence[str] = (INGEST,), size: int = 3, within: float = 0.05, capacity: int = 6) -> Inbox:
    return Inbox("ingest", topics, size=size, within=within, capacity=capacity)


async def test_a_whole_batch_is_taken_at_once_in_fetch_order() -> None:
    box = inbox()
    for offset in range(5):
        box.put(message(INGEST, 0, offset))
    started = time.monotonic()
    assert [m.offset for m in await box.take()] == [0, 1, 2]  # size 3: no waiting for more
    assert time.monotonic() - started < box.within
    assert [m.offset for m in await box.take()] == [3, 4]  # the rest after waiting ``within`` for a third
    assert len(box) == 0


async def test_a_partial_batch_waits_within_for_more_and_no_longer() -> None:
    box = inbox(within=0.2)
    box.put(message(INGEST, 0, 0))

    async def later() -> None:
        await asyncio.sleep(0.05)
        box.put(message(INGEST, 0, 1))
        box.put(message(INGEST, 0, 2))  # completes a batch: the take returns before ``within``

    started = time.monotonic()
    _, batch = await asyncio.gather(later(), box.take())
    assert [m.offset for m in batch] == [0, 1, 2]
    assert time.monotonic() - started < 0.2
    waiter = asyncio.create_task(box.take())  # empty: waits for the first record, however long
    await asyncio.sleep(0.1)
    assert not waiter.done()
    box.put(message(INGEST, 1, 9))
    assert [m.offset for m in await asyncio.wait_for(waiter, 1.0)] == [9]


async def test_clear_drops_what_was_not_taken_and_frees_the_space() -> None:
    box = inbox(size=2, capacity=2)
    box.put(message(INGEST, 0, 0))
    box.put(message(INGEST, 0, 1))
    assert box.full()
    space = asyncio.create_task(box.wait_space())
    await asyncio.sleep(0)
    assert not space.done()
    box.clear()
    await asyncio.wait_for(space, 1.0)
    assert len(box) == 0 and box.cleared == 2
    waiter = asyncio.create_task(box.take())  # a cleared inbox has nothing to hand out
    await asyncio.sleep(0.1)
    assert not waiter.done()
    waiter.cancel()


def test_nonsense_sizes_are_refused() -> None:
    for size, capacity, within in ((0, 5, 0.1), (6, 5, 0.1), (2, 5, -1.0)):
        with pytest.raises(ValueError, match="inbox ingest"):
            Inbox("ingest", [INGEST], size=size, within=within, capacity=capacity)


def test_a_topic_feeds_one_inbox_only() -> None:
    app = faust.App("inbox-twice", broker="kafka://127.0.0.1:1", store="memory://")
    with pytest.raises(ValueError, match="one inbox"):
        install(app, inboxes=[inbox([INGEST]), inbox([INGEST, FAMILY])])


class Fetcher:
    def __init__(self) -> None:
        self._stopped = asyncio.Event()


def as_fetched(records: Sequence[ConsumerMessage]) -> dict[TP, list[ConsumerRecord]]:
    """``records`` as aiokafka fetches them: each partition's in a list of its own, in the order given."""
    fetch: dict[TP, list[ConsumerRecord]] = {}
    for m in records:
        fetch.setdefault(m.tp, []).append(ConsumerRecord(m.topic, m.partition, m.offset, int(m.timestamp * 1000), 0,
                                                         m.key, m.value, None, len(m.key or b""),
                                                         len(m.value or b""), m.headers))
    return fetch


async def consumer_with(box: Inbox, fetched: list[ConsumerMessage], *, before: Any = None) -> GaplessConsumer:
    """A never-started consumer of an app served like the worker's (its inbox's topics subscribed through
    faust's conductor, whose index decides which acknowledgements count) whose fetch loop reads ``fetched``
    once (one fetch: each partition's records in the order given, the partitions in order of first appearance);
    ``before(consumer, i)`` runs as the i-th record (in the order the fetch loop takes them) becomes a message.
    Seeks are recorded, not sent."""
    app = faust.App(f"inbox-{id(box)}", broker="kafka://127.0.0.1:1", store="memory://")
    install(app, inboxes=[box])

    async def handle(batch: Sequence[ConsumerMessage]) -> None:  # the agent task is not started here
        raise AssertionError("not run")

    serve_inbox(app, box, handle)
    await app.topics._update_indices()
    consumer: Any = app.consumer
    consumer.delivered_elsewhere = []
    consumer.sought = []
    fetcher = Fetcher()
    fetches = [as_fetched(fetched)]

    async def wait_next_records(timeout: float) -> tuple[Any, Any]:  # noqa: ASYNC109
        if not fetches:
            fetcher._stopped.set()
            return None, None
        return fetches.pop(), None

    made = 0
    to_message = consumer._to_message

    def message_of(tp: TP, record: ConsumerRecord) -> ConsumerMessage:
        nonlocal made
        if before is not None:
            before(consumer, made)
        made += 1
        return to_message(tp, record)  # type: ignore[no-any-return]

    async def callback(record: ConsumerMessage) -> None:  # faust's conductor, for topics no inbox reads
        consumer.delivered_elsewhere.append(record.offset)

    async def seek(tp: TP, offset: int) -> None:
        consumer.sought.append((tp, offset))

    consumer._wait_next_records = wait_next_records
    consumer._to_message = message_of
    consumer.callback = callback
    consumer.seek = seek
    consumer.assignment = lambda: {record.tp for record in fetched}
    consumer.highwater = lambda tp: 0
    consumer.fetcher = fetcher
    consumer.flow_active = True
    consumer.suspend_flow.clear()
    return consumer  # type: ignore[no-any-return]


async def test_the_fetch_loop_hands_an_agents_records_to_its_inbox_and_the_rest_to_faust() -> None:
    box = inbox(size=10, capacity=10)
    fetched = [message(INGEST, 0, 0), message(OTHER, 0, 5), message(INGEST, 1, 7), message(INGEST, 0, 1)]
    consumer: Any = await consumer_with(box, fetched)
    await consumer._drain_messages(consumer.fetcher)
    assert [(m.partition, m.offset) for m in await box.take()] == [(0, 0), (0, 1), (1, 7)]  # a partition's run at once
    assert consumer.delivered_elsewhere == [5]
    assert consumer._read_offset[TP(INGEST, 0)] == 1 and consumer._read_offset[TP(INGEST, 1)] == 7


async def test_a_fetch_yields_every_delivered_record_and_tracks_each_partitions_end_offset_once() -> None:
    """The consumer's own ``getmany`` over a stubbed fetch: every record of the delivered partitions, a
    partition's run after another, and faust's end-offset gauge set once per partition and fetch."""
    tps = [TP(INGEST, 0), TP(INGEST, 1), TP(INGEST, 2)]
    fetch = {tp: [ConsumerRecord(tp.topic, tp.partition, o, 0, 0, b"k", b"v", None, 1, 1, [])
                  for o in range(3 * tp.partition, 3 * tp.partition + 3)] for tp in tps}
    consumer: Any = await consumer_with(inbox(), [])

    async def wait_next_records(timeout: float) -> tuple[Any, Any]:  # noqa: ASYNC109
        return fetch, {tps[0], tps[1]}  # partition 2 is not active (faust: paused or being revoked)

    tracked: list[tuple[TP, int]] = []
    consumer._wait_next_records = wait_next_records
    consumer.highwater = lambda tp: 100 + tp.partition
    consumer.app.monitor.track_tp_end_offset = lambda tp, offset: tracked.append((tp, offset))
    got = [(tp.partition, m.offset) async for tp, m in consumer.getmany(timeout=1.0)]
    assert got == [(0, 0), (0, 1), (0, 2), (1, 3), (1, 4), (1, 5)]
    assert sorted(tracked) == [(tps[0], 100), (tps[1], 101)]


async def test_getmany_cut_short_by_a_rebalance_seeks_back_what_it_did_not_yield() -> None:
    tps = [TP(INGEST, 0), TP(INGEST, 1)]
    fetch = {tp: [ConsumerRecord(tp.topic, tp.partition, o, 0, 0, b"k", b"v", None, 1, 1, []) for o in range(3)]
             for tp in tps}
    consumer: Any = await consumer_with(inbox(), [])

    async def wait_next_records(timeout: float) -> tuple[Any, Any]:  # noqa: ASYNC109
        return fetch, None

    consumer._wait_next_records = wait_next_records
    consumer.assignment = lambda: set(tps)
    got = []
    async for tp, m in consumer.getmany(timeout=1.0):
        got.append((tp.partition, m.offset))
        if len(got) == 2:
            consumer.stop_flow()  # what faust does first when partitions are revoked
    assert got == [(0, 0), (0, 1)] and sorted(consumer.sought) == [(tps[0], 2), (tps[1], 0)]


async def test_records_fetched_as_a_rebalance_suspends_the_flow_are_sought_back_not_dropped() -> None:
    """The flow is suspended while the fetch loop hands over the first partition's run (the rebalance's
    callbacks run at its next await): that run is in the inbox, the other partition is sought back to its
    first record and nothing of it reaches the inbox."""
    box = inbox(size=10, capacity=10)
    fetched = [message(INGEST, 0, 0), message(INGEST, 1, 3), message(INGEST, 0, 1), message(INGEST, 0, 2),
               message(INGEST, 1, 4)]

    def before(consumer: Any, i: int) -> None:
        if i == 1:
            asyncio.get_running_loop().call_soon(consumer.suspend_flow.set)

    consumer: Any = await consumer_with(box, fetched, before=before)
    await consumer._drain_messages(consumer.fetcher)
    assert [(m.partition, m.offset) for m in box._items] == [(0, 0), (0, 1), (0, 2)]
    assert consumer.sought == [(TP(INGEST, 1), 3)]


async def test_a_fetch_whose_records_do_not_continue_the_partition_goes_one_by_one() -> None:
    """Records read before are skipped; a jump in offsets is booked as faust would (and never committed over,
    streams.consumer); out-of-order records take the per-record path. The inbox gets exactly what the
    per-record loop would hand it."""
    box = inbox(size=20, capacity=20)
    fetched = [message(INGEST, 0, o) for o in (3, 4, 5, 6)] + [message(INGEST, 1, o) for o in (10, 12)]
    fetched += [message(INGEST, 2, o) for o in (7, 5, 8)]
    consumer: Any = await consumer_with(box, fetched)
    consumer._read_offset[TP(INGEST, 0)] = 5  # 3 and 4 read before; 5 again (as faust: only lower ones skipped)
    consumer._read_offset[TP(INGEST, 1)] = 8  # a hole: 9 was never fetched
    before = GaplessConsumer.skipped_jumps
    await consumer._drain_messages(consumer.fetcher)
    assert [(m.partition, m.offset) for m in box._items] == [(0, 5), (0, 6), (1, 10), (1, 12), (2, 7), (2, 8)]
    assert GaplessConsumer.skipped_jumps - before == 2  # 8 -> 10 and 10 -> 12 (2: 7 then 5 skipped, then 8)
    assert consumer._read_offset[TP(INGEST, 0)] == 6 and consumer._read_offset[TP(INGEST, 2)] == 8


async def test_a_full_inbox_holds_the_fetch_loop_until_the_agent_takes_a_batch() -> None:
    box = inbox(size=2, capacity=2)
    fetched = [message(INGEST, 0, offset) for offset in range(5)]
    consumer: Any = await consumer_with(box, fetched)
    loop = asyncio.create_task(consumer._drain_messages(consumer.fetcher))
    for _ in range(200):  # (a fixed 50 ms was once too short on a loaded machine)
        await asyncio.sleep(0.01)
        if len(box) == 2:
            break
    await asyncio.sleep(0.05)  # time to drop or overfill, were it to
    assert len(box) == 2 and not loop.done()  # waiting for space, not dropping
    taken = [m.offset for m in await box.take()]
    taken += [m.offset for m in await box.take()]
    taken += [m.offset for m in await box.take()]
    await asyncio.wait_for(loop, 1.0)
    assert taken == [0, 1, 2, 3, 4] and consumer.sought == []


async def test_a_full_inbox_when_a_rebalance_begins_seeks_the_waiting_record_back() -> None:
    box = inbox(size=1, capacity=1)
    fetched = [message(INGEST, 0, 0), message(INGEST, 0, 1), message(INGEST, 0, 2)]
    consumer: Any = await consumer_with(box, fetched)
    loop = asyncio.create_task(consumer._drain_messages(consumer.fetcher))
    await asyncio.sleep(0.05)
    consumer.stop_flow()  # what faust does first when partitions are revoked
    await asyncio.wait_for(loop, 1.0)
    assert [m.offset for m in box._items] == [0]
    assert consumer.sought == [(TP(INGEST, 0), 1)]


async def test_taken_records_are_awaited_by_a_rebalance_and_committable_only_once_acknowledged() -> None:
    box = inbox(size=10, capacity=10)
    fetched = [message(INGEST, 0, offset) for offset in range(3)]
    consumer: Any = await consumer_with(box, fetched)
    await consumer._drain_messages(consumer.fetcher)
    batch = await box.take()
    consumer.start_offsets[TP(INGEST, 0)] = 0
    consumer.track_batch(batch)
    assert len(consumer._unacked_messages) == 3  # faust's wait_empty waits for these in a rebalance
    assert consumer._new_offset(TP(INGEST, 0)) is None  # taken, not processed: nothing to commit
    consumer.ack_batch(batch)
    assert len(consumer._unacked_messages) == 0
    assert consumer._new_offset(TP(INGEST, 0)) == 3


async def test_a_batch_is_acknowledged_exactly_as_faust_acknowledges_its_records_one_by_one() -> None:
    """``ack_batch`` against faust's own ``ack`` per record (the oracle), on the same records: new offsets of
    two partitions, offsets below the committed one, a record read twice, one acknowledged before, and a
    topic faust does not commit for (no inbox's, not subscribed)."""
    def records() -> list[ConsumerMessage]:
        fetched = [message(INGEST, p, offset) for p in (0, 1) for offset in range(8)]
        fetched += [message(INGEST, 0, 3), message("alliance.not-subscribed", 0, 5)]  # read twice; no commits
        return fetched

    states = []
    for batched in (True, False):
        consumer: Any = await consumer_with(inbox(size=30, capacity=30), [])
        consumer._committed_offset[TP(INGEST, 1)] = 4  # offsets 0..3 of partition 1 were committed before
        batch = records()
        batch[6].acked = True  # acknowledged before (by an earlier batch)
        consumer.track_batch(batch)
        waiter = consumer._waiting_for_ack = asyncio.get_running_loop().create_future()
        if batched:
            consumer.ack_batch(batch)
        else:
            for m in batch:
                faust.transport.consumer.Consumer.ack(consumer, m)
        states.append(({tp: sorted(v) for tp, v in consumer._acked.items()},
                       {tp: set(v) for tp, v in consumer._acked_index.items()}, consumer._n_acked,
                       sorted((m.tp, m.offset) for m in consumer._unacked_messages), [m.acked for m in batch],
                       waiter.done()))
    assert states[0] == states[1]
    acked, _, n, unacked, flags, woken = states[0]
    assert n == 7 + 4 and acked[TP(INGEST, 1)] == [4, 5, 6, 7] and all(flags) and woken
    assert (TP(INGEST, 0), 6) in unacked  # (acknowledged before: not this batch's to take back)


async def test_faust_clears_the_inboxes_when_a_rebalance_suspends_the_flow() -> None:
    box = inbox()
    app = faust.App("inbox-clear", broker="kafka://127.0.0.1:1", store="memory://")
    install(app, inboxes=[box])
    box.put(message(INGEST, 0, 0))
    app.flow_control.clear()  # faust's _on_partitions_revoked: flow_control.suspend(), then clear()
    assert len(box) == 0 and box.cleared == 1


def test_batch_sensors_record_what_fausts_per_record_hooks_record() -> None:
    """streams.sensors.batch_in / batch_out for a batch against faust's four per-record hooks on the same
    records (the oracle), in faust's own monitor fields and in the Prometheus series (the per-stream label and
    the runtime histogram's values aside: the label names the agent, the runtime measures time)."""
    records = [message((INGEST, FAMILY)[i % 2], i % 3, 100 + i) for i in range(30)]

    def exposition(monitor: Sensors, registry: CollectorRegistry) -> list[str]:
        return [line for line in generate_latest(registry).decode().splitlines()
                if not line.startswith("#") and "runtime" not in line and "_created" not in line
                and "events_per_stream" not in line]

    def fields(monitor: Sensors) -> tuple[Any, ...]:
        return (monitor.messages_received_total, monitor.messages_active, monitor.events_total,
                monitor.events_active, dict(monitor.messages_received_by_topic), dict(monitor.tp_read_offsets))

    oracle_registry, batch_registry = CollectorRegistry(), CollectorRegistry()
    oracle = Sensors(metrics=FaustMetrics.create(oracle_registry, "faust"))
    batched = Sensors(metrics=FaustMetrics.create(batch_registry, "faust"))

    class Owner:
        pass

    class Stream:
        shortlabel, task_owner = "Stream: ingest", Owner()

    stream = Stream()
    for record in records:
        oracle.on_message_in(record.tp, record.offset, record)
        state = oracle.on_stream_event_in(record.tp, record.offset, stream, None)  # type: ignore[arg-type]
        assert fields(oracle)[1] > 0
        oracle.on_stream_event_out(record.tp, record.offset, stream, None, state)  # type: ignore[arg-type]
        oracle.on_message_out(record.tp, record.offset, record)
    time_in = batch_in(batched, "ingest", records)
    assert batched.messages_active == 30 and batched.events_active == 30
    batch_out(batched, records, time_in)
    assert fields(batched) == fields(oracle)
    assert exposition(batched, batch_registry) == exposition(oracle, oracle_registry)
    runtime_count = [line for line in generate_latest(batch_registry).decode().splitlines()
                     if line.startswith("faust_events_runtime_ms_count")]
    assert runtime_count == ["faust_events_runtime_ms_count 30.0"]
    assert 'faust_total_events_per_stream_total{stream="stream.ingest.events"} 30.0' in \
        generate_latest(batch_registry).decode()


async def test_the_worker_consumer_holds_an_empty_fetch_briefly_not_faust_s_1500_ms() -> None:
    """aiokafka sends no second fetch to a broker while one is open and leaves out of it the partitions whose
    records were still buffered: a record arriving on such a partition waits until the open fetch returns,
    up to its hold time (streams.consumer.FETCH_MAX_WAIT_MS)."""
    from streams.consumer import FETCH_MAX_WAIT_MS

    app = faust.App("inbox-fetch-wait", broker="kafka://127.0.0.1:1", store="memory://")
    plain = faust.App("plain-fetch-wait", broker="kafka://127.0.0.1:1", store="memory://")
    install(app)
    ours = app.consumer._thread._create_worker_consumer(app.transport)  # type: ignore[attr-defined]
    fausts = plain.consumer._thread._create_worker_consumer(plain.transport)  # type: ignore[attr-defined]
    assert fausts._fetch_max_wait_ms == 1500  # what faust fixes (the test fails if faust changes it)
    assert ours._fetch_max_wait_ms == FETCH_MAX_WAIT_MS <= 200


async def test_large_records_fill_an_inbox_by_their_bytes_not_only_their_count() -> None:
    """A university sending records of a megabyte: the inbox stops taking them at its byte budget (the fetch
    loop then waits), and a record larger than the whole budget still passes alone."""
    box = Inbox("ingest", [INGEST], size=10, within=0.0, capacity=100, max_bytes=3 * 1024 * 1024)
    big = [ConsumerMessage(INGEST, 0, offset, time.time(), 0, [], b"k", b"x" * (1024 * 1024), None, 1, 1,
                           TP(INGEST, 0), generation_id=1) for offset in range(5)]
    consumer: Any = await consumer_with(box, big)
    loop = asyncio.create_task(consumer._drain_messages(consumer.fetcher))
    await asyncio.sleep(0.05)
    assert len(box) == 3 and box.full() and not loop.done()  # 3 MiB held, the fetch loop waits
    assert [m.offset for m in await box.take()] == [0, 1, 2]
    assert box.bytes == 0
    taken = [m.offset for m in await box.take()]
    await asyncio.wait_for(loop, 1.0)
    taken += [m.offset for m in box._items]
    assert taken == [3, 4] and consumer.sought == []
    huge = Inbox("ingest", [INGEST], size=10, within=0.0, capacity=100, max_bytes=1024)
    huge.put(big[0])  # larger than the budget: taken alone, the inbox is full until then
    assert huge.full() and [m.offset for m in await huge.take()] == [0] and not huge.full()


async def _served(box: Inbox, handle: Any) -> tuple[faust.App, Any]:
    """An app serving ``box`` with ``handle`` as the worker does, its flow resumed in generation 1 (never
    connected); returns the app and its agent's coroutine function."""
    app = faust.App(f"served-{id(box)}", broker="kafka://127.0.0.1:1", store="memory://")
    install(app, inboxes=[box])
    serve_inbox(app, box, handle)
    await app.topics._update_indices()
    app.consumer_generation_id = 1
    app.flow_control.resume()
    app.consumer.start_offsets[TP(INGEST, 0)] = 0  # type: ignore[attr-defined]
    return app, app._app_tasks[-1]  # type: ignore[attr-defined]


async def test_the_agent_acknowledges_a_batch_only_once_its_handler_returned() -> None:
    box = inbox(size=3, within=0.0)
    handled: list[list[int]] = []
    gate = asyncio.Event()

    async def handle(batch: Sequence[ConsumerMessage]) -> None:
        handled.append([m.offset for m in batch])
        await gate.wait()  # the flush, waiting for the broker

    app, agent = await _served(box, handle)
    consumer: Any = app.consumer
    task = asyncio.create_task(agent())
    for offset in range(3):
        box.put(message(INGEST, 0, offset))
    await asyncio.sleep(0.05)
    assert handled == [[0, 1, 2]]
    assert consumer._new_offset(TP(INGEST, 0)) is None and len(consumer._unacked_messages) == 3
    gate.set()
    await asyncio.sleep(0.05)
    assert consumer._new_offset(TP(INGEST, 0)) == 3 and len(consumer._unacked_messages) == 0
    box.put(message(INGEST, 0, 3, generation=0))  # fetched before a rebalance: not processed, not acknowledged
    await asyncio.sleep(0.05)
    assert handled == [[0, 1, 2]] and consumer._new_offset(TP(INGEST, 0)) is None
    task.cancel()


class Stopped(BaseException):
    pass


async def test_a_failing_batch_stops_the_worker_with_nothing_of_it_acknowledged(monkeypatch: Any) -> None:
    import streams.app

    stopped: list[tuple[str, list[int]]] = []

    def stop(agent: str, batch: Sequence[ConsumerMessage]) -> None:  # instead of os._exit
        stopped.append((agent, [m.offset for m in batch]))
        raise Stopped

    async def handle(batch: Sequence[ConsumerMessage]) -> None:
        raise RuntimeError("the broker refused a write")

    monkeypatch.setattr(streams.app, "stop_without_committing", stop)
    box = inbox(size=2, within=0.0)
    app, agent = await _served(box, handle)
    box.put(message(INGEST, 0, 0))
    box.put(message(INGEST, 0, 1))
    with pytest.raises(Stopped):
        await asyncio.wait_for(agent(), 1.0)
    assert stopped == [("ingest", [0, 1])]
    assert app.consumer._new_offset(TP(INGEST, 0)) is None  # type: ignore[attr-defined]


class Steps:
    """A staged agent (streams.app.Staged) that logs its phases; each launched batch completes when its gate
    opens (its writes acknowledged), or fails then if listed in ``fail``."""

    def __init__(self, acked: Any = lambda: None) -> None:
        self.acked = acked  # what the consumer has acknowledged so far (logged with each launch)
        self.after_launch: Any = lambda offsets: None
        self.log: list[tuple[Any, ...]] = []
        self.gates: dict[int, asyncio.Event] = {}
        self.fail: set[int] = set()

    def compute(self, batch: Sequence[ConsumerMessage], pending: Any) -> list[int]:
        offsets = [m.offset for m in batch]
        self.log.append(("compute", offsets, dict(pending.get("t", {}))))
        return offsets

    def launch(self, batch: Sequence[ConsumerMessage], computed: list[int]) -> tuple[Any, Any]:
        self.log.append(("launch", computed, self.acked()))
        self.after_launch(computed)
        gate = self.gates[computed[0]] = asyncio.Event()

        async def complete() -> None:
            await gate.wait()
            if computed[0] in self.fail:
                raise RuntimeError("the broker refused a write")
            self.log.append(("completed", computed))

        return complete(), {"t": {f"k{offset}": offset for offset in computed}}


async def test_a_staged_agent_computes_the_next_batch_while_the_previous_one_completes_and_sends_it_after() -> None:
    """The next batch is computed (reading through the previous one's pending entries) while the broker
    acknowledges the previous batch, and launched only once that batch completed and was acknowledged."""
    box = inbox(size=2, within=0.0)
    steps = Steps()
    app, agent = await _served(box, steps)
    consumer: Any = app.consumer
    steps.acked = lambda: sorted(consumer._acked[TP(INGEST, 0)])
    for offset in range(4):
        box.put(message(INGEST, 0, offset))
    task = asyncio.create_task(agent())
    await asyncio.sleep(0.05)
    assert steps.log == [("compute", [0, 1], {}), ("launch", [0, 1], []), ("compute", [2, 3], {"k0": 0, "k1": 1})]
    assert consumer._new_offset(TP(INGEST, 0)) is None  # nothing acknowledged while [0, 1] waits for the broker
    steps.gates[0].set()
    await asyncio.sleep(0.05)
    assert steps.log[3:] == [("completed", [0, 1]), ("launch", [2, 3], [0, 1])]  # acknowledged, then launched
    steps.gates[2].set()  # with nothing more to compute, the last batch completes and is acknowledged at once
    await asyncio.sleep(0.05)
    assert steps.log[5:] == [("completed", [2, 3])] and consumer._new_offset(TP(INGEST, 0)) == 4
    task.cancel()


async def test_a_batch_computed_when_a_rebalance_began_is_dropped_unsent_and_unacknowledged() -> None:
    box = inbox(size=2, within=0.0)
    steps = Steps()
    app, agent = await _served(box, steps)
    consumer: Any = app.consumer
    for offset in range(4):
        box.put(message(INGEST, 0, offset))
    task = asyncio.create_task(agent())
    await asyncio.sleep(0.05)
    assert steps.log[-1] == ("compute", [2, 3], {"k0": 0, "k1": 1})
    app.flow_control.suspend()  # a rebalance begins while [0, 1] waits for the broker (it waits for it too)
    steps.gates[0].set()
    await asyncio.sleep(0.05)
    assert steps.log[3:] == [("completed", [0, 1])]  # [2, 3] never launched: read again after the rebalance
    assert consumer._new_offset(TP(INGEST, 0)) == 2
    assert not consumer._unacked_messages  # nor tracked: the rebalance does not wait for it
    task.cancel()


async def test_a_failing_completion_stops_the_worker_before_the_next_batch_is_sent(monkeypatch: Any) -> None:
    import streams.app

    stopped: list[tuple[str, list[int]]] = []

    def stop(agent: str, batch: Sequence[ConsumerMessage]) -> None:
        stopped.append((agent, [m.offset for m in batch]))
        raise Stopped

    monkeypatch.setattr(streams.app, "stop_without_committing", stop)
    box = inbox(size=2, within=0.0)
    steps = Steps()
    steps.fail.add(0)
    app, agent = await _served(box, steps)
    for offset in range(4):
        box.put(message(INGEST, 0, offset))
    run = asyncio.create_task(agent())
    await asyncio.sleep(0.05)
    steps.gates[0].set()
    with pytest.raises(Stopped):
        await asyncio.wait_for(run, 1.0)
    assert stopped == [("ingest", [0, 1])]  # the batch whose writes failed, nothing of it acknowledged
    assert [entry[0] for entry in steps.log] == ["compute", "launch", "compute"]  # [2, 3]: computed, never sent
    assert app.consumer._new_offset(TP(INGEST, 0)) is None  # type: ignore[attr-defined]


async def test_a_batch_of_a_new_generation_waits_for_the_last_one_and_is_dropped_if_a_rebalance_began_then() -> None:
    """A batch of the next generation completes the previous generation's batch before it is computed (its
    entries may be of partitions that moved), and is not launched when another rebalance began meanwhile."""
    box = inbox(size=2, within=0.0)
    steps = Steps()
    app, agent = await _served(box, steps)

    def rebalanced(offsets: list[int]) -> None:  # right after [0, 1] was launched, a rebalance ends: [2, 3]
        app.consumer_generation_id = 2           # is fetched in generation 2
        box.put(message(INGEST, 0, 2, generation=2))
        box.put(message(INGEST, 0, 3, generation=2))

    steps.after_launch = lambda offsets: rebalanced(offsets) if offsets == [0, 1] else None
    box.put(message(INGEST, 0, 0))
    box.put(message(INGEST, 0, 1))
    task = asyncio.create_task(agent())
    await asyncio.sleep(0.05)
    assert steps.log == [("compute", [0, 1], {}), ("launch", [0, 1], None)]  # [2, 3] waits for [0, 1]
    app.flow_control.suspend()  # and another rebalance begins before [0, 1] completes
    steps.gates[0].set()
    await asyncio.sleep(0.05)
    assert steps.log[2:] == [("completed", [0, 1])]  # [2, 3]: neither computed nor launched
    task.cancel()
