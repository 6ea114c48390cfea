"""infra.chaos's verdict beyond the figures: a run whose service logs show a fault that can make figures
wrong fails even when its figures came out exact."""

from __future__ import annotations

from pathlib import Path

from infra.chaos import RunResult, format_table, log_incidents, table
from infra.verify import Verdict


def test_a_worker_log_with_a_missing_topic_makes_the_run_fail(tmp_path: Path) -> None:
    (tmp_path / "worker-1.log").write_text("[INFO] ready\n[WARNING] Ignoring missing topic: 'x-rollups-changelog'\n")
    (tmp_path / "worker-2.log").write_text("[INFO] ready\n")
    (tmp_path / "kafka-clients.log").write_text("ERROR socket disconnected\n")
    incidents = log_incidents(tmp_path)
    assert len(incidents) == 1 and incidents[0].startswith("worker-1.log: faust's assignor left out a topic")
    bad = RunResult("kill-worker", 1900, Verdict(), False, 3.0, incidents, incidents)
    good = RunResult("kill-worker", 1900, Verdict(), False, 4.0)
    assert Verdict().exact and not bad.ok and good.ok
    rows = table([bad, good])
    assert rows[0]["incidents"] == 1 and rows[0]["stuck"] == 0
    assert "incidents" in format_table(rows).splitlines()[0]
