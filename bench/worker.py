"""Workers of the benchmark: ``python -m streams worker`` (or the no-op / profiled variants) as the one
process handle of the project, :class:`infra.processes.Service`, on a fresh web port."""

from __future__ import annotations

from pathlib import Path

from bench.env import Services
from bench.report import BenchError
from core.settings import Settings
from infra.processes import Service, free_port


class Worker(Service):
    """A benchmark worker: a Service with the run's topics (suffix), app id and extra environment."""

    def __init__(self, svc: Services, suffix: str, app_id: str, log_dir: Path, *, module: str = "streams",
                 env: dict[str, str] | None = None) -> None:
        port = free_port()
        module = "bench.profiled_worker" if env and "BENCH_PROFILE_OUT" in env else module
        super().__init__(f"worker {app_id}", ["-m", module, "worker", "-l", "warning", "--web-port", str(port)],
                         log_dir / f"worker-{app_id}-{port}.log", port,
                         env={"ALLIANCE_WEB_PORT": str(port), "ALLIANCE_METRICS_PORT": "0", **(env or {})},
                         quiet=True)
        self.settings = svc.settings(topic_suffix=suffix, app_id=app_id)

    def start(self, settings: Settings | None = None) -> None:
        super().start(settings or self.settings)

    def processed(self, agent: str) -> int:
        """Events ``agent`` applied for the first time (replays after a rebalance are not progress)."""
        if not self.alive():
            raise BenchError(f"{self.name} exited with {self.proc and self.proc.returncode}:\n{self.log_tail(25)}")
        info = (self.json("/freshness/") or {}).get(agent, {})
        return int(info.get("events_applied", info.get("events_processed", 0)))


def total(workers: list[Worker], agent: str) -> int:
    return sum(w.processed(agent) for w in workers)

