"""Unit tests of the benchmark's pure helpers outside bench.report (no broker, no database, no timing)."""

from __future__ import annotations

import subprocess
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest

from bench import revision
from bench.env import measurement_topics
from bench.pipeline import Timing, noop_rate
from bench.profile import STAGES, Hotspot, _Stores, format_hotspots, pure_path, table_operations
from bench.projector import canonical, with_database
from bench.report import BenchError
from bench.workload import load_items
from events.codec import decode
from events.topics import family_topic
from infra.tools import ensure_valgrind
from streams.batch import SEEN, STATES


def test_workload_is_valid_simulator_records_and_deterministic() -> None:
    its = load_items(300, seed=3)
    assert len(its) == 300
    assert [it.event.event_id for it in its] == [it.event.event_id for it in load_items(300, seed=3)]
    assert all(decode(it.value) == it.event for it in its)
    assert all(it.topic == f"alliance.ingest.{it.event.source}" for it in its)


def test_pure_path_accepts_every_event_once_and_times_the_three_agents() -> None:
    its = load_items(400, seed=5)
    seconds: dict[str, float] = {}
    assert pure_path(its, batch=64, seconds=seconds) == 400
    assert set(seconds) == set(STAGES) and all(v > 0 for v in seconds.values())
    assert pure_path(its + its[:10], batch=64) == 400  # re-sent records are rejected as duplicates


def test_table_operations_per_event_agree_with_what_the_tables_hold() -> None:
    its = load_items(400, seed=5)
    stores = _Stores()
    accepted = pure_path(its, batch=64, stores=stores)
    states = stores.tables[STATES]
    logged = sum("|event|" in k for k in states)
    applied = sum(k.startswith("applied:") for k in states)
    assert logged == applied == accepted  # one log entry and one applied pointer per event (no revisions here)
    ops = table_operations(its)
    assert ops[f"{SEEN} writes"] == 1.0  # one dedupe id per accepted event
    assert ops[f"{STATES} writes"] >= len(states) / accepted >= 2  # every key held was written at least once
    assert ops[f"{STATES} reads"] >= 1.0  # each event looks its applied key up in the table


def test_canonical_records_and_dsn() -> None:
    its = load_items(20, seed=1)
    for c, it in zip(canonical(its), its, strict=True):
        assert c.topic == family_topic(it.event.family) and c.key == it.event.key
    assert with_database("postgresql://u@127.0.0.1:5432/postgres", "bench_x") == "postgresql://u@127.0.0.1:5432/bench_x"


def test_hotspot_format() -> None:
    text = format_hotspots([Hotspot("streams/engine.py:33(process)", 5, 0.5, 1.0, 0.25)])
    assert "25.0%" in text and "streams/engine.py:33(process)" in text


def test_the_revision_harness_measures_the_tree_it_is_given(tmp_path: Path) -> None:
    head = revision.export("HEAD", tmp_path)
    assert (head / "streams" / "batch.py").read_text() == \
        subprocess.run(["git", "-C", str(revision.REPO), "show", "HEAD:streams/batch.py"], capture_output=True,
                       text=True, check=True).stdout
    times = revision.time_tree(head, events=200, rounds=2)
    assert len(times) == 2 and all(t > 0 for t in times)
    with pytest.raises(revision.RevisionError, match="not in this clone's history"):
        revision.export("0" * 40, tmp_path)
    for bad in ("--output=/tmp/x", "-o", ""):  # never handed to git as an option
        with pytest.raises(revision.RevisionError, match="not a revision name"):
            revision.export(bad, tmp_path)


def test_the_issues_start_is_measurable_from_this_clone(tmp_path: Path) -> None:
    assert revision.Comparison("x", [100.0, 120.0, 500.0], [50.0, 55.0, 60.0]).ratio == 120.0 / 55.0  # medians
    shallow = subprocess.run(["git", "-C", str(revision.REPO), "rev-parse", "--is-shallow-repository"],
                             capture_output=True, text=True, check=True).stdout.strip() == "true"
    if shallow:  # the benchmark says how to get the history rather than measuring something else
        with pytest.raises(revision.RevisionError, match="unshallow"):
            revision.export(revision.ISSUE_START, tmp_path)
        return
    tree = revision.export(revision.ISSUE_START, tmp_path)
    assert len(revision.time_tree(tree, events=200, rounds=1)) == 1


def test_the_pure_paths_instructions_are_counted_the_same_twice_and_grow_with_the_events(tmp_path: Path) -> None:
    """bench.revision.instructions (valgrind's callgrind): the whole process, so what the measurement subtracts
    (imports, the workload generator) must count the same in both processes, and it does to a few thousand of
    ~3·10⁹ instructions; more events processed of the same ones made count more."""
    valgrind = ensure_valgrind()
    head = revision.export("HEAD", tmp_path)
    first, again = (revision.instructions(head, 150, 50, valgrind) for _ in range(2))
    assert abs(first - again) <= first * 1e-5
    per_event = (revision.instructions(head, 150, 150, valgrind) - first) / 100
    assert 50_000 < per_event < 5_000_000  # (this tree: ~0.5 million; the issue's start: ~0.7 million)
    assert revision.InstructionComparison("x", 700_000.0, 350_000.0).ratio == 2.0
    with pytest.raises(revision.RevisionError, match="small < large"):
        revision.instructions_per_event(head, 150, 150, valgrind)
    with pytest.raises(revision.RevisionError, match="printed no result"):
        revision.instructions(head, 150, 50, "/bin/true")  # (not valgrind: ran nothing, counted nothing)
    no_count = tmp_path / "runs-without-counting"  # takes valgrind's options, runs the harness, counts nothing
    no_count.write_text('#!/bin/sh\nshift 2\nexec "$@"\n')
    no_count.chmod(0o755)
    with pytest.raises(revision.RevisionError, match="printed no instruction count"):
        revision.instructions(head, 150, 50, str(no_count))


def test_a_measurement_drops_its_own_topics_and_no_other_measurements() -> None:
    names = ["alliance.ingest.scu.bench-ab12cd34-peer1", "alliance.agg.fairs.bench-ab12cd34-peer1.direct-alo",
             "bench-ab12cd34-peer1-entity-state-changelog", "bench-ab12cd34-peer1-noop-ingest-seen-changelog",
             "changelog__bench-ab12cd34-peer1-direct-eos--alliance.ingest.scu.bench-ab12cd34-peer1--seen",
             "alliance.ingest.scu.bench-ab12cd34-peer10", "bench-ab12cd34-peer10-entity-state-changelog",
             "alliance.ingest.scu.bench-ffffffff-peer1", "alliance.ingest.scu", "__consumer_offsets"]
    assert measurement_topics(names, "ab12cd34", "peer1") == sorted(names[:5])
    assert measurement_topics(names, "ab12cd34", "peer10") == sorted(names[5:7])
    assert measurement_topics(names, "ab12cd34", "p3w1") == []


def test_pipeline_drains_alternate_so_that_each_contestant_runs_first_in_half_the_rounds() -> None:
    order = revision.drain_order(4)
    assert order == [(0, "earlier"), (0, "current"), (1, "current"), (1, "earlier"),
                     (2, "earlier"), (2, "current"), (3, "current"), (3, "earlier")]
    firsts = [who for i, (_, who) in enumerate(order) if i % 2 == 0]
    assert firsts.count("earlier") == firsts.count("current") == 2
    t = Timing  # seconds, start-up, events, CPU seconds
    cmp = revision.PipelineComparison("x", [t(4.0, 1, 20_000, 4.0), t(5.0, 1, 20_000, 4.6), t(2.0, 1, 20_000, 9.0)],
                                      [t(2.0, 1, 20_000, 2.0), t(2.5, 1, 20_000, 2.4), t(9.0, 1, 20_000, 2.2)])
    assert cmp.rate_ratio == (20_000 / 2.5) / (20_000 / 4.0)  # medians of the rates: 8,000 vs 5,000
    assert cmp.cpu_ratio == 230.0 / 110.0  # medians of the CPU per event: 230 vs 110 µs


def test_the_rounds_ratios_are_reported_with_their_spread() -> None:
    paired = revision.Paired((1.1, 0.9, 1.3, 1.0))
    # by hand: deviations from the mean 1.075 are 0.025, -0.175, 0.225, -0.075; their squares sum to 0.0875
    assert paired.median == pytest.approx(1.05) and paired.mean == pytest.approx(1.075)
    assert paired.stdev == pytest.approx((0.0875 / 3) ** 0.5)
    assert paired.stderr == pytest.approx((0.0875 / 3) ** 0.5 / 2)
    assert paired.above_one == 2  # 1.1 and 1.3; a tie is not better
    assert paired.summary() == {"rounds": 4, "median": 1.05, "mean": 1.075, "stdev": 0.171, "stderr": 0.085,
                                "above_one": 2}
    assert paired.describe() == ("per round: mean 1.075 ± 0.085 (standard error), median 1.050, "
                                 "this tree better in 2 of 4")
    alone = revision.Paired((1.2,))
    assert alone.stdev is None and alone.stderr is None and alone.summary()["stderr"] is None
    assert alone.describe() == "per round: mean 1.200, median 1.200, this tree better in 1 of 1"


def _fake_tree(root: Path, packages: tuple[str, ...]) -> Path:
    for package in packages:
        (root / package).mkdir(parents=True)
        (root / package / "__init__.py").write_text("")
    return root


def test_an_earlier_trees_worker_imports_that_tree_and_nothing_of_this_clone(tmp_path: Path) -> None:
    whole = _fake_tree(tmp_path / "whole", ("core", "events", "streams"))
    revision.check_imports(whole)  # started in this clone, as the benchmark's workers are: still the tree's
    partial = _fake_tree(tmp_path / "partial", ("core", "events"))  # its streams would come from this clone
    with pytest.raises(revision.RevisionError, match="not the tree"):
        revision.check_imports(partial)
    broken = _fake_tree(tmp_path / "broken", ("core", "events", "streams"))
    (broken / "streams" / "__init__.py").write_text("raise ImportError('no faust here')\n")
    with pytest.raises(revision.RevisionError, match="does not import"):
        revision.check_imports(broken)


def test_the_pipeline_revision_measurement_refuses_to_run_without_a_revision(capsys: pytest.CaptureFixture[str]
                                                                              ) -> None:
    from bench.cli import main

    for argv in (["--only", "pipeline-revision"], ["--only", "pipeline,pipeline-revision"],
                 ["--only", "pipeline-revision", "--pipeline-against", "HEAD", "--pipeline-rounds", "0"]):
        with pytest.raises(SystemExit) as exited:
            main(argv)
        assert exited.value.code == 2
    assert "needs --pipeline-against" in capsys.readouterr().err


class _Drains:
    """``bench.pipeline.pipeline_run`` as compare_pipelines calls it, failing the drains it is told to."""

    def __init__(self, failing: set[str]) -> None:
        self.failing, self.labels = failing, []

    def __call__(self, svc: object, items: object, *, label: str, env: dict[str, str], **_: object) -> object:
        self.labels.append(label)
        assert ("PYTHONPATH" in env) == label.startswith("reva")  # only the earlier revision's worker gets the tree
        if label in self.failing:
            raise BenchError(f"worker bench-x-{label} exited with 75:\nlog tail")
        r = int(label[4:])  # each round drains at its own pace, so that a round matched wrongly shows
        return SimpleNamespace(timing=Timing((2.0 if label.startswith("reva") else 1.0) * (r + 1), 1.0, 10_000, 1.5))


def test_a_failed_drain_of_the_earlier_revision_is_left_out_and_this_trees_fails_the_measurement(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(revision, "export", lambda rev, into: into)
    monkeypatch.setattr(revision, "check_imports", lambda tree, cwd=revision.REPO: None)
    drains = _Drains({"reva1"})
    monkeypatch.setattr(revision, "pipeline_run", drains)
    lines: list[str] = []
    cmp = revision.compare_pipelines(cast(Any, None), [], "old", 2, tmp_path, progress=lines.append)
    assert drains.labels == ["reva0", "revb0", "revb1", "reva1"]
    assert len(cmp.earlier) == 1 and len(cmp.current) == 2
    assert cmp.rate_ratio == 1.5  # medians: 7,500 (10,000 and 5,000) against 5,000
    assert cmp.earlier_failed == ("round 2: worker bench-x-reva1 exited with 75:",)
    assert cmp.pairs() == [(cmp.earlier[0], cmp.current[0])]  # round 2 drained this tree only: no pair
    assert cmp.rate_per_round.ratios == (2.0,) and cmp.cpu_per_round.ratios == (1.0,)  # the same CPU, half the time
    cmp = revision.compare_pipelines(cast(Any, None), [], "old", 3, tmp_path)  # with the same failure, three rounds
    assert [c.seconds for _, c in cmp.pairs()] == [1.0, 3.0] and cmp.rate_per_round.ratios == (2.0, 2.0)
    assert any("old: FAILED, left out" in line for line in lines)
    monkeypatch.setattr(revision, "pipeline_run", _Drains({"reva0", "reva1"}))
    with pytest.raises(revision.RevisionError, match=r"no drain of old's worker completed: round 1: .*round 2: "):
        revision.compare_pipelines(cast(Any, None), [], "old", 2, tmp_path)
    monkeypatch.setattr(revision, "pipeline_run", _Drains({"revb1"}))
    with pytest.raises(BenchError, match="revb1"):  # this tree's own failure is never left out
        revision.compare_pipelines(cast(Any, None), [], "old", 2, tmp_path)


def test_the_noop_agent_is_timed_by_its_own_clock() -> None:
    """20,000 events in a few tenths of a second: the 0.2 s poll cannot time it, its own stamps can."""
    clock = {"first_batch_at": 100.0, "first_batch_events": 2_000, "last_batch_at": 100.45, "events": 20_000}
    assert noop_rate(clock, 20_000) == pytest.approx(18_000 / 0.45)
    assert noop_rate({**clock, "events": 20_400}, 20_000) is None  # a rebalance re-read some: not a drain of N
    assert noop_rate({**clock, "last_batch_at": 100.0}, 20_000) is None  # one batch: nothing to time
    assert noop_rate({"first_batch_at": None, "first_batch_events": 0, "last_batch_at": None, "events": 0},
                     20_000) is None
    assert noop_rate({}, 20_000) is None  # a worker without the clock (an earlier no-op worker)


def test_the_rows_call_only_the_issues_start_by_that_name() -> None:
    from bench.cli import pure_instructions_row, pure_revision_row
    for row in (pure_revision_row, pure_instructions_row):
        assert f"{revision.ISSUE_START} (the issue's start)" in row(revision.ISSUE_START)
        assert "HEAD~3" in row("HEAD~3") and "issue's start" not in row("HEAD~3")  # (--pure-against another)
