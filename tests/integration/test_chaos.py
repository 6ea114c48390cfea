"""``python -m infra chaos``: one short run of every fault scenario, on a local stack of its own started by the
command itself (its own ports and state directory, beside the test session's broker and database; the
broker-bounce scenario on a 3-broker KRaft cluster the command starts and stops). Every run must end with
every aggregate exact on its topic, in agg_snapshot and in the typed tables; the worker-down scenario also
checks, through a real Prometheus's HTTP API, that AllianceWorkerDown fires and resolves. The long run (50
two-worker full days) is the same command with --repeat and --events."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from core.settings import PROJECT_ROOT
from infra.chaos import SCENARIOS
from infra.processes import free_ports

pytestmark = pytest.mark.integration


@pytest.mark.timeout(1200)
def test_every_scenario_once_is_exact(session_dir: Path) -> None:
    kafka, controller, pg = free_ports(3)
    out = session_dir / "chaos.json"
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("ALLIANCE_")},
           "ALLIANCE_LOCAL_DIR": str(session_dir / "chaos-stack"), "ALLIANCE_LOCAL_KAFKA_PORT": str(kafka),
           "ALLIANCE_LOCAL_KAFKA_CONTROLLER_PORT": str(controller), "ALLIANCE_LOCAL_POSTGRES_PORT": str(pg)}
    scenarios = list(SCENARIOS)
    try:
        done = subprocess.run([sys.executable, "-m", "infra", "chaos", "--events", "2000", "--timeout", "150",
                               "--json", str(out), "--bounces", "2", *(f"--scenario={s}" for s in scenarios)],
                              cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=1140, check=False)
    finally:
        subprocess.run([sys.executable, "-m", "infra", "down"], cwd=PROJECT_ROOT, env=env, capture_output=True,
                       timeout=120, check=False)
    print(done.stdout[-6000:])
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-3000:]
    report = json.loads(out.read_text())
    rows = {row["scenario"]: row for row in report["table"]}
    assert set(rows) == set(scenarios)
    for name, row in rows.items():
        assert (row["runs"], row["lost"], row["double_counted"], row["wrong_keys"], row["stuck"]) == (1, 0, 0, 0, 0), \
            (name, row)
        assert row["events_in"] > 1500
    assert "AllianceWorkerDown firing after" in done.stdout and "AllianceWorkerDown resolved" in done.stdout
    assert done.stdout.count("fault: kill -9 broker") == 2 and done.stdout.count("fault: SIGCONT") == 1
