"""State growth: worker memory and restart time after 1, 5 and 10 days of events, on the RocksDB table store
(streams.store) against the in-memory store measured in the same run.

One worker per store, static membership, a fresh app id. The days (different simulated days, different
seeds: every event is new; entity ids repeat across days, so postings, fairs and mentors gather events day after
day, as long-lived entities do) are published one at a time, each applied before the next (so every
day meets the same backlog). At each step (1, 5, 10 days) the worker's resident memory is read from /proc,
then it is stopped gracefully and started again with the same identity: the restart time is from the start
to the first /readyz 200 (readiness needs the tables recovered), and its memory is read again once it is
ready. Each step's last day is timed from publishing to applied, and the worker's CPU time over that span is
read from the kernel (per event: the host's speed and the publishing are in the rate, not in what the worker
did). The ratios (10 days vs 1 day) are the result; nothing here has a timing threshold. A store's topics are
dropped once it is measured, so the next store does not run beside its days of history.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from bench import kafka_io, workload
from bench.env import Services, drop_topics, provision_run
from bench.procfs import cpu_seconds, rss_mb
from bench.report import BenchError
from bench.worker import Worker
from events.simulator import DEFAULT_DAY
from infra.processes import wait_until

STEPS = (1, 5, 10)  # days of history at each measurement
STORES = ("memory", "rocksdb")
APPLY_TIMEOUT_S = 900.0


@dataclass(frozen=True)
class Point:
    store: str
    days: int
    events: int  # applied since the worker's first start
    rss_mb: float  # after applying the days
    restart_s: float  # graceful stop excluded: start -> ready
    rss_after_restart_mb: float
    day_events_per_s: float  # the step's last day: its events over the time from publishing to applied
    day_cpu_us_per_event: float  # the worker's CPU time (kernel) over the same span, per event of the day


def day_items(index: int, per_day: int) -> list[workload.Item]:
    """Day ``index`` (0-based) of the history: an earlier simulated day with its own seed."""
    return workload.load_items(per_day, seed=1000 + index, day=DEFAULT_DAY - timedelta(days=index))


def measure(svc: Services, per_day: int, log_dir: Path, progress: Callable[[str], None],
            steps: tuple[int, ...] = STEPS) -> list[Point]:
    points: list[Point] = []
    days = [day_items(i, per_day) for i in range(max(steps))]  # the same history for both stores
    for store in STORES:
        app_id = f"bench-{svc.run_id}-state-{store}"
        suffix = svc.suffix(f"state-{store}")
        w = Worker(svc, suffix, app_id, log_dir,
                   env={"ALLIANCE_TABLE_STORE": store, "ALLIANCE_WORKER_INSTANCE_ID": app_id})
        goal = 0  # events published since the worker's last (re)start: its counter starts from zero
        try:
            provision_run(svc, suffix, app_id=app_id)
            w.start()
            w.wait_ready(180)
            for target in range(1, max(steps) + 1):
                # one day at a time, each applied before the next: every step carries the same backlog, so
                # what differs between 1 and 10 days is the history only (5 days published at once had
                # measured faust's buffers holding a 100,000-event backlog, not the state)
                day = days[target - 1]
                assert w.proc is not None
                t_day, cpu_day = time.monotonic(), cpu_seconds(w.proc.pid)
                kafka_io.load(svc.kafka, day, suffix)
                goal += len(day)

                def applied(goal: int = goal, w: Worker = w) -> tuple[bool, str]:
                    done = w.processed("tables")
                    return done >= goal, f"{done:,} of {goal:,} events applied"

                wait_until(applied, APPLY_TIMEOUT_S, f"{store}: {target} days applied", on_fail=w.log_tail,
                           interval=0.5, error=BenchError)
                day_rate = len(day) / (time.monotonic() - t_day)
                day_cpu_us = (cpu_seconds(w.proc.pid) - cpu_day) / len(day) * 1e6
                if target not in steps:
                    continue
                goal = 0
                rss = rss_mb(w.proc.pid)
                if w.stop(timeout=60) != 0:
                    raise BenchError(f"{store}: the worker's graceful stop failed:\n{w.log_tail(20)}")
                t0 = time.monotonic()
                w.start()
                w.wait_ready(600)
                restart_s = time.monotonic() - t0
                assert w.proc is not None
                points.append(Point(store, target, sum(len(d) for d in days[:target]), round(rss, 1),
                                    round(restart_s, 2), round(rss_mb(w.proc.pid), 1), round(day_rate, 1),
                                    round(day_cpu_us, 1)))
                progress(f"state {store}: {target} days ({points[-1].events:,} events): day {target} applied at "
                         f"{day_rate:,.0f} events/s ({day_cpu_us:.0f} µs of the worker's CPU per event), "
                         f"RSS {rss:.0f} MB, "
                         f"restart {restart_s:.1f} s, RSS after restart {points[-1].rss_after_restart_mb:.0f} MB")
        finally:
            w.stop()
            drop_topics(svc, f"state-{store}", progress)  # the next store does not run beside 10 days of them
    return points
