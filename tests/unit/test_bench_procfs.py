"""bench.procfs (the kernel's accounting of a process) and the CPU time bench.pipeline reads with it."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

import pytest

from bench.kafka_io import in_niced_thread
from bench.pipeline import measure_workers
from bench.procfs import CLOCK_TICKS, CpuTrace, cpu_seconds, cpu_ticks, machine_busy_seconds, rss_mb
from bench.report import BenchError

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc (Linux)")


def test_the_cpu_fields_are_found_after_a_command_name_with_spaces_and_parentheses() -> None:
    # fields 14 and 15 (utime, stime) of proc(5); the name may hold ") " itself
    rest = "S 1 2 3 4 5 6 7 8 9 10 1234 56 0 0 20 0 1 0 100 2000 300"
    assert cpu_ticks(f"4242 (odd) name (x)) {rest}") == 1234 + 56
    assert cpu_ticks(f"7 (python3) {rest}") == 1290


def _own_cpu_seconds() -> float:  # os.times(): getrusage, another interface to the same kernel counters
    t = os.times()
    return t.user + t.system


def test_cpu_seconds_agree_with_the_processes_own_accounting() -> None:
    end = time.process_time() + 0.3
    while time.process_time() < end:  # some CPU time to read
        pass
    before = _own_cpu_seconds()
    read = cpu_seconds(os.getpid())
    after = _own_cpu_seconds()
    assert before - 2 / CLOCK_TICKS <= read <= after + 2 / CLOCK_TICKS
    assert rss_mb(os.getpid()) > 1


def test_a_process_that_is_gone_is_a_clear_error() -> None:
    with pytest.raises(BenchError, match="CPU time of pid"):
        cpu_seconds(2**22 + 12345)  # above the kernel's largest pid


class _Busy:
    """A worker in this process: one event more per poll while a thread of it spins."""

    started_at = 0.0

    def __init__(self) -> None:
        self.proc = SimpleNamespace(pid=os.getpid())
        self.polls = 0

    def processed(self, agent: str) -> int:
        if agent == "ingest":  # (read first in each poll)
            self.polls += 1
        return self.polls


def test_the_poll_clocks_window_carries_the_cpu_time_spent_in_it() -> None:
    stop = threading.Event()

    def spin() -> None:
        while not stop.is_set():
            pass

    spinner = threading.Thread(target=spin)
    spinner.start()
    try:
        t = os.times()
        timing = measure_workers([_Busy()], 8, timeout=30.0, progress=lambda _: None,  # type: ignore[list-item]
                                 own_clock=False)
        t2 = os.times()
    finally:
        stop.set()
        spinner.join()
    spent = (t2.user + t2.system) - (t.user + t.system)
    assert timing.events == 8 - 1  # the first poll starts the clock
    assert 7 * 0.2 * 0.9 <= timing.seconds <= 30  # seven more polls, 0.2 s apart
    assert 0 < timing.cpu_seconds <= spent + 2 / CLOCK_TICKS  # within the call's own CPU time
    assert timing.busy > 0.2  # the spinning thread kept (about) a core busy over the window
    assert timing.cpu_us_per_event == pytest.approx(timing.cpu_seconds / timing.events * 1e6)


class _Reporting(_Busy):
    """A worker in this process that reports when it began its first ingest batch and completed its last tables
    batch, as the worker's /freshness/ does: it begins at the second poll and ends at the eighth, and notes this
    process's own CPU time (os.times) at both moments, the oracle."""

    def __init__(self) -> None:
        super().__init__()
        self.began = self.ended = 0.0
        self.cpu_began = self.cpu_ended = 0.0

    def processed(self, agent: str) -> int:
        n = super().processed(agent)
        if agent == "ingest" and self.polls == 2:
            self.began, self.cpu_began = time.time(), _own_cpu_seconds()
        if agent == "ingest" and self.polls == 8:
            self.ended, self.cpu_ended = time.time(), _own_cpu_seconds()
        return n

    def json(self, path: str) -> dict[str, object]:
        assert path == "/freshness/"
        iso = lambda t: datetime.fromtimestamp(t, UTC).isoformat()  # noqa: E731
        return {"ingest": {"first_batch_at": iso(self.began)}, "tables": {"last_batch_at": iso(self.ended)}}


def test_the_workers_own_clock_times_the_drain_from_their_first_batch_to_their_last() -> None:
    stop = threading.Event()
    spinner = threading.Thread(target=lambda: [None for _ in iter(stop.is_set, True)])  # a core kept busy
    spinner.start()
    worker = _Reporting()
    try:
        timing = measure_workers([worker], 8, timeout=30.0, progress=lambda _: None)  # type: ignore[list-item]
    finally:
        stop.set()
        spinner.join()
    assert timing.events == 8  # every event: the window begins before any
    assert timing.seconds == pytest.approx(worker.ended - worker.began, abs=1e-5)  # (microseconds in the text)
    assert 6 * 0.2 * 0.9 <= timing.seconds  # six polls apart
    oracle = worker.cpu_ended - worker.cpu_began
    # read from /proc every 10 ms: at most one interval and a tick or two early at either end
    assert abs(timing.cpu_seconds - oracle) <= 0.02 + 3 / CLOCK_TICKS, (timing.cpu_seconds, oracle)
    assert timing.busy > 0.2


def test_a_worker_that_does_not_report_its_first_batch_cannot_be_timed_by_its_own_clock() -> None:
    class Silent(_Busy):
        def json(self, path: str) -> dict[str, object]:
            return {"ingest": {"events_applied": 3}, "tables": {"last_batch_at": None}}

    with pytest.raises(BenchError, match="first_batch_at"):
        measure_workers([Silent()], 3, timeout=30.0, progress=lambda _: None)  # type: ignore[list-item]


def test_a_cpu_trace_reads_the_cpu_time_at_a_past_moment() -> None:
    with CpuTrace([os.getpid()], interval=0.01) as trace:
        before_t, before = time.time(), _own_cpu_seconds()
        end = time.process_time() + 0.2
        while time.process_time() < end:
            pass
        after_t, after = time.time(), _own_cpu_seconds()
        time.sleep(0.05)
    assert trace.at(before_t) <= before + 2 / CLOCK_TICKS
    assert trace.at(after_t) == pytest.approx(after, abs=0.02 + 3 / CLOCK_TICKS)
    assert trace.at(after_t) - trace.at(before_t) == pytest.approx(after - before, abs=0.04 + 4 / CLOCK_TICKS)
    assert trace.at(0.0) == trace.cpu[0]  # before every reading: the first
    assert trace.error is None


def test_a_cpu_trace_of_a_process_that_is_gone_says_so() -> None:
    with pytest.raises(BenchError, match="CPU time of pid"):
        CpuTrace([2**22 + 12345]).__enter__()  # gone before the first reading
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(0.3)"])
    with CpuTrace([child.pid], interval=0.01) as trace:
        child.wait()
        time.sleep(0.1)  # (reaped: its /proc entry is gone)
    assert isinstance(trace.error, BenchError) and len(trace.times) >= 1
    assert len(trace.times) >= 5 and trace.times == sorted(trace.times)  # (this thread spun, holding the GIL)


def test_the_machine_was_busy_at_least_as_long_as_this_process() -> None:
    machine, mine = machine_busy_seconds(), _own_cpu_seconds()
    end = time.process_time() + 0.3
    while time.process_time() < end:
        pass
    busy, used = machine_busy_seconds() - machine, _own_cpu_seconds() - mine
    assert used >= 0.25  # (os.times counts in clock ticks)
    assert busy >= used - 2 / CLOCK_TICKS  # every core's busy time, this process's among it
    assert busy <= (os.cpu_count() or 1) * 5  # (and not some other counter: at most every core, for the ~0.3 s)


def _niceness() -> int:
    return os.getpriority(os.PRIO_PROCESS, 0)  # Linux: the calling thread's own


def test_a_niced_thread_runs_lower_and_so_do_the_threads_it_starts_the_caller_does_not() -> None:
    base = _niceness()
    seen: dict[str, int] = {}

    def work() -> str:
        seen["thread"] = _niceness()
        child = threading.Thread(target=lambda: seen.__setitem__("child", _niceness()))
        child.start()  # as kafka-python starts its network thread
        child.join()
        return "done"

    assert in_niced_thread(work, 10) == "done"
    assert seen == {"thread": min(base + 10, 19), "child": min(base + 10, 19)}
    assert _niceness() == base
    assert in_niced_thread(_niceness, 0) == base


def test_a_niced_threads_error_reaches_the_caller() -> None:
    def fail() -> None:
        raise BenchError("no broker")

    with pytest.raises(BenchError, match="no broker"):
        in_niced_thread(fail, 5)


def test_the_publishers_niceness_option_takes_0_to_19_and_refuses_the_rest(capsys: pytest.CaptureFixture[str]) -> None:
    from bench.cli import LATENCY_PUBLISHER_NICE, build_parser

    parser = build_parser()
    assert parser.parse_args([]).latency_publisher_nice == LATENCY_PUBLISHER_NICE == 10
    assert parser.parse_args(["--latency-publisher-nice", "0"]).latency_publisher_nice == 0
    assert parser.parse_args(["--latency-publisher-nice", "19"]).latency_publisher_nice == 19
    for bad, says in (("-5", "not between 0"), ("20", "not between 0"), ("ten", "not a whole number")):
        with pytest.raises(SystemExit) as exit_:
            parser.parse_args(["--latency-publisher-nice", bad])
        assert exit_.value.code == 2 and says in capsys.readouterr().err
