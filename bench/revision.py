"""The pure per-event path and the whole pipeline of an earlier revision against this tree's, measured in the
same run.

Issue #16 asks for "the pure per-event path >= 3x today's events/s", today being the head when its targets
were set (:data:`ISSUE_START`). Numbers from earlier sessions ran on other machines and other harnesses, so
this module measures both trees here and now: the earlier revision is exported from the clone's history
(``git archive``) into a temporary directory, and one harness (:data:`HARNESS`, the same source for both) is
run in a fresh process per tree, with that tree first on ``PYTHONPATH``, in interleaved rounds. Each process
does what that revision's worker did: its own ``streams.batch`` functions on in-memory tables, its own
workload generator (``bench.workload.load_items``, same size and seed), its own garbage-collector settings
(``core.runtime`` when the tree has it), with the worker's modules loaded (their heap is what a collection
walks). Only the three stages are timed, not the harness's hand-over between them.

:func:`compare_pipelines` does the same for a whole worker (measurement ``pipeline-revision``): the earlier
revision's worker and this tree's drain the same events on fresh topics of the same broker, in interleaved
rounds (ABBA, so neither always runs first on a warmer broker), each timed like the pipeline measurement
(rate, and CPU per event from /proc); the earlier tree is first on its worker's path, and a probe started the
same way checks that it imports that tree's packages, not this clone's.
"""

from __future__ import annotations

import io
import json
import os
import re
import statistics
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.env import Services
from bench.pipeline import Timing, pipeline_run
from bench.report import BenchError
from bench.workload import Item

REPO = Path(__file__).resolve().parent.parent
ISSUE_START = "1b1e629"  # head of 2026-12-03 when issue #16 set its targets (its second session's start)


class RevisionError(RuntimeError):
    pass


HARNESS = r'''
import gc, json, sys, time
try:
    from core.runtime import GC_THRESHOLDS  # the worker's settings, where the tree has them
    gc.set_threshold(*GC_THRESHOLDS)
except ImportError:
    pass
import inspect
from datetime import UTC, datetime

import streams
import streams.app  # noqa: F401  (the worker process's modules: their objects are what a collection walks)
from bench.workload import load_items
from core.partitioning import key_partition
from events.reference import UNIVERSITIES
from events.topics import AGG_PARTITIONS, DLQ_TOPIC, EVENT_PARTITIONS, PARTIALS_TOPIC, ingest_topic
from streams import batch as pure
from streams.domains import domains

events, rounds = int(sys.argv[1]), int(sys.argv[2])
first_n = int(sys.argv[3]) if len(sys.argv) > 3 else events  # only the first ``first_n`` of the events made
NOW = datetime.now(UTC)
RECENT = "recent" in inspect.signature(pure.ingest).parameters


def consumed(writes, prefix, partitions, first):
    return [pure.Raw(t, key_partition(k or b"", partitions), first + i, None, k, v)
            for i, (t, k, v, _) in enumerate(r for r in writes.records if r[0].startswith(prefix))]


def one_round(items, batch=1000):
    tables = {t: {} for t in (pure.SEEN, pure.STATES, pure.ROLLUPS)}

    def put(writes):
        for table, _, key, value in writes.puts:
            tables[table][key] = value

    def read_states(key, partition=None):  # (earlier revisions looked keys up without their partition)
        return tables[pure.STATES].get(key)

    doms, university_of = domains(), {ingest_topic(u): u for u in UNIVERSITIES}
    extra = (pure.Recent(),) if RECENT else ()
    spent = accepted = 0.0
    for start in range(0, len(items), batch):
        raws = [pure.Raw(it.topic, 0, start + i, None, it.key, it.value)
                for i, it in enumerate(items[start:start + batch])]
        t0 = time.perf_counter()
        ingested = pure.ingest(raws, university_of, tables[pure.SEEN].get, NOW, str, DLQ_TOPIC,
                               *((EVENT_PARTITIONS,) + extra if extra else ()))
        put(ingested)
        t1 = time.perf_counter()
        canonical = consumed(ingested, "alliance.events.", EVENT_PARTITIONS, start)
        t2 = time.perf_counter()
        tabled = pure.tables(canonical, doms, read_states, NOW.isoformat(), str, DLQ_TOPIC, *extra)
        put(tabled)
        t3 = time.perf_counter()
        partials = consumed(tabled, PARTIALS_TOPIC, AGG_PARTITIONS, start)
        t4 = time.perf_counter()
        put(pure.rollup(partials, lambda key, partition=None: tables[pure.ROLLUPS].get(key), str, DLQ_TOPIC))
        t5 = time.perf_counter()
        spent += (t1 - t0) + (t3 - t2) + (t5 - t4)
        accepted += sum(ingested.ingested.values())
    return spent, accepted


items = load_items(events)[:first_n]
times = []
for _ in range(rounds):
    spent, accepted = one_round(items)
    times.append(spent / len(items) * 1e6)
print(json.dumps({"us_per_event": times, "accepted": accepted, "events": len(items),
                  "streams": streams.__file__}))
'''


def export(revision: str, into: Path) -> Path:
    """The tree of ``revision`` (from this clone's history) under ``into``."""
    if not revision or revision.startswith("-"):
        raise RevisionError(f"{revision!r} is not a revision name")  # (git archive would read an option)
    try:
        archive = subprocess.run(["git", "-C", str(REPO), "archive", "--format=tar", revision],
                                 capture_output=True, check=True, timeout=120).stdout
    except (subprocess.CalledProcessError, FileNotFoundError) as exc:
        detail = exc.stderr.decode(errors="replace").strip() if isinstance(exc, subprocess.CalledProcessError) \
            else str(exc)
        raise RevisionError(f"revision {revision} is not in this clone's history ({detail}); a shallow clone "
                            f"needs 'git fetch --unshallow'") from None
    tree = into / "tree"  # (not named after the revision: "a/../.." must not place it elsewhere)
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(tree, filter="data")
    return tree


def tree_env(tree: Path) -> dict[str, str]:
    """Environment that makes a Python process import ``tree``'s packages first: ``tree`` on PYTHONPATH, and
    the working directory (this clone, where the benchmark starts its workers) left off ``sys.path``."""
    return {"PYTHONPATH": str(tree), "PYTHONSAFEPATH": "1", "PYTHONDONTWRITEBYTECODE": "1"}


def run_harness(tree: Path, events: int, rounds: int, first_n: int | None = None, *, under: Sequence[str] = (),
                env: dict[str, str] | None = None, timeout: float = 1800) -> tuple[dict[str, Any], str]:
    """:data:`HARNESS` in a fresh process that imports ``tree`` (``under``: the command it runs under, valgrind);
    its result and its standard error. Fails unless it ran ``tree``'s own ``streams`` and accepted events."""
    what = [str(events), str(rounds), *([str(first_n)] if first_n is not None else [])]
    proc = subprocess.run([*under, sys.executable, "-c", HARNESS, *what], cwd=tree,
                          env={**os.environ, **tree_env(tree), **(env or {})},
                          capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise RevisionError(f"the pure path of {tree} failed{' under ' + under[0] if under else ''}:\n"
                            f"{proc.stderr[-3000:]}")
    lines = proc.stdout.strip().splitlines()
    if not lines:
        raise RevisionError(f"the pure path of {tree} printed no result (ran: {[*under, 'python']})")
    out: dict[str, Any] = json.loads(lines[-1])
    if not Path(out["streams"]).resolve().is_relative_to(tree.resolve()):
        raise RevisionError(f"measured {out['streams']}, not the tree {tree}")
    if not out["accepted"]:
        raise RevisionError(f"{tree}: no event accepted")
    return out, proc.stderr


def time_tree(tree: Path, events: int, rounds: int) -> list[float]:
    """µs per event of ``tree``'s pure path, one value per round, measured in a fresh process."""
    out, _ = run_harness(tree, events, rounds)
    return [float(t) for t in out["us_per_event"]]


@dataclass(frozen=True)
class Comparison:
    revision: str
    earlier_us: list[float]  # µs per event of every round of the earlier revision
    current_us: list[float]

    @property
    def ratio(self) -> float:
        """How many times faster this tree is (median µs per event of the earlier over this tree's)."""
        return statistics.median(self.earlier_us) / statistics.median(self.current_us)


def compare(revision: str = ISSUE_START, events: int = 20_000, pairs: int = 3, rounds: int = 2,
            progress: Callable[[str], None] = lambda _: None) -> Comparison:
    """``pairs`` interleaved processes per tree (the earlier revision first), ``rounds`` rounds each."""
    earlier: list[float] = []
    current: list[float] = []
    with tempfile.TemporaryDirectory(prefix="alliance-rev-") as tmp:
        tree = export(revision, Path(tmp))
        for pair in range(pairs):
            earlier += time_tree(tree, events, rounds)
            current += time_tree(REPO, events, rounds)
            progress(f"pure path, pair {pair + 1}/{pairs}: {revision} {statistics.median(earlier):.1f} µs/event, "
                     f"this tree {statistics.median(current):.1f} µs/event")
    return Comparison(revision, earlier, current)


# ------------------------------------------------------------------------------ instructions, not seconds
COLLECTED = re.compile(r"==\d+== Collected : (\d+)")  # callgrind's summary line (instructions executed)


def instructions(tree: Path, made: int, processed: int, valgrind: str) -> int:
    """Instructions a fresh process executes (valgrind's callgrind, the whole process) that makes ``made``
    events with ``tree``'s workload generator and runs ``tree``'s pure path over the first ``processed``
    of them (:data:`HARNESS`, one round). The hash seed is fixed: the same tree and arguments count the same
    (to ~0.001 %), whatever else the machine is doing."""
    with tempfile.TemporaryDirectory(prefix="alliance-cg-") as tmp:
        out, stderr = run_harness(tree, made, 1, processed, timeout=3600, env={"PYTHONHASHSEED": "0"},
                                  under=(valgrind, "--tool=callgrind", f"--callgrind-out-file={tmp}/callgrind.out"))
    found = COLLECTED.findall(stderr)
    if not found:
        raise RevisionError(f"valgrind printed no instruction count for {tree}:\n{stderr[-2000:]}")
    if out["events"] != processed:
        raise RevisionError(f"{tree}: {out['events']} events processed, not {processed}")
    return int(found[-1])


def instructions_per_event(tree: Path, small: int, large: int, valgrind: str) -> float:
    """The pure path's instructions per event of ``tree``: two processes make the same ``large`` events, one
    runs the first ``small`` of them, the other all; the difference over ``large - small`` events leaves out
    what both do once (imports, the workload generator, the harness's set-up). It counts the three stages
    and the harness's hand-over between them (building the next stage's records, a few % of the whole)."""
    if not 0 < small < large:
        raise RevisionError(f"need 0 < small < large events (small={small}, large={large})")
    return (instructions(tree, large, large, valgrind) - instructions(tree, large, small, valgrind)) / (large - small)


@dataclass(frozen=True)
class InstructionComparison:
    revision: str
    earlier: float  # the earlier revision's instructions per event
    current: float

    @property
    def ratio(self) -> float:
        """How many times fewer instructions per event this tree executes than the earlier revision."""
        return self.earlier / self.current


def compare_instructions(valgrind: str, revision: str = ISSUE_START, small: int = 2_000, large: int = 6_000,
                         progress: Callable[[str], None] = lambda _: None) -> InstructionComparison:
    """Instructions per event of the earlier revision's pure path and this tree's (:func:`instructions_per_event`).
    A repeatable count, not a time: it does not see cache misses or the host's speed, which is why the timed
    ``pure-revision`` measurement stays the goal's."""
    with tempfile.TemporaryDirectory(prefix="alliance-rev-") as tmp:
        tree = export(revision, Path(tmp))
        earlier = instructions_per_event(tree, small, large, valgrind)
        progress(f"pure path, {revision}: {earlier:,.0f} instructions per event")
    current = instructions_per_event(REPO, small, large, valgrind)
    progress(f"pure path, this tree: {current:,.0f} instructions per event")
    return InstructionComparison(revision, earlier, current)


# ------------------------------------------------------------------------------------- the whole pipeline
def check_imports(tree: Path, cwd: Path = REPO) -> None:
    """Fail unless a process started in ``cwd`` with :func:`tree_env` imports the worker's packages from
    ``tree`` (a worker that silently ran this clone's code would compare the tree with itself)."""
    probe = "import core, events, streams; print(streams.__file__, core.__file__, events.__file__)"
    proc = subprocess.run([sys.executable, "-c", probe], cwd=cwd, env={**os.environ, **tree_env(tree)},
                          capture_output=True, text=True, timeout=120)
    if proc.returncode != 0:
        raise RevisionError(f"the tree {tree} does not import:\n{proc.stderr[-2000:]}")
    paths = proc.stdout.split()
    if not paths or not all(Path(p).resolve().is_relative_to(tree.resolve()) for p in paths):
        raise RevisionError(f"a worker would import {paths}, not the tree {tree}")


def drain_order(rounds: int) -> list[tuple[int, str]]:
    """(round, contestant) in the order they run: ABBA, so that each runs first in half the rounds."""
    order = []
    for r in range(rounds):
        pair = ("earlier", "current") if r % 2 == 0 else ("current", "earlier")
        order += [(r, who) for who in pair]
    return order


@dataclass(frozen=True)
class Paired:
    """Ratios of the rounds of an interleaved comparison, one per round that drained both trees: how far apart
    they are, not only their median (the drains of one tree spread by ~10 % on this machine, docs/benchmarks.md)."""

    ratios: tuple[float, ...]

    @property
    def median(self) -> float:
        return statistics.median(self.ratios)

    @property
    def mean(self) -> float:
        return statistics.fmean(self.ratios)

    @property
    def stdev(self) -> float | None:
        """The sample standard deviation of the ratios (None for a single round)."""
        return statistics.stdev(self.ratios) if len(self.ratios) > 1 else None

    @property
    def stderr(self) -> float | None:
        """The standard error of :attr:`mean` (None for a single round)."""
        sd = self.stdev
        return None if sd is None else sd / len(self.ratios) ** 0.5

    @property
    def above_one(self) -> int:
        """Rounds whose ratio is above 1 (this tree better)."""
        return sum(r > 1 for r in self.ratios)

    def summary(self) -> dict[str, Any]:
        return {"rounds": len(self.ratios), "median": round(self.median, 3), "mean": round(self.mean, 3),
                "stdev": None if self.stdev is None else round(self.stdev, 3),
                "stderr": None if self.stderr is None else round(self.stderr, 3), "above_one": self.above_one}

    def describe(self) -> str:
        spread = "" if self.stderr is None else f" ± {self.stderr:.3f} (standard error)"
        return (f"per round: mean {self.mean:.3f}{spread}, median {self.median:.3f}, this tree better in "
                f"{self.above_one} of {len(self.ratios)}")


@dataclass(frozen=True)
class PipelineComparison:
    revision: str
    earlier: list[Timing]  # one per completed drain, in round order
    current: list[Timing]
    earlier_failed: tuple[str, ...] = ()  # why each of the earlier revision's other drains failed
    earlier_rounds: tuple[int, ...] = ()  # the round of each of ``earlier`` (empty: the same rounds as ``current``)

    def _drains(self, who: str) -> list[Timing]:
        return {"earlier": self.earlier, "current": self.current}[who]

    def pairs(self) -> list[tuple[Timing, Timing]]:
        """(earlier, current) of every round in which both drained (this tree drains in every round)."""
        if not self.earlier_rounds:
            return list(zip(self.earlier, self.current, strict=True))
        return [(t, self.current[r]) for t, r in zip(self.earlier, self.earlier_rounds, strict=True)]

    @property
    def cpu_per_round(self) -> Paired:
        """Per round, the earlier revision's CPU per event over this tree's (above 1: this tree needs less)."""
        return Paired(tuple(e.cpu_us_per_event / c.cpu_us_per_event for e, c in self.pairs()))

    @property
    def rate_per_round(self) -> Paired:
        """Per round, this tree's events/s over the earlier revision's."""
        return Paired(tuple(c.rate / e.rate for e, c in self.pairs()))

    def rate(self, who: str) -> float:
        """Median events/s of ``who`` ("earlier" or "current")."""
        return statistics.median(t.rate for t in self._drains(who))

    def cpu_us(self, who: str) -> float:
        """Median CPU per event (µs) of ``who``."""
        return statistics.median(t.cpu_us_per_event for t in self._drains(who))

    @property
    def rate_ratio(self) -> float:
        """This tree's median events/s over the earlier revision's."""
        return self.rate("current") / self.rate("earlier")

    @property
    def cpu_ratio(self) -> float:
        """The earlier revision's median CPU per event over this tree's (above 1: this tree needs less)."""
        return self.cpu_us("earlier") / self.cpu_us("current")


def compare_pipelines(svc: Services, items: Sequence[Item], revision: str, rounds: int, log_dir: Path,
                      progress: Callable[[str], None] = lambda _: None) -> PipelineComparison:
    """One worker of ``revision`` and one of this tree, each draining ``items`` from fresh topics
    (bench.pipeline.pipeline_run, no bare-loop baseline), in :func:`drain_order`; the topics of each drain are
    dropped after it. Both are timed by the poll (a worker before 2026-12-07 does not report its first batch):
    the same window for both, fit for their ratio, not for a rate against another system. A drain of the
    earlier revision that fails (a defect fixed since: an old worker's stall) is reported and left out, the
    rounds go on; with none of its drains completed, or any of this tree's failing, the measurement fails."""
    if rounds < 1:
        raise RevisionError("at least one round")
    timings: dict[str, list[Timing]] = {"earlier": [], "current": []}
    earlier_rounds: list[int] = []
    failed: list[str] = []
    with tempfile.TemporaryDirectory(prefix="alliance-rev-") as tmp:
        tree = export(revision, Path(tmp))
        check_imports(tree)
        env = {"earlier": tree_env(tree), "current": {}}
        for r, who in drain_order(rounds):
            label = f"rev{'a' if who == 'earlier' else 'b'}{r}"
            try:
                run = pipeline_run(svc, items, label=label, log_dir=log_dir, baseline=False, progress=progress,
                                   env=env[who], own_clock=False)
            except BenchError as exc:
                if who == "current":
                    raise
                failed.append(f"round {r + 1}: {str(exc).splitlines()[0]}")
                progress(f"  round {r + 1}/{rounds}, {revision}: FAILED, left out ({failed[-1]})")
                continue
            timings[who].append(run.timing)
            if who == "earlier":
                earlier_rounds.append(r)
            progress(f"  round {r + 1}/{rounds}, {revision if who == 'earlier' else 'this tree'}: "
                     f"{run.timing.rate:,.0f} events/s, {run.timing.cpu_us_per_event:,.1f} µs of CPU per event")
    if not timings["earlier"]:
        raise RevisionError(f"no drain of {revision}'s worker completed: " + "; ".join(failed))
    return PipelineComparison(revision, timings["earlier"], timings["current"], tuple(failed), tuple(earlier_rounds))
