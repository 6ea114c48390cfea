"""Pipeline throughput (1 or 2 workers, 3 or 6 ingest partitions) against a bare consume loop, and the
produce -> aggregated-topic latency at a steady load."""

from __future__ import annotations

import asyncio
import json
import os
import pstats
import shutil
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

from bench import kafka_io, workload
from bench.env import Services, drop_topics, provision_run
from bench.kafka_io import Progress
from bench.peer_steps import output_suffix
from bench.procfs import CpuTrace, cpu_seconds, machine_busy_seconds
from bench.profile import Hotspot, hotspots, own_time_by_area
from bench.report import BenchError, percentile
from bench.worker import Worker, total
from core.kafka_access import ADMIN
from events.base import Event
from events.codec import decode
from events.corrections import EventCorrected, EventRetracted
from events.errors import EventValidationError
from events.reference import UNIVERSITIES
from events.services import SeekerErasureRequested
from events.topics import (
    AGG_PARTITIONS,
    EVENT_PARTITIONS,
    INGEST_PARTITIONS,
    PARTIALS_TOPIC,
    Family,
    agg_topic,
    family_topic,
    ingest_topic,
)
from infra.processes import wait_until
from streams.contributions import parse_dimkey
from streams.windows import window_counts

POLL_S = 0.2
STALL_S = 45.0  # no progress for this long = failure (with the worker's log)


@dataclass(frozen=True)
class Timing:
    """A timed drain: from the first batch the workers began to ``expected`` events applied (their own clocks,
    ``/freshness/``), or, timed by the poll (``own_clock=False``), from the first ingest progress seen."""

    seconds: float
    startup_seconds: float  # worker start -> its first batch (the poll clock: -> the first ingest progress seen)
    events: int  # applied within the window
    cpu_seconds: float  # the workers' user + system CPU time within the window (bench.procfs)

    @property
    def rate(self) -> float:
        """Events/s."""
        return self.events / self.seconds

    @property
    def cpu_us_per_event(self) -> float:
        return self.cpu_seconds / self.events * 1e6

    @property
    def busy(self) -> float:
        """Share of one core the workers used over the window (a single-threaded loop is bound near 1.0)."""
        return self.cpu_seconds / self.seconds


@dataclass
class PipelineRun:
    events: int
    partitions: int
    workers: int
    suffix: str
    load_seconds: float
    baseline_rate: float | None
    noop_rate: float | None  # faust no-op agent over the same topics (the framework ceiling)
    timing: Timing  # of the workers
    peers: dict[tuple[str, str], Timing] = field(default_factory=dict)  # (topology, guarantee) -> its timing


@contextmanager
def running_workers(svc: Services, suffix: str, app_id: str, count: int, log_dir: Path) -> Iterator[list[Worker]]:
    workers = [Worker(svc, suffix, app_id, log_dir) for _ in range(count)]
    try:
        for w in workers:
            w.start()
        yield workers
    finally:
        for w in workers:
            w.stop()


def _cpu(workers: list[Worker]) -> float:
    return sum(cpu_seconds(w.proc.pid) for w in workers if w.proc is not None)


class TooFastToTime(BenchError):
    """The workers finished before the clock could start (within one poll)."""


def _stamp(iso: str | None) -> float | None:
    return None if not iso else datetime.fromisoformat(iso).timestamp()


def own_window(freshness: Sequence[Mapping[str, Any]]) -> tuple[float, float]:
    """(first, last): when the first of the workers began its first ingest batch and when the last of them
    completed its last tables batch, as they report them (``first_batch_at`` / ``last_batch_at``)."""
    firsts = [_stamp((f.get("ingest") or {}).get("first_batch_at")) for f in freshness]
    lasts = [_stamp((f.get("tables") or {}).get("last_batch_at")) for f in freshness]
    began, ended = [t for t in firsts if t is not None], [t for t in lasts if t is not None]
    if not began or not ended:
        raise BenchError("the workers' /freshness/ reports no first ingest batch or no last tables batch "
                         "(first_batch_at / last_batch_at): a worker of an earlier version? (time it by the poll)")
    return min(began), max(ended)


def measure_workers(workers: list[Worker], expected: int, timeout: float, progress: Progress,
                    own_clock: bool = True) -> Timing:
    """Poll /freshness/ every 0.2 s until the tables agent has processed ``expected`` events (or fail: the
    timeout, a stall, a dead worker).

    The drain is timed by the workers' own clocks: from the moment the first began its first ingest batch to
    the moment the last completed the tables batch that reached ``expected``, all ``expected`` events, and
    their CPU time between those two moments (read from /proc every 10 ms, bench.procfs.CpuTrace). The peer
    (bench.quix_peer) reports the same two moments, per record. With ``own_clock=False`` (an earlier revision's
    worker may not report them) the clock is the poll's: it starts when ingest first reports progress, i.e.
    after the workers' first ingest batch completed and up to a poll later, and stops at the poll that sees
    ``expected``; the events applied before the start are left out. That window leaves out the first batch
    (~0.1-0.4 s of a ~2 s drain, docs/benchmarks.md, eighteenth session): use it only to compare workers with
    each other."""
    started = min(w.started_at for w in workers)
    deadline = time.monotonic() + timeout
    t0: float | None = None
    tables_at_t0 = 0
    cpu_at_t0 = 0.0
    last_report = 0.0
    last_counts, last_change = (-1, -1), time.monotonic()
    # the CPU time at the workers' own two moments (the poll's clock reads it at its polls instead)
    trace = CpuTrace([w.proc.pid for w in workers if w.proc is not None]) if own_clock else None
    with trace or nullcontext():
        while True:
            now = time.monotonic()
            if now > deadline:
                done = total(workers, "tables")
                raise BenchError(f"pipeline processed {done} of {expected} events in {timeout:.0f}s\n"
                                 + "\n".join(w.log_tail(15) for w in workers))
            ingest = total(workers, "ingest")
            tables = total(workers, "tables")
            if (ingest, tables) != last_counts:
                last_counts, last_change = (ingest, tables), now
            elif t0 is not None and now - last_change > STALL_S:
                raise BenchError(f"pipeline stalled at ingest {ingest}, tables {tables} of {expected} for "
                                 f"{STALL_S:.0f}s (an agent crashed?)\n" + "\n".join(w.log_tail(20) for w in workers))
            if t0 is None and ingest > 0:
                t0, tables_at_t0, cpu_at_t0 = now, tables, _cpu(workers)
            if tables >= expected:
                break
            if now - last_report > 2.0:
                progress(f"  ... ingest {ingest:,}  tables {tables:,} / {expected:,}")
                last_report = now
            time.sleep(POLL_S)
    assert t0 is not None
    if trace is not None:
        if trace.error is not None:  # a worker gone before the end: its CPU time is not known
            raise trace.error
        first, last = own_window([w.json("/freshness/") or {} for w in workers])
        if last <= first:
            raise BenchError(f"the workers report their last tables batch ({last}) before their first ingest "
                             f"batch ({first})")
        mono_first = first - (time.time() - time.monotonic())  # (the start is monotonic)
        return Timing(last - first, mono_first - started, expected, trace.at(last) - trace.at(first))
    seconds = now - t0
    n = expected - tables_at_t0
    if seconds <= 0 or n <= 0:
        raise TooFastToTime(f"all {expected:,} events were processed within one {POLL_S}s poll: too few "
                            "to time (use --events with more)")
    return Timing(seconds, t0 - started, n, _cpu(workers) - cpu_at_t0)


def pipeline_run(svc: Services, items: Sequence[workload.Item], *, label: str, log_dir: Path,
                 partitions: int = INGEST_PARTITIONS, workers: int = 1, baseline: bool = True,
                 progress: Progress = print, keep: list[Worker] | None = None,
                 steady: bool = False, peers: Sequence[tuple[str, str]] = (),
                 env: dict[str, str] | None = None, own_clock: bool = True) -> PipelineRun:
    """Load ``items`` into freshly provisioned suffixed topics, time the bare loop over them, then the
    workers, then the Quix Streams peer in each (topology, guarantee) of ``peers`` (bench.quix_peer) over
    the same topics. With ``keep`` the workers stay running (appended to ``keep``; the caller stops them).

    ``steady``: the workers start first and the events are loaded once every worker holds its partitions,
    so the rate is the one of a running group, without the start-up rebalance of workers that join
    together on a backlog (which docs/streams.md covers). ``env``: more environment for the workers (an
    earlier revision's tree first on their path: bench.revision). ``own_clock``: see :func:`measure_workers`."""
    suffix = svc.suffix(label)
    provision_run(svc, suffix, ingest_partitions=partitions, app_id=f"bench-{svc.run_id}")
    load_s = 0.0
    if not steady:
        load_s = kafka_io.load(svc.kafka, items, suffix)
        progress(f"  loaded {len(items):,} events into {suffix} ({partitions} ingest partitions) in {load_s:.1f}s")
    base_rate: float | None = None
    noop_rate: float | None = None
    if baseline and not steady:
        topics = [ingest_topic(u) + suffix for u in UNIVERSITIES]
        res = asyncio.run(kafka_io.bare_consume(svc.kafka(ADMIN), topics, len(items)))
        base_rate = res.rate
        progress(f"  bare aiokafka loop: {res.records:,} records, {base_rate:,.0f}/s")
        noop_rate = noop_run(svc, suffix, label, len(items), log_dir, partitions, progress)
    app_id = f"bench-{svc.run_id}-{label}"
    ws = [Worker(svc, suffix, app_id, log_dir,
                 env={"ALLIANCE_INGEST_PARTITIONS": str(partitions), **(env or {})}) for _ in range(workers)]
    handed_over = False
    try:
        for w in ws:
            w.start()
        if steady:
            for w in ws:
                w.wait_ready(120)
            time.sleep(3.0)  # the group settles (a late join would rebalance again)
            for w in ws:
                w.wait_ready(120)
            load_s = kafka_io.load(svc.kafka, items, suffix)
            progress(f"  {workers} worker(s) ready; loaded {len(items):,} events ({partitions} ingest partitions) "
                     f"in {load_s:.1f}s")
        timing = measure_workers(ws, len(items), drain_timeout(len(items)), progress, own_clock=own_clock)
        progress(f"  pipeline ({workers} worker(s)): {len(items):,} events, {timing.rate:,.0f}/s "
                 f"(start-up {timing.startup_seconds:.1f}s excluded; {timing.cpu_us_per_event:,.0f} µs of CPU per "
                 f"event, {timing.busy:.0%} of a core)")
        peer_timings = {(t, g): peer_run(svc, suffix, label, len(items), log_dir, t, g, progress) for t, g in peers}
        if keep is not None:
            keep.extend(ws)
            handed_over = True
        return PipelineRun(len(items), partitions, workers, suffix, load_s, base_rate, noop_rate, timing, peer_timings)
    finally:
        if not handed_over:
            for w in ws:
                w.stop()
            drop_topics(svc, label, progress)


def drain_timeout(expected: int, min_rate: float = 100) -> float:
    """Seconds a drain of ``expected`` events may take before it counts as failed: 3 minutes, or longer at
    ``min_rate`` events/s."""
    return max(180.0, expected / min_rate)


def timed_alone(worker: Worker, expected: int, progress: Progress, min_rate: float = 100) -> Timing:
    """Start ``worker``, time it over ``expected`` events like the pipeline, stop it."""
    try:
        worker.start()
        return measure_workers([worker], expected, drain_timeout(expected, min_rate), progress)
    finally:
        worker.stop()


def noop_run(svc: Services, suffix: str, label: str, expected: int, log_dir: Path, partitions: int,
             progress: Progress = print) -> float | None:
    """The framework ceiling: ``bench.noop_worker`` (faust agent with the worker's settings, counting only)
    over the same ingest topics, fresh app id; waited for like the pipeline, timed by its own clock
    (:func:`noop_rate`: it drains the run's events in a few polls). None when even that cannot time it."""
    w = Worker(svc, suffix, f"bench-{svc.run_id}-{label}-noop", log_dir, module="bench.noop_worker",
               env={"ALLIANCE_INGEST_PARTITIONS": str(partitions)})
    try:
        w.start()
        try:
            measure_workers([w], expected, drain_timeout(expected), progress, own_clock=False)  # (waits only)
        except TooFastToTime:
            pass  # (every event within one poll: its own clock still tells)
        clock = (w.json("/freshness/") or {}).get("clock") or {}
    finally:
        w.stop()
    rate = noop_rate(clock, expected)
    if rate is None:
        progress(f"  faust no-op agent: cannot be timed (its clock: {clock})")
        return None
    progress(f"  faust no-op agent: {expected:,} events, {rate:,.0f}/s (its own clock, from its first batch)")
    return rate


def noop_rate(clock: dict[str, Any], expected: int) -> float | None:
    """Events/s of the no-op agent by its own clock: the events counted after its first batch over the time from
    that batch to its last. None unless it counted ``expected`` events (no more: a rebalance read some twice)
    in more than one batch."""
    first, last = clock.get("first_batch_at"), clock.get("last_batch_at")
    events, first_events = clock.get("events"), clock.get("first_batch_events")
    if first is None or last is None or events is None or first_events is None:
        return None
    if int(events) != expected or float(last) <= float(first):
        return None
    return (int(events) - int(first_events)) / (float(last) - float(first))


def peer_run(svc: Services, suffix: str, label: str, expected: int, log_dir: Path, topology: str, guarantee: str,
             progress: Progress = print) -> Timing:
    """The Quix Streams peer (bench.quix_peer) over the same ingest topics, fresh consumer group and state,
    timed like the pipeline (first ingest progress -> ``expected`` events applied)."""
    tag = output_suffix("", topology, guarantee).lstrip(".")
    state_dir = log_dir / f"quix-state-{label}-{tag}"
    w = Worker(svc, suffix, f"bench-{svc.run_id}-{label}-{tag}", log_dir, module="bench.quix_peer",
               env={"BENCH_PEER_TOPOLOGY": topology, "BENCH_PEER_GUARANTEE": guarantee,
                    "BENCH_PEER_STATE_DIR": str(state_dir)})
    try:
        timing = timed_alone(w, expected, progress)
    finally:
        shutil.rmtree(state_dir, ignore_errors=True)  # its RocksDB stores (the run's topics go with the broker)
    progress(f"  Quix Streams peer ({topology}, {guarantee}): {expected:,} events, {timing.rate:,.0f}/s "
             f"(start-up {timing.startup_seconds:.1f}s excluded; {timing.cpu_us_per_event:,.0f} µs of CPU per event, "
             f"{timing.busy:.0%} of a core)")
    return timing


@dataclass
class WorkerProfile:
    rate: float
    areas: dict[str, float]
    top: list[Hotspot]


def profile_worker(svc: Services, items: Sequence[workload.Item], log_dir: Path,
                   progress: Progress = print) -> WorkerProfile:
    """The pipeline again, on its own freshly loaded topics, in a worker under cProfile; reports its own time
    by package and its top functions."""
    suffix = svc.suffix("profiled")
    try:
        provision_run(svc, suffix, app_id=f"bench-{svc.run_id}")
        kafka_io.load(svc.kafka, items, suffix)
        expected = len(items)
        out = log_dir / f"worker-{svc.run_id}.prof"
        out.unlink(missing_ok=True)
        w = Worker(svc, suffix, f"bench-{svc.run_id}-profiled", log_dir,
                   env={"BENCH_PROFILE_OUT": str(out)})
        rate = timed_alone(w, expected, progress, min_rate=50).rate
    finally:
        drop_topics(svc, "profiled", progress)
    if not out.exists():
        raise BenchError(f"the profiled worker wrote no profile to {out}:\n{w.log_tail()}")
    stats = pstats.Stats(str(out))
    progress(f"  profiled worker: {rate:,.0f} events/s under cProfile")
    return WorkerProfile(rate, own_time_by_area(stats), hotspots(stats, 20))


# ----------------------------------------------------------------------------------------- latency
@dataclass
class Latency:
    rate: float
    sent: int
    matched: int
    seconds_ms: list[float]
    sent_ms: list[int] = field(default_factory=list)  # each latency's send time, same order
    ack_ms: list[float] = field(default_factory=list)  # each event's produce acknowledgement - its send time
    hops: Hops | None = None  # the same events' time per agent (hop_latencies)
    cores: dict[str, float] = field(default_factory=dict)  # cores used while sending (CpuWatch.cores)

    def p(self, q: float) -> float:
        return percentile(self.seconds_ms, q)

    def by_second(self) -> list[tuple[int, int, float, float, float]]:
        """(second of the run, events sent in it, p50 and max latency, max produce acknowledgement, in ms) per
        second of sending: a tail spread over the run is queueing, one clustered in a few seconds is a stall,
        and one the acknowledgements share is the publisher's or the broker's."""
        if not self.sent_ms:
            return []
        t0 = min(self.sent_ms)
        bins: dict[int, list[tuple[float, float]]] = {}
        for ts, ms, ack in zip(self.sent_ms, self.seconds_ms, self.ack_ms, strict=True):
            bins.setdefault((ts - t0) // 1000, []).append((ms, ack))
        return [(s, len(v), percentile([m for m, _ in v], 50), max(m for m, _ in v), max(a for _, a in v))
                for s, v in sorted(bins.items())]


#: the measured window's events fall on LATENCY_DAY, the warm-up's on WARM_UP_DAY: their daily window keys are
#: apart from each other and from the throughput run's (events.simulator's DEFAULT_DAY)
LATENCY_DAY = date(2026, 6, 9)
WARM_UP_DAY = date(2026, 6, 8)


class CpuWatch:
    """The cores used over a span (``/proc``): by this process (the benchmark: its paced publisher), by the
    workers, and by everything else on the machine (the broker, mostly)."""

    def __init__(self, workers: list[Worker]) -> None:
        self.workers = workers
        self.start = self._reading()

    def _reading(self) -> tuple[float, float, float, float]:
        return (time.monotonic(), cpu_seconds(os.getpid()), _cpu(self.workers), machine_busy_seconds())

    def cores(self) -> dict[str, float]:
        t, publisher, workers, machine = (b - a for a, b in zip(self.start, self._reading(), strict=True))
        used = {"publisher": publisher / t, "workers": workers / t}
        return {**used, "others": max(machine / t - sum(used.values()), 0.0), "machine": float(os.cpu_count() or 1)}


def latency_run(svc: Services, workers: list[Worker], suffix: str, rate: float, duration: float,
                progress: Progress = print, *, day: date = LATENCY_DAY, seed: int = 11,
                label: str = "latency", nice: int = 0) -> Latency:
    """Publish fresh events at ``rate``/s for ``duration`` s to running workers, then read
    alliance.agg.windows<suffix> and match each event to the first daily-window record that counts it.

    Latency of an event = CreateTime of that aggregate record - CreateTime of the produced event (both set
    on this machine's clock). The daily window keys of ``day`` must see only these events (one run per day
    and suffix), so the count in an aggregate record says how many of the key's events (in send order) it
    reflects. ``nice``: the paced publisher's lower CPU priority (kafka_io.paced)."""
    n = max(int(rate * duration), 50)
    its = workload.load_items(n, seed=seed, day=day)
    keys = [_day_key(it.event) for it in its]
    wait_idle(workers)
    before = sum(w.processed("tables") for w in workers)
    progress(f"  {label}: {n:,} fresh events at {rate:,.0f}/s for {n / rate:.0f}s")
    watch = CpuWatch(workers)
    sent = kafka_io.paced(svc.kafka, its, suffix, rate, nice=nice)
    cores = watch.cores()
    deadline = time.monotonic() + 120
    while sum(w.processed("tables") for w in workers) < before + n:
        if time.monotonic() > deadline:
            raise BenchError(f"{label} run: the workers did not process the paced events within 120s")
        time.sleep(POLL_S)
    time.sleep(2.0)  # let the rollup publish the last aggregates
    records = asyncio.run(kafka_io.read_records(svc.kafka(ADMIN), agg_topic("windows") + suffix, AGG_PARTITIONS))
    lat = match_latencies(rate, keys, sent, [(ts, key, value) for _, _, ts, key, value in records])
    if not lat.matched:
        raise BenchError(f"{label} run: no aggregate record of {agg_topic('windows') + suffix} matched")
    lat.hops = hop_latencies({str(it.event.event_id): ts for it, ts in zip(its, sent.sent_ms, strict=True)},
                             *asyncio.run(_hop_records(svc, suffix)), records)
    lat.cores = cores
    return lat


async def _hop_records(svc: Services, suffix: str) -> tuple[list[kafka_io.Record], list[kafka_io.Record]]:
    """Every record of the run's canonical topics, and of its partials topic (for hop_latencies)."""
    canonical: list[kafka_io.Record] = []
    for family in Family:
        canonical += await kafka_io.read_records(svc.kafka(ADMIN), family_topic(family) + suffix, EVENT_PARTITIONS)
    return canonical, await kafka_io.read_records(svc.kafka(ADMIN), PARTIALS_TOPIC + suffix, AGG_PARTITIONS)


def match_latencies(rate: float, keys: Sequence[str], sent: kafka_io.Paced,
                    records: Sequence[tuple[int, bytes | None, bytes | None]]) -> Latency:
    """Each sent event (its daily window key in ``keys``, in send order) against the first aggregate record
    (timestamp, key, value) of its key whose ``events`` count includes it: the n-th event of a key is counted
    by the first record of that key with a count >= n."""
    per_key_sent: dict[str, list[tuple[int, float]]] = {}
    for key, ts, acked in zip(keys, sent.sent_ms, sent.acked_ms, strict=True):
        per_key_sent.setdefault(key, []).append((ts, acked - ts))
    wanted = set(per_key_sent)
    covered: dict[str, int] = {}
    lat: list[float] = []
    lat_sent: list[int] = []
    lat_ack: list[float] = []
    for ts, raw_key, value in sorted(records, key=lambda r: r[0]):
        k = raw_key.decode() if raw_key else ""
        if k not in wanted or value is None:
            continue
        count = int(json.loads(value)["value"].get("events", 0))
        start = covered.get(k, 0)
        for sent_ts, ack in per_key_sent[k][start:count]:
            lat.append(float(ts - sent_ts))
            lat_sent.append(sent_ts)
            lat_ack.append(ack)
        covered[k] = max(start, count)
    return Latency(rate, len(keys), len(lat), lat, lat_sent, lat_ack)


HOPS = ("ingest", "tables", "rollup")


@dataclass(frozen=True)
class Hops:
    """Each matched event's time in each agent's hop (ms; the three lists in the same order): what the ingest,
    tables and rollup agents add to produce -> alliance.agg.windows."""

    ingest_ms: list[float]  # its canonical record's timestamp - its send
    tables_ms: list[float]  # the first partial of its (daily window key, partition) counting it - the canonical record
    rollup_ms: list[float]  # the first alliance-wide record of the key including that partial - the partial
    unmatched: int  # events sent that are not in the lists (not applied, a revision's key, no record counting them)

    def by_hop(self) -> dict[str, list[float]]:
        return dict(zip(HOPS, (self.ingest_ms, self.tables_ms, self.rollup_ms), strict=True))


def _windows_records(records: Sequence[kafka_io.Record]) -> Iterator[tuple[int, int, str, dict[str, Any]]]:
    """(offset, timestamp, daily window key, body) of the records of daily-window keys, partials or alliance-wide
    (keyed ``windows|<key>`` and ``<key>``)."""
    for _, offset, ts, key, value in records:
        name = (key or b"").decode().removeprefix("windows|")
        if value is None or "granularity=day" not in name:
            continue
        body = json.loads(value)
        if body.get("aggregate") == "windows":
            yield offset, ts, name, body


def hop_latencies(sent_ms: Mapping[str, int], canonical: Sequence[kafka_io.Record],
                  partials: Sequence[kafka_io.Record], aggregates: Sequence[kafka_io.Record]) -> Hops:
    """Split each event's way to alliance.agg.windows into the agents' hops, from record timestamps (CreateTime:
    the paced publisher's send, then each agent's producer when it staged the record; one clock).

    ``sent_ms``: event id -> send time of the events sent (the topics' other events only count for the ranks
    below); ``canonical``: the records of every family topic (one family per daily window key, so a key's events
    on a partition are those of one topic partition); ``partials``: the partials topic; ``aggregates``:
    alliance.agg.windows. A partition's events of a key are applied in offset
    order and only add to its count, so its n-th event is counted by the key's first partial from that
    partition (member ``p<partition>``) whose ``events`` is >= n. The rollup agent reads a key's partials in
    their topic's order, so a partial is included in the key's first alliance-wide record whose ``events``
    reaches the sum of every member's latest partial up to it. A revision can take a count back, so the keys of
    its family and university are left out (the latency workload has none); an event the tables agent refuses
    (an erased seeker's) would shift the ranks after it on its partition (the workload has none either)."""
    groups: dict[tuple[str, int], list[tuple[int, int, str]]] = {}  # (key, partition) -> (offset, ts, event id)
    revised: set[tuple[str, str]] = set()  # (family, university) of revisions
    for partition, offset, ts, _, value in canonical:
        if value is None:
            continue
        try:
            event = decode(value)
        except EventValidationError:
            continue  # (the ingest writes none such; the tables agent refuses it, uncounted)
        if isinstance(event, SeekerErasureRequested):
            continue  # (applied to no window count)
        if isinstance(event, EventRetracted | EventCorrected):
            revised.add((event.target_family, event.source))
            continue
        groups.setdefault((_day_key(event), partition), []).append((offset, ts, str(event.event_id)))
    counted: dict[tuple[str, int], list[tuple[int, int, int]]] = {}  # (key, member) -> (offset, ts, events)
    by_key: dict[str, list[tuple[int, int, int, int]]] = {}  # key -> (offset, ts, member, events)
    for offset, ts, key, body in _windows_records(partials):
        member, events = int(str(body["member"]).removeprefix("p")), int(body["partial"].get("events", 0))
        counted.setdefault((key, member), []).append((offset, ts, events))
        by_key.setdefault(key, []).append((offset, ts, member, events))
    published: dict[str, list[tuple[int, int, int]]] = {}  # key -> (offset, ts, events) of alliance-wide records
    for offset, ts, key, body in _windows_records(aggregates):
        published.setdefault(key, []).append((offset, ts, int(body["value"].get("events", 0))))
    included: dict[tuple[str, int], int] = {}  # (key, partial's offset) -> ts of the first record including it
    for key, arrivals in by_key.items():
        latest: dict[int, int] = {}
        records, i = sorted(published.get(key, [])), 0
        for offset, _, member, events in sorted(arrivals):
            latest[member] = events
            total = sum(latest.values())
            while i < len(records) and records[i][2] < total:
                i += 1
            if i < len(records):
                included[(key, offset)] = records[i][1]
    ingest: list[float] = []
    tables: list[float] = []
    rollup: list[float] = []
    for (key, partition), applied in groups.items():
        dims = parse_dimkey(key)
        rows, j = sorted(counted.get((key, partition), [])), 0
        for n, (_, ts, event_id) in enumerate(sorted(applied), 1):
            while j < len(rows) and rows[j][2] < n:
                j += 1
            sent = sent_ms.get(event_id)
            at = included.get((key, rows[j][0])) if j < len(rows) else None
            if sent is None or at is None or (dims.get("family", ""), dims.get("university", "")) in revised:
                continue
            ingest.append(float(ts - sent))
            tables.append(float(rows[j][1] - ts))
            rollup.append(float(at - rows[j][1]))
    return Hops(ingest, tables, rollup, len(sent_ms) - len(ingest))


def wait_idle(workers: list[Worker], quiet_s: float = 2.0, limit_s: float = 180.0) -> None:
    """Wait until no agent of any worker has had a batch for ``quiet_s`` (the rollup drains the partials
    backlog of the throughput run after the tables agent is done; latency measured before that is queueing)."""
    def idle() -> tuple[bool, str]:
        docs = [w.json("/freshness/") or {} for w in workers]
        ages = [a.get("seconds_since_last_batch", 0.0) for d in docs for a in d.values()]
        return bool(ages) and min(ages) >= quiet_s, f"last batches {ages}s ago"

    wait_until(idle, limit_s, "the workers going idle", interval=POLL_S, error=BenchError)


def _day_key(event: Event) -> str:
    for (aggregate, dk) in window_counts(event):
        if aggregate == "windows" and "granularity=day" in dk:
            return dk
    raise ValueError("no daily window key")
