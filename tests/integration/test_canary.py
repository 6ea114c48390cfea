"""Canary: a student's raw number, name and ID card number, fed through the university's tools and the
simulator, never appear in any topic the alliance writes, any table changelog, the read model, a log or
a metric (issue #14, item 7).

Fed in four ways, against a real worker and projector:
1. the university's tools: ``python -m events.tools pseudonymise`` turns the number into the pseudonym used in
   valid events; lines that carry the name (an extra field), the ID number or the raw number (free text) are
   refused by ``python -m events.tools publish`` before anything is sent;
2. a university bypassing the tools writes a record with the ID number in free text straight to its ingest
   topic: the ingest refuses it (``personal_data``) and its DLQ copy keeps neither key nor value;
3. the simulator's sloppy-university records (raw student numbers as job-seeker ids and record keys,
   student names in extra fields, phone numbers) go the same way;
4. the simulator's valid day: only pseudonyms.
The ingest topics hold what the universities themselves wrote (2 and 3, until retention); everything
downstream is scanned byte for byte.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from kafka import KafkaProducer
from kafka.admin import KafkaAdminClient
from pydantic import SecretStr

from consumers.migrate import migrate
from core.kafka_access import ADMIN, KafkaAccess
from core.settings import PROJECT_ROOT, Settings
from core.topic_admin import provision_deployment
from events.codec import from_dict
from events.simulator import alliance_day
from events.simulator.publish import publish
from events.tools.dlq_kafka import read_topic
from events.topics import AGGREGATES, DLQ_TOPIC, agg_topic, ingest_topic
from infra.oracle import accepted_events, expected_aggregates
from infra.processes import Service, free_ports, projector, worker
from infra.verify import aggregates_on_topics, all_match, latest, value_diffs

pytestmark = pytest.mark.integration

NUMBER, NAME, ID_CARD = "2023141460123", "张三丰", "51010419900307123X"
KEY = "canary-pseudonym-key-0123456789"


def _cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "events.tools", *args], cwd=PROJECT_ROOT, env=env,
                          capture_output=True, text=True, timeout=120, check=False)


def _event(type_: str, data: dict[str, Any], minutes_ago: int = 30) -> dict[str, Any]:
    at = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(time.time() - 60 * minutes_ago))
    return {"type": type_, "source": "scu", "occurred_at": at, "data": data}


def _simulator_personal_data(records: list[Any]) -> set[str]:
    """Raw student numbers and names the simulator's sloppy university put into its invalid records."""
    found: set[str] = set()
    for r in records:
        if r.kind != "invalid":
            continue
        try:
            data = json.loads(r.value).get("data", {})
        except (ValueError, AttributeError):
            continue
        if not isinstance(data, dict):
            continue
        for field in ("seeker_id", "seeker_ids"):
            values = data.get(field)
            for v in values if isinstance(values, list) else [values]:
                if isinstance(v, str) and v.isdigit() and len(v) >= 8:
                    found.add(v)
        if isinstance(data.get("student_name"), str):
            found.add(data["student_name"])
    return found


def _all_records(kafka: KafkaAccess, topics: list[str]) -> dict[str, list[bytes]]:
    """Every key, value and header of every record of ``topics``, read to their end offsets."""
    return {t: [part for rec in read_topic(kafka, t)
                for part in (rec.key or b"", rec.value or b"", *(v for _, v in rec.headers))] for t in topics}


def _forms(text: str) -> list[bytes]:
    """How ``text`` could be written: UTF-8, and JSON's \\u escapes."""
    return [text.encode(), json.dumps(text).strip('"').encode()]


async def test_no_raw_student_data_leaves_the_universities(settings: Settings, pg_dsn: str, unique: str,
                                                           tmp_path: Path) -> None:
    suffix = f".c{unique}"
    cfg = settings.model_copy(update={"topic_suffix": suffix, "app_id": f"canary-{unique}",
                                      "database_url": SecretStr(pg_dsn)})
    provision_deployment(cfg)
    await migrate(pg_dsn)
    env = {**os.environ, **cfg.kafka_env(), "ALLIANCE_PSEUDONYM_KEY": KEY, "ALLIANCE_PSEUDONYM_KEY_ID": "k1"}

    # 1. the university's tools
    pseudo = _cli("pseudonymise", "-u", "scu", NUMBER, env=env)
    assert pseudo.returncode == 0, pseudo.stderr
    seeker = pseudo.stdout.strip()
    assert seeker.startswith("ps.scu.k1.") and NUMBER not in seeker
    posting = {"posting_id": "scu-job-canary", "employer_id": "emp-canary", "employer_name": "Tianfu Software",
               "employer_type": "private", "industry": "it_software", "city": "chengdu", "title": "Engineer",
               "positions": 2, "degree_min": "bachelor", "salary_min": 9000, "salary_max": 15000,
               "deadline": "2030-01-01"}
    lines = [
        _event("recruitment.job_posted", posting, 40),
        _event("recruitment.application_submitted", {"posting_id": "scu-job-canary", "application_id": "scu-app-c1",
                                                    "seeker_id": seeker, "degree": "bachelor"}),
        _event("services.policy_briefing_delivered", {"seeker_id": seeker, "briefing_id": "scu-brief-c1",
                                                      "topic": "graduate employment policy"}),
        # what must never be sent: the name as an extra field, the ID number and the raw number in free text
        _event("services.policy_briefing_delivered", {"seeker_id": seeker, "briefing_id": "scu-brief-c2",
                                                      "topic": "policy", "student_name": NAME}),
        _event("recruitment.job_posting_updated", {"posting_id": "scu-job-canary", "title": f"for {ID_CARD}"}),
        _event("recruitment.job_posting_updated", {"posting_id": "scu-job-canary", "title": f"学号 {NUMBER}"}),
        _event("recruitment.application_submitted", {"posting_id": "scu-job-canary", "application_id": "scu-app-c2",
                                                    "seeker_id": NUMBER, "degree": "bachelor"}),
    ]
    jsonl = tmp_path / "canary.jsonl"
    jsonl.write_text("\n".join(json.dumps(x, ensure_ascii=False) for x in lines) + "\n", encoding="utf-8")
    sent = _cli("publish", "--university", "scu", "--topic", ingest_topic("scu") + suffix, "--no-progress",
                str(jsonl), env=env)
    assert sent.returncode == 1, sent.stdout + sent.stderr  # some lines refused, the valid ones sent
    assert "3 valid event(s)" in sent.stdout and "4 bad line(s)" in sent.stdout, sent.stdout
    for leaked in (NAME, ID_CARD, NUMBER):  # the report names field and reason, not the data
        assert leaked not in sent.stderr, sent.stderr

    # 2. a university bypassing the tools writes the ID number straight to its ingest topic
    bypass = dict(lines[4], event_id="6f1c9c1e-3b7a-4c6e-9a55-0d1f2e3c4b5a")
    producer = KafkaProducer(**cfg.kafka("scu").kafka_python(), acks="all")  # scu's own system
    producer.send(ingest_topic("scu") + suffix, json.dumps(bypass, ensure_ascii=False).encode(),
                  key=b"scu-job-canary").get(timeout=30)

    # 3 + 4. the simulator's day, sloppy records included
    records = alliance_day(seed=23, scale=0.05, pseudonym_key=KEY)
    simulated = _simulator_personal_data(records)
    assert len(simulated) >= 3, simulated  # raw numbers and names really were fed
    assert publish([replace(r, topic=r.topic + suffix) for r in records], cfg.kafka) == len(records)
    producer.close()

    log_dir = cfg.local_dir / f"canary-{unique}"
    web_port, metrics_port = free_ports(2)
    services: list[Service] = [worker(0, cfg.model_copy(update={"web_port": web_port}), log_dir),
                               projector(cfg, log_dir, metrics_port)]
    # the oracle: the simulated day plus the canary's three valid events
    expected = expected_aggregates(accepted_events(records) + [from_dict(x) for x in lines[:3]])
    try:
        for s in services:
            s.start(cfg)
        # converged: every aggregate of the simulated day on its topic, the canary's posting and seeker
        # projected
        state = await latest(cfg.kafka(ADMIN), [agg_topic(n) + suffix for n in AGGREGATES], f"check-{unique}",
                             lambda st: all_match(aggregates_on_topics(st, suffix), expected), wait_s=150)
        actual = aggregates_on_topics(state, suffix)
        assert all_match(actual, expected), {n: value_diffs(actual[n], expected[n])[:3] for n in AGGREGATES}
        conn = await asyncpg.connect(pg_dsn)
        try:
            deadline = time.monotonic() + 60
            while await conn.fetchval("SELECT count(*) FROM service_items WHERE seeker_id = $1", seeker) < 1:
                assert time.monotonic() < deadline, "the canary's pseudonym never reached the read model"
                await asyncio.sleep(0.5)
            tables = [r[0] for r in await conn.fetch(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")]
            read_model = b"\n".join([(await conn.fetchval(f'SELECT coalesce(string_agg(t::text, E\'\\n\'), \'\') '
                                                          f'FROM "{t}" t')).encode() for t in tables])
        finally:
            await conn.close()
        metrics = b"".join(s.get("/metrics")[1].encode() for s in services)
    finally:
        for s in services:
            s.stop()

    admin = KafkaAdminClient(**cfg.kafka(ADMIN).kafka_python())
    try:
        topics = [t for t in admin.list_topics() if t.endswith(suffix) or t.startswith(cfg.app_id)]
    finally:
        admin.close()
    downstream = [t for t in topics if not t.startswith("alliance.ingest.")]
    assert DLQ_TOPIC + suffix in downstream and any("changelog" in t for t in downstream), downstream
    data = _all_records(cfg.kafka(ADMIN), downstream)
    logs = b"".join(p.read_bytes() for p in log_dir.glob("*.log"))
    places = {"topics": b"\n".join(b"\n".join(v) for v in data.values()), "read model": read_model, "logs": logs,
              "metrics": metrics}
    assert seeker.encode() in places["topics"] and seeker.encode() in read_model  # the canary did flow
    for secret in [NUMBER, NAME, ID_CARD, *sorted(simulated)]:
        for where, blob in places.items():
            assert not any(form in blob for form in _forms(secret)), f"{secret!r} found in {where}"

