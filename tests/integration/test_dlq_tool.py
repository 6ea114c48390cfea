"""``python -m events.tools dlq summary|export|redrive`` against a real worker: a university's rejects are
summarised by reason, exported as a file it can fix, the fixed records redriven once (a second redrive sends
nothing) and applied; personal-data rejects cannot be exported (the DLQ kept no value)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaProducer
from prometheus_client.parser import text_string_to_metric_families

from core.kafka_access import ADMIN
from core.settings import PROJECT_ROOT, Settings
from core.topic_admin import provision_deployment
from events import wire
from events.tools.dlq_kafka import read_dlq, read_topic
from events.topics import DLQ_TOPIC, agg_topic, ingest_topic
from infra.processes import free_ports, worker
from infra.verify import latest

pytestmark = pytest.mark.integration


def _posting(n: int, *, source: str = "scu", salary_max: int = 30000, title: str = "Engineer") -> dict[str, Any]:
    at = (datetime.now(UTC) - timedelta(minutes=10)).isoformat()
    return {"event_id": f"7d3e1c2a-0000-4000-8000-{n:012d}", "type": "recruitment.job_posted", "source": source,
            "occurred_at": at, "data": {
                "posting_id": f"{source}-job-dlq-{n}", "employer_id": "emp-dlq", "employer_name": "Chongqing Rail",
                "employer_type": "state_owned", "industry": "logistics", "city": "chongqing", "title": title,
                "positions": 1 + n, "degree_min": "bachelor", "salary_min": 20000, "salary_max": salary_max,
                "deadline": "2030-01-01"}}


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "events.tools", "dlq", *args], cwd=PROJECT_ROOT, env=env,
                          capture_output=True, text=True, timeout=120, check=False)


def _dlq_series(port: int, name: str = "alliance_dlq_records") -> dict[tuple[str, str], float]:
    """{(reason, university): value} of one metric of the watcher's /metrics (empty while it does not answer)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
            text = r.read().decode()
    except OSError:
        return {}
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name:
                out[(s.labels["reason"], s.labels.get("university", ""))] = s.value
    return out


async def test_summary_export_fix_and_redrive_once(settings: Settings, unique: str, tmp_path: Path) -> None:
    suffix = f".d{unique}"
    cfg = settings.model_copy(update={"topic_suffix": suffix, "app_id": f"dlq-{unique}"})
    provision_deployment(cfg)
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("ALLIANCE_")},
           **cfg.kafka_env(), "ALLIANCE_TOPIC_SUFFIX": suffix}
    scu_topic = ingest_topic("scu") + suffix
    bad = [_posting(n, salary_max=9000) for n in range(3)]  # salary_min > salary_max: fixable
    raw = [json.dumps(b).encode() for b in bad]
    raw.append(json.dumps(_posting(7, title="call 138 0013 8000")).encode())  # personal data: not exportable
    raw.append(b'{"type": "recruitment.job_posted", "source": "scu", ')  # malformed
    raw.append(json.dumps(_posting(8, source="cqu")).encode())  # spoofed: cqu on scu's topic
    producer = KafkaProducer(**cfg.kafka("scu").kafka_python(), acks="all")  # scu's own system
    for value in raw:
        producer.send(scu_topic, value, key=b"k").get(timeout=30)
    producer.close()

    w = worker(0, cfg.model_copy(update={"web_port": free_ports(1)[0]}), cfg.local_dir / f"dlq-{unique}")
    try:
        w.start(cfg)
        deadline = time.monotonic() + 120
        while len(read_dlq(cfg.kafka(ADMIN), DLQ_TOPIC + suffix)) < len(raw):
            assert time.monotonic() < deadline and w.alive(), "the rejects never reached the DLQ"
            await asyncio.sleep(0.5)

        summary = _cli(env, "summary", "--json", "--no-progress")
        assert summary.returncode == 0, summary.stderr
        counts = {(r["university"], r["reason"]): r["records"] for r in json.loads(summary.stdout)}
        assert counts == {("scu", "invalid"): 3, ("scu", "personal_data"): 1, ("scu", "malformed"): 1,
                          ("scu", "spoofed_source"): 1}
        # the same figures as Prometheus metrics: `dlq watch` (ops), scraped like Prometheus would
        port = free_ports(1)[0]
        watcher = await asyncio.to_thread(
            subprocess.Popen, [sys.executable, "-m", "events.tools", "dlq", "watch", "--metrics-port", str(port),
                               "--interval", "1"], cwd=PROJECT_ROOT, env=env, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL)
        try:
            series: dict[tuple[str, str], float] = {}
            deadline = time.monotonic() + 60
            while series != {k[::-1]: float(v) for k, v in counts.items()}:
                assert time.monotonic() < deadline and watcher.poll() is None, (series, watcher.poll())
                await asyncio.sleep(0.5)
                series = _dlq_series(port)
            ages = _dlq_series(port, "alliance_dlq_oldest_age_seconds")
            assert set(ages) == {(r, "") for _, r in counts} and all(a >= 0 for a in ages.values())
        finally:
            watcher.terminate()
            watcher.wait(timeout=30)
        table = _cli(env, "summary", "--university", "scu", "--no-progress")
        assert table.returncode == 0 and "6 record(s)" in table.stdout and "personal_data" in table.stdout

        exported = tmp_path / "scu-rejects.jsonl"
        out = _cli(env, "export", "--university", "scu", "--out", str(exported))
        assert out.returncode == 0, out.stderr
        assert "5 reject(s) written" in out.stdout and "1 refused as personal data" in out.stdout
        lines = [json.loads(x) for x in exported.read_text(encoding="utf-8").splitlines()]
        assert {x["reason"] for x in lines} == {"invalid", "malformed", "spoofed_source"}
        assert all("salary_min" in x["detail"] for x in lines if x["reason"] == "invalid")
        assert "138 0013 8000" not in exported.read_text(encoding="utf-8")

        for x in lines:  # the university fixes what it can: the salary range
            if x["reason"] == "invalid":
                x["record"]["data"]["salary_max"] = 30000
        fixed = tmp_path / "scu-fixed.jsonl"
        fixed.write_text("".join(json.dumps(x, ensure_ascii=False) + "\n" for x in lines), encoding="utf-8")

        dry = _cli(env, "redrive", "--university", "scu", str(fixed), "--dry-run")
        assert "0 redriven (dry run)" in dry.stdout and "5 would be sent" in dry.stdout, dry.stdout
        first = _cli(env, "redrive", "--university", "scu", str(fixed))
        assert first.returncode == 1, first.stdout + first.stderr  # the malformed and the spoofed line remain
        assert "3 redriven, 0 already redriven" in first.stdout and "2 line(s) still invalid" in first.stdout
        assert "source" in first.stderr  # the spoofed line: not scu's event
        again = _cli(env, "redrive", "--university", "scu", str(fixed))
        assert "0 redriven, 3 already redriven" in again.stdout and again.returncode == 1, again.stdout

        # the fixed postings are applied; each was redriven exactly once
        ids = {f"scu-job-dlq-{n}" for n in range(3)}
        state = await latest(cfg.kafka(ADMIN), [agg_topic("posting-funnel") + suffix], f"check-{unique}",
                             lambda st: ids <= set(st[agg_topic("posting-funnel") + suffix]),
                             wait_s=90)
        assert ids <= set(state[agg_topic("posting-funnel") + suffix])
        redrives = [dict(r.headers)[wire.REDRIVE_OF] for r in read_topic(cfg.kafka(ADMIN), scu_topic)
                    if wire.REDRIVE_OF in dict(r.headers)]
        assert len(redrives) == len(set(redrives)) == 3
    finally:
        w.stop()
