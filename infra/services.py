"""Worker and projector processes of the main job: start, readiness, progress, stop."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.settings import PROJECT_ROOT, Settings
from infra.errors import InfraError
from infra.processes import tail, wait_until


@dataclass
class Service:
    name: str
    argv: list[str]
    log: Path
    port: int
    proc: subprocess.Popen[bytes] | None = None

    def start(self, settings: Settings) -> None:
        env = {**os.environ, "ALLIANCE_KAFKA_BOOTSTRAP_SERVERS": settings.bootstrap,
               "ALLIANCE_DATABASE_URL": settings.dsn, "ALLIANCE_TOPIC_SUFFIX": settings.topic_suffix,
               "ALLIANCE_APP_ID": settings.app_id, "ALLIANCE_LOCAL_DIR": str(settings.local_dir),
               "PYTHONUNBUFFERED": "1"}
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen([sys.executable, *self.argv], env=env, cwd=PROJECT_ROOT, stdout=out,
                                         stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        print(f"[run] {self.name} started (pid {self.proc.pid}, log {self.log.relative_to(PROJECT_ROOT)})",
              flush=True)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def get(self, path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=5) as resp:
                return int(resp.status), resp.read().decode()
        except urllib.error.HTTPError as exc:  # 503 from /readyz says why in its body
            return exc.code, exc.read().decode(errors="replace")
        except OSError:
            return 0, ""

    def wait_ready(self, timeout: float) -> None:
        def ready() -> bool:
            if not self.alive():
                raise InfraError(f"{self.name} exited during start-up:\n{tail(self.log)}")
            return self.get("/readyz")[0] == 200

        wait_until(ready, timeout, self.name, lambda: tail(self.log))

    def stop(self, timeout: float = 30.0) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait(timeout=10)


def worker(index: int, settings: Settings, log_dir: Path) -> Service:
    port = settings.web_port + index
    return Service(f"worker-{index + 1}", ["-m", "streams", "worker", "--web-port", str(port), "-l", "info"],
                   log_dir / f"worker-{index + 1}.log", port)


def projector(settings: Settings, log_dir: Path, port: int) -> Service:
    return Service("projector", ["-m", "consumers", "run", "--metrics-port", str(port)],
                   log_dir / "projector.log", port)


def freshness(workers: list[Service], field: str = "events_processed") -> dict[str, int]:
    """A /freshness/ counter per agent, summed over the workers: ``events_processed`` (replays after a
    rebalance included) or ``events_applied`` (first-time events; ingest and tables only)."""
    total: dict[str, int] = {}
    for w in workers:
        status, body = w.get("/freshness/")
        if status != 200:
            continue
        data: dict[str, Any] = json.loads(body)
        for agent, info in data.items():
            if field in info:
                total[agent] = total.get(agent, 0) + int(info[field])
    return total


def metric_sum(service: Service, name: str) -> dict[str, float]:
    """Samples of one metric family from a service's /metrics, by label string."""
    status, body = service.get("/metrics")
    out: dict[str, float] = {}
    if status != 200:
        return out
    for line in body.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            labels, value = line.rsplit(" ", 1)
            out[labels[len(name):]] = float(value)
    return out


def label(labels: str, name: str) -> str:
    """The value of label ``name`` in a sample's label string as :func:`metric_sum` returns it."""
    return labels.split(f'{name}="', 1)[1].split('"', 1)[0]
