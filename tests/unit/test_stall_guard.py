"""streams.lag.StallGuard: which partitions it rewinds, and to where (the decision logic, with a stand-in
for faust's consumer; the two-worker integration tests run it against the real one)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple

from prometheus_client import CollectorRegistry

from streams.lag import StallGuard
from streams.metrics import PipelineMetrics


class TP(NamedTuple):
    topic: str
    partition: int


@dataclass
class FakeConsumer:
    committed: dict[TP, int | None]
    sought: list[dict[TP, int]] = field(default_factory=list)
    start_offsets: dict[TP, int] = field(default_factory=dict)  # as streams.consumer.GaplessConsumer

    @property
    def _committed_offset(self) -> dict[TP, int | None]:
        return self.committed

    def assignment(self) -> set[TP]:
        return set(self.committed)

    async def seek_wait(self, partitions: dict[TP, int]) -> None:
        self.sought.append(dict(partitions))


@dataclass
class FakeApp:
    consumer: FakeConsumer
    rebalancing: bool = False
    in_recovery: bool = False


EVENTS = TP("alliance.events.recruitment", 2)
INGEST = TP("alliance.ingest.scu", 0)
AGENT_OF = {EVENTS.topic: "tables", INGEST.topic: "ingest"}


def make(committed: dict[TP, int | None], last_batch_at: dict[str, float]) -> tuple[StallGuard, FakeApp, Any]:
    app = FakeApp(FakeConsumer(committed))
    metrics = PipelineMetrics(CollectorRegistry())
    return StallGuard(app, AGENT_OF.get, last_batch_at, metrics, stall_s=20.0, busy_stall_s=60.0), app, metrics


def rewinds(metrics: PipelineMetrics, agent: str) -> float:
    return metrics.partition_rewinds.labels(agent=agent)._value.get()


async def test_rewinds_a_partition_with_lag_whose_offset_and_agent_stood_still() -> None:
    guard, app, metrics = make({EVENTS: 15, INGEST: 700}, {"tables": 0.0, "ingest": 0.0})
    lags = {(EVENTS.topic, 2): 1316, (INGEST.topic, 0): 0}
    assert await guard.check(lags, now=100.0) == []  # first sight: starts the clock
    assert await guard.check(lags, now=110.0) == []  # 10 s < stall_s
    assert await guard.check(lags, now=121.0) == [EVENTS]
    assert app.consumer.sought == [{EVENTS: 15}]
    assert rewinds(metrics, "tables") == 1 and rewinds(metrics, "ingest") == 0
    assert await guard.check(lags, now=131.0) == []  # the next rewind waits stall_s again
    assert await guard.check(lags, now=142.0) == [EVENTS]


async def test_leaves_partitions_alone_while_they_move_or_their_agent_works() -> None:
    last_batch_at = {"tables": 0.0}
    guard, app, _ = make({EVENTS: 15}, last_batch_at)
    lags = {(EVENTS.topic, 2): 500}
    await guard.check(lags, now=100.0)
    app.consumer.committed[EVENTS] = 400  # committed moved: the clock restarts
    assert await guard.check(lags, now=125.0) == []
    last_batch_at["tables"] = 140.0  # the agent had a batch 10 s ago: its buffer may hold the records
    assert await guard.check(lags, now=150.0) == []
    assert await guard.check({(EVENTS.topic, 2): 0}, now=175.0) == []  # caught up
    assert await guard.check({(EVENTS.topic, 2): 0}, now=200.0) == []
    assert app.consumer.sought == []


async def test_does_nothing_during_a_rebalance_and_restarts_its_clocks_after() -> None:
    guard, app, _ = make({EVENTS: None}, {})
    lags = {(EVENTS.topic, 2): 50}
    await guard.check(lags, now=100.0)
    app.rebalancing = True
    assert await guard.check(lags, now=130.0) == []
    app.rebalancing = False
    assert await guard.check(lags, now=140.0) == []  # clock restarted at 140
    assert await guard.check(lags, now=161.0) == [EVENTS]
    assert app.consumer.sought == [{EVENTS: 0}]  # nothing committed yet: from the start


async def test_rewinds_after_busy_stall_s_while_the_agent_keeps_working_on_other_partitions() -> None:
    last_batch_at = {"tables": 0.0}
    guard, app, _ = make({EVENTS: 15}, last_batch_at)
    lags = {(EVENTS.topic, 2): 900}
    await guard.check(lags, now=100.0)
    for now in (110.0, 130.0, 150.0):  # the agent has batches all the time (other partitions)
        last_batch_at["tables"] = now - 1
        assert await guard.check(lags, now=now) == []
    last_batch_at["tables"] = 160.0
    assert await guard.check(lags, now=161.0) == [EVENTS]  # 61 s without a commit on this partition
    assert app.consumer.sought == [{EVENTS: 15}]


async def test_learns_where_uncommitted_partitions_start_and_rewinds_there() -> None:
    asked: list[list[TP]] = []

    async def starts(tps: list[TP]) -> dict[TP, int]:  # the group's committed offset in Kafka, or the log start
        asked.append(sorted(tps))
        return {tp: 5000 for tp in tps}

    app = FakeApp(FakeConsumer({EVENTS: None, INGEST: 12}))
    guard = StallGuard(app, AGENT_OF.get, {}, None, stall_s=20.0, starts=starts)
    lags = {(EVENTS.topic, 2): 300}
    await guard.check(lags, now=100.0)
    assert asked == [[EVENTS]]  # only partitions faust has no committed offset for
    assert app.consumer.start_offsets == {EVENTS: 5000}
    assert await guard.check(lags, now=121.0) == [EVENTS]
    assert app.consumer.sought == [{EVENTS: 5000}]


async def test_gives_up_after_three_rewinds_without_progress_and_asks_for_a_restart() -> None:
    stuck: list[TP] = []
    app = FakeApp(FakeConsumer({EVENTS: 15}))
    guard = StallGuard(app, AGENT_OF.get, {}, None, stall_s=6.0, on_stuck=stuck.append)
    lags = {(EVENTS.topic, 2): 300}
    now = 100.0
    await guard.check(lags, now=now)
    rewinds = 0
    while rewinds < 3:
        now += 2.0
        rewinds += len(await guard.check(lags, now=now))
        if rewinds < 3:
            assert stuck == []
    assert stuck == [EVENTS]  # the committed offset never moved across three rewinds
    app.consumer.committed[EVENTS] = 200  # progress: a later stall starts counting again (and only once)
    for _ in range(10):
        now += 2.0
        await guard.check(lags, now=now)
    assert stuck == [EVENTS]


async def test_a_starved_agent_is_not_a_reason_to_restart_a_busy_worker() -> None:
    """A large backlog: the tables agent works through it while the rollup agent's records wait behind its
    full buffer (faust dispatches fetched records in order). Rewinds, but no restart while any agent keeps
    finishing batches; once the worker is idle and the partition still stands, it gives up."""
    stuck: list[TP] = []
    last_batch_at = {"ingest": 0.0, "tables": 100.0}
    app = FakeApp(FakeConsumer({EVENTS: 15, INGEST: 40}))
    guard = StallGuard(app, AGENT_OF.get, last_batch_at, None, stall_s=6.0, busy_stall_s=6.0,
                       on_stuck=stuck.append)
    lags = {(INGEST.topic, 0): 300}  # the ingest partition stands still, the tables agent is busy
    now = 100.0
    await guard.check(lags, now=now)
    rewinds = 0
    for _ in range(40):
        now += 2.0
        last_batch_at["tables"] = now - 1.0
        rewinds += len(await guard.check(lags, now=now))
    assert rewinds >= 3 and stuck == []
    for _ in range(10):  # the backlog is done, every agent is idle, the partition has not moved: restart
        now += 2.0
        await guard.check(lags, now=now)
    assert stuck == [INGEST]


async def test_a_busy_worker_is_restarted_after_all_if_a_partition_stands_for_busy_give_up_s() -> None:
    stuck: list[TP] = []
    last_batch_at = {"ingest": 0.0, "tables": 100.0}
    app = FakeApp(FakeConsumer({EVENTS: 15, INGEST: 40}))
    guard = StallGuard(app, AGENT_OF.get, last_batch_at, None, stall_s=6.0, busy_stall_s=6.0,
                       on_stuck=stuck.append, busy_give_up_s=120.0)
    lags = {(INGEST.topic, 0): 300}
    now = 100.0
    while not stuck and now < 400.0:  # the tables agent never stops working
        now += 2.0
        last_batch_at["tables"] = now - 1.0
        await guard.check(lags, now=now)
    assert stuck == [INGEST] and 200.0 < now < 300.0


def test_a_rebalance_that_never_ends_restarts_the_worker_once() -> None:
    """Seen after a broker bounce: both workers stuck 'rebalancing' for minutes, fetching nothing."""
    stuck: list[Any] = []
    app = FakeApp(FakeConsumer({EVENTS: 15}), rebalancing=True)
    guard = StallGuard(app, AGENT_OF.get, {}, on_stuck=stuck.append, rebalance_stuck_s=120.0)
    assert not guard.watch_rebalance(now=1000.0)
    assert not guard.watch_rebalance(now=1119.0) and stuck == []  # a long rebalance is not yet a stuck one
    app.rebalancing = False
    assert not guard.watch_rebalance(now=1130.0)  # it ended: the clock starts again with the next one
    app.in_recovery = True
    assert not guard.watch_rebalance(now=1200.0)
    assert not guard.watch_rebalance(now=1310.0) and stuck == []
    assert guard.watch_rebalance(now=1321.0) and stuck == [None]
    assert not guard.watch_rebalance(now=2000.0) and stuck == [None]  # once: the stop is under way
