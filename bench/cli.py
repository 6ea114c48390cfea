"""``python -m bench [--events N] [--out PATH] [--quick]``: see docs/benchmarks.md."""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from bench import profile, publisher, revision, workload
from bench.env import BENCH_ROOT, Services, drop_topics, services
from bench.peer_steps import GUARANTEES, TOPOLOGIES
from bench.pipeline import WARM_UP_DAY, Latency, latency_run, pipeline_run, profile_worker
from bench.report import BenchError, Result, document, format_table, percentile, write_json
from bench.worker import Worker
from core.runtime import tune_gc
from core.settings import PROJECT_ROOT
from infra.errors import InfraError
from infra.processes import Terminated, interrupt_on_sigterm
from infra.tools import ensure_valgrind

PIPELINE_TARGET = 0.30
PEER_TARGET = 2.0  # the pipeline against the best Quix Streams topology at-least-once (the performance issue)
PROJECTOR_TARGET = 0.50
PUBLISHER_TARGET = 0.50
PURE_TARGET = 3.0  # the pure per-event path against the issue's start (bench.revision), same run and harness
LATENCY_P99_TARGET_MS = 500.0  # produce -> aggregated topic at 20 % load, after the warm-up (the performance issue)
PURE_ROUNDS = 2  # rounds per process of that measurement
LATENCY_LOAD = 0.20
#: the paced publisher stands in for the universities' systems, which do not share the backbone's cores: on this
#: 2-core machine it ran beside the worker and the broker at the same priority and took ~0.7 of a core
#: (docs/benchmarks.md, 2026-12-06, twelfth session)
LATENCY_PUBLISHER_NICE = 10
HOP_NOTES = {  # what each hop of the latency path spans (bench.pipeline.hop_latencies), by record timestamps
    "ingest": "the paced send -> the canonical record (publisher linger, fetch, the ingest agent's batch)",
    "tables": "the canonical record -> the partial counting the event (fetch, the tables agent's batch)",
    "rollup": "the partial -> the alliance-wide record including it (fetch, the rollup agent's batch)",
}


def pure_revision_row(rev: str) -> str:
    return f"pure path vs {_named(rev)}, same harness"


def pure_instructions_row(rev: str) -> str:
    return f"pure path instructions per event: {_named(rev)} / this tree"


def _named(rev: str) -> str:
    """A revision as the rows name it: the issue's start says so (``--pure-against`` may name any other)."""
    return f"{rev} (the issue's start)" if rev == revision.ISSUE_START else rev


def pipeline_revision_row(rev: str) -> str:
    return f"pipeline events/s vs {rev}'s worker, interleaved drains"


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def _niceness(text: str) -> int:
    """A CPU priority decrease: 0 (none) to 19 (the lowest); raising a priority would need privileges."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if not 0 <= value <= 19:
        raise argparse.ArgumentTypeError(f"{value} is not between 0 (the backbone's priority) and 19 (the lowest)")
    return value


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    p.add_argument("--events", type=int, default=None, help="events per measurement (default 20000; quick 5000)")
    p.add_argument("--out", type=Path, default=PROJECT_ROOT / "bench-results" / "result.json")
    p.add_argument("--quick", action="store_true", help="smaller N, one publisher round, no scaling runs")
    p.add_argument("--latency-seconds", type=float, default=None, help="steady-load duration (default 30; quick 15)")
    p.add_argument("--latency-warm-up", type=float, default=None,
                   help="paced seconds before the latency window, reported apart (default 20; quick 10; 0: none)")
    p.add_argument("--latency-publisher-nice", type=_niceness, default=LATENCY_PUBLISHER_NICE,
                   help="how much lower the paced publisher's CPU priority is than the backbone's (default "
                        f"{LATENCY_PUBLISHER_NICE}; 0: the same, as before 2026-12-06)")
    p.add_argument("--only",
                   default="profile,pure-revision,pure-instructions,publisher,pipeline,peer,latency,worker-profile,"
                           "projector,scaling,projector-history,state",
                   help="comma-separated subset of measurements ('peer': the pipeline against the Quix "
                        "Streams peer, needs the bench extra)")
    p.add_argument("--peer-rounds", type=int, default=None,
                   help="interleaved rounds of the peer comparison (default 3; quick 2)")
    p.add_argument("--pure-against", default=revision.ISSUE_START, metavar="REVISION",
                   help="the earlier revision whose pure per-event path the 'pure-revision' measurement runs "
                        "beside this tree's (default: %(default)s, where the performance issue set its targets)")
    p.add_argument("--pipeline-against", default=None, metavar="REVISION",
                   help="the earlier revision whose worker the 'pipeline-revision' measurement (not run by default) "
                        "drains the same events with, beside this tree's")
    p.add_argument("--pipeline-rounds", type=int, default=None,
                   help="rounds of the pipeline-revision measurement, two drains each (default 4; quick 2)")
    p.add_argument("--state-day-events", type=int, default=None,
                   help="events per simulated day of the state and projector-history measurements (default 20000; "
                        "quick 5000)")
    return p


class Bench:
    def __init__(self, svc: Services, args: argparse.Namespace) -> None:
        self.svc = svc
        self.args = args
        self.quick: bool = args.quick
        self.n: int = args.events or (5_000 if self.quick else 20_000)
        self.only = set(args.only.split(","))
        self.results: list[Result] = []
        self.extra: dict[str, Any] = {}
        self.log_dir = BENCH_ROOT / f"logs-{svc.run_id}"
        self.items, self.source = workload.load_items(self.n), "simulator"
        self.pipeline_rate: float | None = None
        self.pure_rate: float | None = None
        self.kept: list[Worker] = []  # the pipeline row's worker, kept running for the latency row
        self.kept_label = ""  # its measurement (topics suffixed svc.suffix(label)), until release_kept

    def guarded(self, name: str, fn: Callable[[], None], *failed: Result) -> None:
        """Run one measurement; on failure record its results as errors and go on with the next."""
        if name not in self.only:
            return
        log(f"== {name}")
        try:
            fn()
        except Exception as exc:  # one failed measurement is recorded as an ERROR row; the others still run
            log(f"{name} FAILED: {exc}")
            traceback.print_exc()
            for r in failed:
                r.error = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
                self.results.append(r)

    # ------------------------------------------------------------------------------------------ 1
    def profile(self) -> None:
        pure = self.pure_rate = profile.timed(self.items)
        areas = profile.by_area(self.items)
        hot = profile.profile(self.items)
        log(f"pure path (no Kafka, no Faust): {pure:,.0f} events/s; seconds by stage:")
        total = sum(areas.values())
        for k, v in areas.items():
            log(f"  {v:6.2f}s {v / total:6.1%}  {k}")
        log("top functions (cProfile, by own time):\n" + profile.format_hotspots(hot))
        ops = profile.table_operations(self.items)
        log("table operations per accepted event: " + ", ".join(f"{k} {v:.2f}" for k, v in ops.items()))
        self.results.append(Result("pure path ceiling (in-process)", pure, "ev/s", direction="info",
                                   parameters={"events": self.n},
                                   note="decode+classify+encode+decode+engine.process+JSON, one core"))
        for name in ("entity-state reads", "entity-state writes"):
            self.results.append(Result(f"{name} per event (pure path)", ops[name], "/event", direction="info",
                                       parameters={"events": self.n},
                                       note="a count: each a RocksDB read, or a changelog record and a RocksDB "
                                            "write, in the worker"))
        self.extra["profile"] = {
            "pure_events_per_second": round(pure, 1),
            "seconds_by_stage": {k: round(v, 4) for k, v in areas.items()},
            "top_functions": [h.__dict__ for h in hot],
            "table_operations_per_event": {k: round(v, 3) for k, v in ops.items()},
        }

    def pure_revision(self) -> None:
        """This tree's pure per-event path against an earlier revision's (bench.revision): same harness,
        interleaved processes, this run."""
        rev = self.args.pure_against
        pairs = 2 if self.quick else 3
        cmp = revision.compare(rev, events=self.n, pairs=pairs, rounds=PURE_ROUNDS, progress=log)
        now_rate, then_rate = (1e6 / statistics.median(us) for us in (cmp.current_us, cmp.earlier_us))
        self.results.append(Result(
            pure_revision_row(rev), now_rate, "ev/s", baseline=then_rate,
            target=PURE_TARGET, parameters={"events": self.n, "processes_per_tree": pairs, "rounds": PURE_ROUNDS},
            note="median µs/event of interleaved processes, each tree's own workload generator and GC settings"))
        self.extra["pure_revision"] = {"revision": rev, "earlier_us_per_event": [round(t, 2) for t in cmp.earlier_us],
                                       "current_us_per_event": [round(t, 2) for t in cmp.current_us],
                                       "ratio": round(cmp.ratio, 3)}

    def pure_instructions(self) -> None:
        """The pure path's instructions per event, ``--pure-against`` (the issue's start) against this tree
        (bench.revision.compare_instructions): a count that the host's speed does not move, beside the timed ratio."""
        rev = self.args.pure_against
        small, large = (1_000, 3_000) if self.quick else (2_000, 6_000)
        cmp = revision.compare_instructions(ensure_valgrind(), rev, small, large, progress=log)
        self.results.append(Result(
            pure_instructions_row(rev), cmp.earlier, "instr", baseline=cmp.current, direction="info",
            parameters={"events": large - small, "counted_by": "valgrind --tool=callgrind"},
            note="instructions per event (the difference of two processes, each tree's own workload and GC "
                 "settings): how many times fewer this tree executes; not cache misses, not seconds"))
        self.extra["pure_instructions"] = {"revision": rev, "earlier_per_event": round(cmp.earlier),
                                           "current_per_event": round(cmp.current), "ratio": round(cmp.ratio, 3)}

    def pipeline_revision(self) -> None:
        """This tree's worker against an earlier revision's on the same events (bench.revision.compare_pipelines):
        a code change measured as a ratio in one run, for rate and CPU per event."""
        rev = self.args.pipeline_against
        rounds = self.args.pipeline_rounds or (2 if self.quick else 4)
        cmp = revision.compare_pipelines(self.svc, self.items, rev, rounds, self.log_dir, progress=log)
        params = {"events": self.n, "rounds": rounds, "order": "ABBA", "statistic": "median of the rounds",
                  "earlier_per_round": [round(t.rate, 1) for t in cmp.earlier],
                  "current_per_round": [round(t.rate, 1) for t in cmp.current],
                  "earlier_cpu_us_per_event": [round(t.cpu_us_per_event, 1) for t in cmp.earlier],
                  "current_cpu_us_per_event": [round(t.cpu_us_per_event, 1) for t in cmp.current],
                  "earlier_busy": [round(t.busy, 3) for t in cmp.earlier],
                  "current_busy": [round(t.busy, 3) for t in cmp.current],
                  "earlier_failed_drains": list(cmp.earlier_failed),
                  "rate_per_round": cmp.rate_per_round.summary(), "cpu_per_round": cmp.cpu_per_round.summary()}
        self.results.append(Result(
            pipeline_revision_row(rev), cmp.rate("current"), "ev/s", baseline=cmp.rate("earlier"), direction="info",
            parameters=params,
            note="one worker each, fresh topics per drain (dropped after it), same broker and events; "
                 f"this tree's events/s over {rev}'s {cmp.rate_per_round.describe()}"
                 + (f"; {len(cmp.earlier_failed)} drain(s) of {rev} failed and are left out (parameters)"
                    if cmp.earlier_failed else "")))
        self.results.append(Result(
            f"worker CPU per event: {rev} / this tree", cmp.cpu_us("earlier"), "µs", baseline=cmp.cpu_us("current"),
            direction="info",
            parameters=params, note="user + system CPU of each worker (/proc) over its timed window, medians; "
                                    f"{rev}'s over this tree's {cmp.cpu_per_round.describe()}"))

    def pipeline(self) -> None:
        label = "p3w1"
        run = pipeline_run(self.svc, self.items, label=label, log_dir=self.log_dir, progress=log,
                           keep=self.kept if "latency" in self.only else None)
        if self.kept:  # the latency row's: its topics stay until release_kept
            self.kept_label = label
        self.pipeline_rate = run.timing.rate
        params = {"events": run.events, "ingest_partitions": run.partitions, "workers": 1,
                  "seconds": round(run.timing.seconds, 3), "worker_startup_s": round(run.timing.startup_seconds, 2),
                  "source": self.source}
        self.results.append(Result(
            "pipeline events/s (1 worker) vs bare aiokafka loop", run.timing.rate, "ev/s", baseline=run.baseline_rate,
            target=PIPELINE_TARGET, parameters=params))
        self.results.append(Result(
            "faust no-op agent (framework ceiling) vs bare loop", run.noop_rate, "ev/s",
            baseline=run.baseline_rate, direction="info", parameters=params,
            note="bench.noop_worker: the worker's faust settings and batching, counting only",
            error=None if run.noop_rate is not None else "not timed: see its progress line"))
        self.results.append(Result(
            "pipeline events/s vs faust no-op agent", run.timing.rate, "ev/s", baseline=run.noop_rate, direction="info",
            parameters=params))
        self.results.append(Result(
            "worker CPU per event (pipeline drain)", run.timing.cpu_us_per_event, "µs", direction="info",
            parameters={**params, "share_of_one_core": round(run.timing.busy, 3)},
            note="user + system CPU of the worker process (/proc) over the timed window; near 100 % of a core: "
                 "the worker is CPU-bound, and its CPU per event is what bounds its rate"))
        if self.pure_rate is not None:  # the alliance code alone, without Kafka or faust, against the same loop
            self.results.append(Result(
                "pure path (in-process) vs bare loop", self.pure_rate, "ev/s", baseline=run.baseline_rate,
                direction="info", parameters={"events": self.n}))

    def peer(self) -> None:
        """The pipeline against the Quix Streams peer (bench.quix_peer) in each topology and guarantee, in
        interleaved rounds on fresh topics (the worker, then every peer, over the same events); medians."""
        if importlib.util.find_spec("quixstreams") is None:
            raise BenchError("the Quix Streams peer needs the bench extra: .venv/bin/pip install -e '.[bench]' "
                             "(or leave 'peer' out of --only)")
        variants = [(t, g) for t in TOPOLOGIES for g in GUARANTEES]
        rounds = self.args.peer_rounds or (2 if self.quick else 3)
        ours: list[float] = []
        our_cpu: list[float] = []
        theirs: dict[tuple[str, str], list[float]] = {v: [] for v in variants}
        their_cpu: dict[tuple[str, str], list[float]] = {v: [] for v in variants}
        for r in range(rounds):
            log(f"  round {r + 1} of {rounds}")
            run = pipeline_run(self.svc, self.items, label=f"peer{r}", log_dir=self.log_dir, progress=log,
                               baseline=False, peers=variants)
            ours.append(run.timing.rate)
            our_cpu.append(run.timing.cpu_us_per_event)
            for v, timing in run.peers.items():
                theirs[v].append(timing.rate)
                their_cpu[v].append(timing.cpu_us_per_event)
        params = {"events": self.n, "rounds": rounds, "statistic": "median of the rounds",
                  "pipeline_per_round": [round(x, 1) for x in ours],
                  "peers_per_round": {f"{t}/{g}": [round(x, 1) for x in rates] for (t, g), rates in theirs.items()},
                  "pipeline_cpu_us_per_event": [round(x, 1) for x in our_cpu],
                  "peers_cpu_us_per_event": {f"{t}/{g}": [round(x, 1) for x in cpu]
                                             for (t, g), cpu in their_cpu.items()}}
        mine = statistics.median(ours)
        for (topology, guarantee), rates in theirs.items():
            self.results.append(Result(
                f"pipeline vs Quix Streams peer ({topology}, {guarantee})", mine, "ev/s",
                baseline=statistics.median(rates), direction="info", parameters=params,
                note="bench.quix_peer: the same per-record code (bench.peer_steps) on Quix state; docs/benchmarks.md"))
        best = max((v for v in variants if v[1] == "at-least-once"), key=lambda v: statistics.median(theirs[v]))
        self.results.append(Result("pipeline vs best Quix Streams peer at-least-once", mine, "ev/s",
                                   baseline=statistics.median(theirs[best]), target=PEER_TARGET, parameters=params))
        self.results.append(Result(
            f"CPU per event: best at-least-once peer ({best[0]}) / pipeline", statistics.median(their_cpu[best]),
            "µs", baseline=statistics.median(our_cpu), direction="info", parameters=params,
            note="user + system CPU per event of each process (/proc), medians of the rounds: how many times the "
                 "pipeline's CPU per event the peer needs (less noisy than rates on a shared machine)"))

    def worker_profile(self) -> None:
        prof = profile_worker(self.svc, self.items, self.log_dir, progress=log)
        total = sum(prof.areas.values()) or 1.0
        log("worker own time by package (cProfile over the whole worker process):")
        for area, sec in prof.areas.items():
            if sec / total >= 0.01:
                log(f"  {sec:7.2f}s {sec / total:6.1%}  {area}")
        log("worker top functions:\n" + profile.format_hotspots(prof.top))
        self.extra["worker_profile"] = {
            "events_per_second_under_profiler": round(prof.rate, 1),
            "own_seconds_by_package": {k: round(v, 3) for k, v in prof.areas.items()},
            "top_functions": [h.__dict__ for h in prof.top],
        }

    def latency(self) -> None:
        """Steady-load latency: a warm-up at the same rate first (reported apart), then the measured window.

        The broker of a run is freshly started: the first seconds of paced traffic after the throughput run
        make its JVM compile the produce and fetch paths of small requests (jstat -compiler: ~12 s of compile
        time in the first 20 s, ~1 s in the next 20 s), on the two cores the worker shares. A running
        alliance broker has long compiled them, so the warm-up is measured and shown, not counted."""
        if not self.kept or self.pipeline_rate is None:
            raise BenchError("needs the pipeline measurement (its worker) first")
        suffix = self.svc.suffix(self.kept_label)  # (the topics pipeline_run provisioned for it)
        rate = max(self.pipeline_rate * LATENCY_LOAD, 20.0)
        duration = self.args.latency_seconds or (15.0 if self.quick else 30.0)
        warm_up = self.args.latency_warm_up if self.args.latency_warm_up is not None else (10.0 if self.quick else 20.0)
        nice = self.args.latency_publisher_nice
        runs: list[tuple[str, Latency]] = []
        try:
            if warm_up > 0:
                runs.append(("warm-up", latency_run(self.svc, self.kept, suffix, rate, warm_up,
                                                    progress=log, day=WARM_UP_DAY, seed=12, label="warm-up",
                                                    nice=nice)))
            runs.append(("measured", latency_run(self.svc, self.kept, suffix, rate, duration,
                                                 progress=log, nice=nice)))
        finally:
            self.release_kept()
        for phase, lat in runs:
            seconds = lat.by_second()
            log(f"latency ({phase}) p50 {lat.p(50):.0f} ms  p99 {lat.p(99):.0f} ms  max {max(lat.seconds_ms):.0f} ms")
            log("  by second of sending (events, p50, max, max produce acknowledgement ms): " +
                "  ".join(f"{s}:{n}/{p50:.0f}/{mx:.0f}/{ack:.0f}" for s, n, p50, mx, ack in seconds))
            log(f"  cores used while sending (of {lat.cores['machine']:.0f}): the paced publisher (niced by {nice}) "
                f"{lat.cores['publisher']:.2f}, the worker(s) {lat.cores['workers']:.2f}, everything else (the "
                f"broker) {lat.cores['others']:.2f}")
            self.extra.setdefault("latency_cores", {})[phase] = {k: round(v, 3) for k, v in lat.cores.items()}
            self.extra.setdefault("latency_by_second", {})[phase] = [
                {"second": s, "events": n, "p50_ms": round(p50, 1), "max_ms": round(mx, 1), "max_ack_ms": round(ack, 1)}
                for s, n, p50, mx, ack in seconds]
            if lat.hops is not None and lat.hops.ingest_ms:
                hops = {hop: {"p50_ms": round(percentile(ms, 50), 1), "p99_ms": round(percentile(ms, 99), 1)}
                        for hop, ms in lat.hops.by_hop().items()}
                log(f"  by agent's hop (p50 / p99 ms, {len(lat.hops.ingest_ms):,} events, "
                    f"{lat.hops.unmatched:,} unmatched): " +
                    "  ".join(f"{hop} {v['p50_ms']:.0f} / {v['p99_ms']:.0f}" for hop, v in hops.items()))
                self.extra.setdefault("latency_by_hop", {})[phase] = {**hops, "events": len(lat.hops.ingest_ms),
                                                                      "unmatched": lat.hops.unmatched}
                if phase != "warm-up":
                    for hop, v in hops.items():
                        self.results.append(Result(
                            f"latency p99 of the {hop} hop", v["p99_ms"], "ms", direction="info",
                            note=HOP_NOTES[hop]))
            params = {"rate_events_per_s": round(rate, 1), "load_share_of_max": LATENCY_LOAD, "sent": lat.sent,
                      "publisher_nice": nice,
                      "matched": lat.matched, "seconds": warm_up if phase == "warm-up" else duration,
                      "path": "ingest -> tables -> rollup -> agg.windows"}
            for q in (50, 99):
                if phase == "warm-up":
                    self.results.append(Result(
                        f"latency p{q} during the warm-up (broker JIT cold)", lat.p(q), "ms", direction="info",
                        parameters=params, note="the first paced seconds after the throughput run; not the goal's"))
                else:
                    self.results.append(Result(
                        f"latency p{q} produce -> alliance.agg.windows", lat.p(q), "ms",
                        target=LATENCY_P99_TARGET_MS if q == 99 else None, direction="lower" if q == 99 else "info",
                        parameters={**params, "warm_up_seconds": warm_up}))

    def release_kept(self) -> None:
        """Stop the workers the pipeline row kept for the latency row and drop that measurement's topics, as
        every other measurement drops its own when it ends (bench.env.drop_measurement): the later ones do not
        run beside its partitions (bench.env.drop_topics)."""
        for w in self.kept:
            w.stop()
        self.kept.clear()
        if self.kept_label:
            label, self.kept_label = self.kept_label, ""
            drop_topics(self.svc, label, log)

    def publisher(self) -> None:
        rates = publisher.measure(self.svc, self.items, rounds=1 if self.quick else 2, progress=log)
        params = {"events": self.n, "producer": "events.tools.publisher.PRODUCER_DEFAULTS (acks=all, idempotent, "
                  "linger 20 ms, batch 256 KiB)", "rounds": 1 if self.quick else 2, "best_of": True}
        self.results.append(Result("publisher events/s, mapping input (validate) vs raw sends", rates.dicts,
                                   "ev/s", baseline=rates.raw, target=PUBLISHER_TARGET, parameters=params))
        self.results.append(Result("publisher events/s, model input vs raw sends", rates.models, "ev/s",
                                   baseline=rates.raw, direction="info", parameters=params))

    def projector(self) -> None:
        from bench import projector

        res = projector.measure(self.svc, self.items, progress=log)
        self.results.append(Result("projector rows/s vs COPY of the same rows", res.rate, "rows/s",
                                   baseline=res.copy_rate, target=PROJECTOR_TARGET, parameters=res.parameters,
                                   note=res.note))
        self.results.append(Result("projector write path alone vs COPY", res.write_rate, "rows/s",
                                   baseline=res.copy_rate, direction="info", parameters=res.parameters,
                                   note="apply_plan of the same records planned beforehand: staging COPY, "
                                        "upserts, recounts, offsets; no Kafka, no decode"))
        self.results.append(Result("projector rows/s vs its write path alone", res.rate, "rows/s",
                                   baseline=res.write_rate, direction="info", parameters=res.parameters))

    def projector_history(self) -> None:
        """The projector's write path applying the 10th day of history against the 1st (bench.projector.history),
        in a database of its own."""
        from bench import projector, state

        per_day = self.args.state_day_events or (5_000 if self.quick else 20_000)
        days = projector.history(self.svc.dsn, f"bench_history_{self.svc.run_id}", state.STEPS[-1],
                                 lambda i: state.day_items(i, per_day), progress=log)
        self.extra["projector_history"] = [{**vars(d), "records_per_s": round(d.records_per_s, 1)} for d in days]
        first, last = days[0], days[-1]
        self.results.append(Result(
            f"projector write path: records/s applying day {last.day} vs day {first.day}", last.records_per_s,
            "records/s", baseline=first.records_per_s, direction="info",
            parameters={"days": last.day, "events_per_day": per_day, "records": sum(d.records for d in days),
                        "baseline": f"day {first.day} (empty tables)",
                        "path": "consumers.store.apply_plan of pre-planned batches, one connection, no Kafka"}))

    def state(self) -> None:
        """Worker memory and restart time after 1, 5 and 10 days of history, per table store; each against
        the same store after 1 day (bench.state)."""
        from bench import state

        per_day = self.args.state_day_events or (5_000 if self.quick else 20_000)
        points = state.measure(self.svc, per_day, self.log_dir, progress=log)
        self.extra["state"] = [vars(p) for p in points]
        for store in state.STORES:
            mine = {p.days: p for p in points if p.store == store}
            first, last = mine[min(mine)], mine[max(mine)]
            params = {"store": store, "days": last.days, "events": last.events, "events_per_day": per_day,
                      "baseline": f"the same store after {first.days} day(s)"}
            self.results.append(Result(f"state {store}: worker RSS after {last.days} days vs {first.days}",
                                       last.rss_mb, "MB", baseline=first.rss_mb, direction="info",
                                       parameters=params))
            self.results.append(Result(f"state {store}: events/s applying day {last.days} vs day {first.days}",
                                       last.day_events_per_s, "events/s", baseline=first.day_events_per_s,
                                       direction="info", parameters=params))
            self.results.append(Result(f"state {store}: worker CPU per event applying day {last.days} vs day "
                                       f"{first.days}", last.day_cpu_us_per_event, "µs",
                                       baseline=first.day_cpu_us_per_event, direction="info", parameters=params,
                                       note="the kernel's count; the events/s above also hold publishing"))
            self.results.append(Result(f"state {store}: restart to ready after {last.days} days vs {first.days}",
                                       last.restart_s, "s", baseline=first.restart_s, direction="info",
                                       parameters=params))
            self.results.append(Result(f"state {store}: RSS after restart, {last.days} days vs {first.days}",
                                       last.rss_after_restart_mb, "MB", baseline=first.rss_after_restart_mb,
                                       direction="info", parameters=params))

    def scaling(self) -> None:
        """Steady-state runs (workers up and assigned before the events arrive), against the same kind of
        run with 3 partitions and 1 worker."""
        base: float | None = None
        for label, partitions, workers in (("s3w1", 3, 1), ("s6w1", 6, 1), ("s3w2", 3, 2)):
            try:
                run = pipeline_run(self.svc, self.items, label=label, log_dir=self.log_dir, partitions=partitions,
                                   workers=workers, baseline=False, progress=log, steady=True)
                if label == "s3w1":
                    base = run.timing.rate
                    continue
                self.results.append(Result(
                    f"scaling: {partitions} ingest partitions, {workers} worker(s)", run.timing.rate, "ev/s",
                    baseline=base, direction="info",
                    parameters={"events": run.events, "ingest_partitions": partitions, "workers": workers,
                                "seconds": round(run.timing.seconds, 3), "steady": True,
                                "baseline": "3 partitions, 1 worker, steady"}))
            except Exception as exc:  # the other scaling run still goes ahead
                log(f"scaling {label} FAILED: {exc}")
                self.results.append(Result(f"scaling: {partitions} ingest partitions, {workers} worker(s)", None,
                                           "ev/s", direction="info", error=str(exc).splitlines()[0][:300]))

    def run(self) -> None:
        log(f"{self.n:,} valid events from the {self.source}; topics suffixed .bench-{self.svc.run_id}-*")
        self.guarded("profile", self.profile)
        self.guarded("pure-revision", self.pure_revision,
                     Result(pure_revision_row(self.args.pure_against), None, "ev/s", target=PURE_TARGET))
        self.guarded("pure-instructions", self.pure_instructions,
                     Result(pure_instructions_row(self.args.pure_against), None, "instr", direction="info"))
        self.guarded("pipeline-revision", self.pipeline_revision,
                     Result(pipeline_revision_row(self.args.pipeline_against), None, "ev/s", direction="info"))
        self.guarded("publisher", self.publisher,
                     Result("publisher events/s, mapping input (validate) vs raw sends", None, "ev/s",
                            target=PUBLISHER_TARGET))
        self.guarded("pipeline", self.pipeline,
                     Result("pipeline events/s (1 worker) vs bare aiokafka loop", None, "ev/s",
                            target=PIPELINE_TARGET))
        try:
            self.guarded("latency", self.latency,
                         Result("latency p99 produce -> alliance.agg.windows", None, "ms",
                                target=LATENCY_P99_TARGET_MS, direction="lower"))
        finally:
            self.release_kept()
        self.guarded("peer", self.peer,
                     Result("pipeline vs best Quix Streams peer at-least-once", None, "ev/s", target=PEER_TARGET))
        self.guarded("worker-profile", self.worker_profile)
        self.guarded("projector", self.projector,
                     Result("projector rows/s vs COPY of the same rows", None, "rows/s", target=PROJECTOR_TARGET))
        if not self.quick:
            self.guarded("scaling", self.scaling)
        self.guarded("projector-history", self.projector_history)
        self.guarded("state", self.state)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if "pipeline-revision" in args.only.split(",") and not args.pipeline_against:
        parser.error("the pipeline-revision measurement needs --pipeline-against REVISION (e.g. HEAD~1)")
    if args.pipeline_rounds is not None and args.pipeline_rounds < 1:
        parser.error("--pipeline-rounds must be at least 1")
    tune_gc()  # the worker's garbage-collector settings (core.runtime), for the pure path measured in-process
    interrupt_on_sigterm()  # a bench stopped with SIGTERM stops its Kafka, PostgreSQL and workers, as on Ctrl-C
    started = time.time()
    log("starting services (own Kafka + PostgreSQL under .local/bench/ unless ALLIANCE_* are set)")
    try:
        with services() as svc:
            log(f"kafka {svc.bootstrap}  postgres {svc.dsn.split('@')[-1]}  run {svc.run_id}")
            bench = Bench(svc, args)
            bench.run()
    except (InfraError, BenchError) as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 2
    except Terminated:
        print("bench: terminated (SIGTERM): stopped the services it started", file=sys.stderr)
        return 143
    params = {"events": bench.n, "quick": bench.quick, "source": bench.source, "run_id": svc.run_id,
              "local_services": svc.local, "wall_seconds": round(time.time() - started, 1)}
    print()
    print(format_table(bench.results))
    write_json(args.out, document(bench.results, params, bench.extra))
    print(f"\nwrote {args.out}")
    failed = [r for r in bench.results if r.passed is False]
    return 1 if failed else 0
