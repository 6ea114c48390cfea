"""Faust worker subprocesses (``python -m streams worker``) and their /freshness/ and /metrics endpoints."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.report import BenchError
from core.settings import PROJECT_ROOT
from infra.processes import free_ports, terminate, wait_until


def worker_command(web_port: int, profiled: bool = False, module: str = "streams") -> list[str]:
    module = "bench.profiled_worker" if profiled else module
    return [sys.executable, "-m", module, "worker", "-l", "warning", "--web-port", str(web_port)]


@dataclass
class Worker:
    bootstrap: str
    suffix: str
    app_id: str
    log_dir: Path
    env_extra: dict[str, str] = field(default_factory=dict)
    module: str = "streams"  # bench.noop_worker for the framework ceiling
    web_port: int = 0
    proc: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0

    @property
    def log_file(self) -> Path:
        return self.log_dir / f"worker-{self.app_id}-{self.web_port}.log"

    def start(self) -> None:
        self.web_port = free_ports(1)[0]
        self.log_dir.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "ALLIANCE_KAFKA_BOOTSTRAP_SERVERS": self.bootstrap,
               "ALLIANCE_TOPIC_SUFFIX": self.suffix, "ALLIANCE_APP_ID": self.app_id,
               "ALLIANCE_WEB_PORT": str(self.web_port), "ALLIANCE_METRICS_PORT": "0", **self.env_extra}
        with open(self.log_file, "ab") as log:
            command = worker_command(self.web_port, profiled="BENCH_PROFILE_OUT" in self.env_extra,
                                     module=self.module)
            self.proc = subprocess.Popen(command, cwd=PROJECT_ROOT, env=env,
                                         stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         start_new_session=True)
        self.started_at = time.monotonic()

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, lines: int = 25) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no log)"

    def _get(self, path: str, timeout: float = 2.0) -> bytes | None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.web_port}{path}", timeout=timeout) as resp:
                data: bytes = resp.read()
                return data
        except (urllib.error.URLError, OSError, TimeoutError):
            return None

    def freshness(self) -> dict[str, Any] | None:
        """The /freshness/ document, or None while the web server is not up."""
        if not self.alive():
            raise BenchError(f"worker {self.app_id} exited with {self.proc and self.proc.returncode}:\n"
                             f"{self.log_tail()}")
        body = self._get("/freshness/")
        if body is None:
            return None
        try:
            doc: dict[str, Any] = json.loads(body)
        except ValueError:
            return None
        return doc

    def processed(self, agent: str) -> int:
        """Events ``agent`` applied for the first time (replays after a rebalance are not progress)."""
        info = (self.freshness() or {}).get(agent, {})
        return int(info.get("events_applied", info.get("events_processed", 0)))

    def metrics(self) -> str:
        body = self._get("/metrics", timeout=5.0)
        return body.decode(errors="replace") if body else ""

    def wait_web(self, timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.freshness() is not None:
                return
            time.sleep(0.2)
        raise BenchError(f"worker {self.app_id} web server not up after {timeout:.0f}s:\n{self.log_tail()}")

    def wait_ready(self, timeout: float = 120.0) -> None:
        """Until /readyz says the worker has its partitions (no rebalance in progress)."""
        def ready() -> bool:
            if not self.alive():
                raise BenchError(f"worker {self.app_id} exited:\n{self.log_tail()}")
            return self._get("/readyz") == b"ready\n"

        wait_until(ready, timeout, f"worker {self.app_id}", self.log_tail)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            terminate(self.proc.pid, timeout=20)
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.proc = None


def total(workers: list[Worker], agent: str) -> int:
    return sum(w.processed(agent) for w in workers)
