"""A real Prometheus (Debian's ``prometheus`` package) on loopback, scraping local processes with the
project's own alert rules (infra/prometheus/alerts.yml), for the chaos scenarios' alert checks.

Scrape and rule evaluation every second; the rules are the deployment's, unchanged (so an alert with
``for: 2m`` fires after two minutes here too). Alerts are read through Prometheus's HTTP API.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import yaml

from core.settings import PROJECT_ROOT
from infra.errors import InfraError
from infra.processes import free_port, port_open, tail, wait_until
from infra.tools import ensure_promtool

RULES = PROJECT_ROOT / "infra" / "prometheus" / "alerts.yml"


def find_prometheus() -> str:
    """The prometheus server binary, from the same Debian package as promtool (installed if missing)."""
    promtool = Path(ensure_promtool())
    for candidate in (promtool.parent / "prometheus", shutil.which("prometheus"), "/usr/bin/prometheus"):
        if candidate and Path(candidate).is_file():
            return str(candidate)
    raise InfraError("the prometheus server binary is missing (Debian package 'prometheus')")


class LocalPrometheus:
    def __init__(self, home: Path, targets: dict[str, list[int]]) -> None:
        self.home, self.targets = home, targets
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def log(self) -> Path:
        return self.home / "prometheus.log"

    def start(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        shutil.copy(RULES, self.home / "alerts.yml")
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": ["alerts.yml"],
            "scrape_configs": [
                {"job_name": job, "scrape_interval": "1s", "scrape_timeout": "900ms",
                 "static_configs": [{"targets": [f"127.0.0.1:{p}" for p in ports]}]}
                for job, ports in self.targets.items()
            ],
        }
        (self.home / "prometheus.yml").write_text(yaml.safe_dump(config))
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                [find_prometheus(), f"--config.file={self.home / 'prometheus.yml'}",
                 f"--storage.tsdb.path={self.home / 'data'}", f"--web.listen-address=127.0.0.1:{self.port}"],
                cwd=self.home, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        wait_until(lambda: port_open(self.port) and self._ready(), 60, "Prometheus", on_fail=lambda: tail(self.log))

    def _ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/-/ready", timeout=2) as resp:
                return int(resp.status) == 200
        except (urllib.error.URLError, OSError):
            return False

    def api(self, path: str) -> Any:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/api/v1/{path}", timeout=5) as resp:
            body = json.loads(resp.read())
        if body.get("status") != "success":
            raise InfraError(f"Prometheus API {path}: {body}")
        return body["data"]

    def wait_target_up(self, job: str, timeout: float = 60) -> None:
        def up() -> bool:
            targets = self.api("targets")["activeTargets"]
            mine = [t for t in targets if t["labels"].get("job") == job]
            return bool(mine) and all(t["health"] == "up" for t in mine)

        wait_until(up, timeout, f"Prometheus scraping {job}", on_fail=lambda: tail(self.log))

    def firing(self, alert: str) -> bool:
        return any(a["labels"].get("alertname") == alert and a["state"] == "firing"
                   for a in self.api("alerts")["alerts"])

    def wait_alert(self, alert: str, *, firing: bool, timeout: float) -> float:
        """Seconds until ``alert`` is firing (or no longer firing), checked through the HTTP API."""
        started = time.monotonic()
        wait_until(lambda: self.firing(alert) == firing, timeout,
                   f"alert {alert} {'firing' if firing else 'resolved'}", interval=1.0,
                   on_fail=lambda: json.dumps(self.api("alerts"))[:2000])
        return time.monotonic() - started

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
