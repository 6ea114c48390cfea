"""What the kernel accounts for a process (Linux ``/proc``): resident memory and CPU time. An independent
reading beside the system's own counters: the benchmark's rates come from the workers' ``/freshness/``, their
CPU time from here."""

from __future__ import annotations

import bisect
import os
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from bench.report import BenchError
from infra.processes import stat_fields

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise BenchError(f"no VmRSS for pid {pid}")


def cpu_ticks(stat: str) -> int:
    """User + system CPU time, in clock ticks, from the text of ``/proc/<pid>/stat`` (fields 14 and 15)."""
    fields = stat_fields(stat)  # from field 3
    return int(fields[11]) + int(fields[12])


def cpu_seconds(pid: int) -> float:
    """CPU seconds (user + system) ``pid`` has used so far."""
    try:
        return cpu_ticks(Path(f"/proc/{pid}/stat").read_text()) / CLOCK_TICKS
    except (OSError, ValueError, IndexError) as exc:
        raise BenchError(f"cannot read the CPU time of pid {pid}: {exc}") from exc


def machine_busy_seconds() -> float:
    """CPU seconds the machine's cores have spent busy so far, summed over the cores (``/proc/stat``: user, nice,
    system, irq and softirq time; idle, I/O wait and a hypervisor's steal are not busy)."""
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()
        user, nice, system, _idle, _iowait, irq, softirq = (int(v) for v in fields[1:8])
    except (OSError, ValueError) as exc:
        raise BenchError(f"cannot read /proc/stat: {exc}") from exc
    return (user + nice + system + irq + softirq) / CLOCK_TICKS


class CpuTrace:
    """The CPU seconds (:func:`cpu_seconds`, summed) of ``pids``, read every ``interval`` s by a thread, so that
    their CPU time at a moment they report themselves (a worker's first and last batch) can be read afterwards:
    :meth:`at` gives the last reading at or before it, i.e. at most ``interval`` (and the kernel's tick) early."""

    def __init__(self, pids: Sequence[int], interval: float = 0.01) -> None:
        self.pids, self.interval = list(pids), interval
        self.times: list[float] = []  # time.time() of each reading
        self.cpu: list[float] = []
        self.error: BenchError | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="cpu-trace", daemon=True)

    def _read(self) -> None:
        at = time.time()
        total = sum(cpu_seconds(pid) for pid in self.pids)
        self.times.append(at)
        self.cpu.append(total)

    def _run(self) -> None:
        try:
            while not self._stop.wait(self.interval):
                self._read()
        except BenchError as exc:  # a process gone: readings up to here stand
            self.error = exc

    def __enter__(self) -> CpuTrace:
        self._read()  # one reading before the thread's first
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        if self.error is None:
            self._read()

    def at(self, when: float) -> float:
        """The CPU seconds read last at or before ``when`` (the first reading if ``when`` precedes it)."""
        i = bisect.bisect_right(self.times, when)
        return self.cpu[max(i - 1, 0)]
