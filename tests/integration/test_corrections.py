"""Corrections and retractions end to end, with a real worker, the real projector, Kafka and PostgreSQL.

Universities take back and correct some of their events of the day with their own tool
(``python -m events.tools retract / correct``), while the worker and the projector are killed (-9) and
started again. Afterwards every figure, on the aggregated topics, in ``agg_snapshot`` and in the typed
tables, is the independent oracle's for the events left standing. The tool refuses to revise another
university's posting; a stranger's retraction it cannot judge (a service another university delivered) is
refused by the worker (``not_revisable``, counted against the stranger); sending the same retractions again
changes nothing (each is refused: retracted already).
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from pydantic import SecretStr

from consumers.migrate import migrate
from core.kafka_access import ADMIN
from core.settings import PROJECT_ROOT, Settings
from core.topic_admin import provision
from events.base import Event
from events.simulator import alliance_day
from events.simulator.publish import publish
from events.simulator.revisions import corrected_copy, correction, retraction
from events.topics import AGGREGATES, DLQ_TOPIC, agg_topic, ingest_topic
from infra.oracle import accepted_events, expected_aggregates
from infra.processes import free_ports, projector, worker
from infra.verify import TYPED, aggregates_on_topics, all_match, latest, snapshot, typed_tables, value_diffs

pytestmark = pytest.mark.integration

TYPES = ("recruitment.job_posted", "recruitment.application_submitted", "recruitment.hired",
         "recruitment.offer_accepted", "jobfair.student_checked_in", "jobfair.booth_registered",
         "mentoring.session_held", "mentoring.mentor_assigned", "services.job_recommended",
         "services.policy_briefing_delivered")


def _cli(command: str, university: str, lines: list[dict[str, Any]], topic: str, env: dict[str, str],
         path: Path) -> subprocess.CompletedProcess[str]:
    path.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    return subprocess.run([sys.executable, "-m", "events.tools", command, "-u", university, "--topic", topic,
                           "--reason", "data entry error", str(path)], cwd=PROJECT_ROOT, env=env,
                          capture_output=True, text=True, timeout=120, check=False)


async def _poll(check: Callable[[], Awaitable[bool]], within: float) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline and not await check():  # noqa: ASYNC110  (polling a database)
        await asyncio.sleep(0.5)


async def test_retractions_and_corrections_move_every_stage_to_the_events_left_standing(
        settings: Settings, pg_dsn: str, unique: str) -> None:
    records = alliance_day(seed=41, scale=0.05)
    accepted = accepted_events(records)
    suffix = f".c{unique}"
    app_id = f"revise-{unique}"
    provision(settings.kafka(ADMIN), suffix=suffix, app_id=app_id)
    await migrate(pg_dsn)
    cfg = settings.model_copy(update={"topic_suffix": suffix, "app_id": app_id, "database_url": SecretStr(pg_dsn)})
    log_dir = settings.local_dir / f"corrections-{unique}"
    log_dir.mkdir(parents=True, exist_ok=True)
    worker_port, projector_port = free_ports(2)
    w = worker(0, cfg.model_copy(update={"web_port": worker_port}), log_dir)
    p = projector(cfg, log_dir, projector_port)
    agg_topics = [agg_topic(n) + suffix for n in AGGREGATES]
    dlq = DLQ_TOPIC + suffix
    env = {**os.environ, **cfg.kafka_env()}
    conn = await asyncpg.connect(pg_dsn)
    rng = random.Random(unique)
    try:
        w.start(cfg)
        p.start(cfg)
        await asyncio.to_thread(w.wait_ready, 120)
        await asyncio.to_thread(p.wait_ready, 60)
        assert publish([replace(r, topic=r.topic + suffix) for r in records], settings.kafka) == len(records)

        async def caught_up(expected: dict[str, Any], check: Callable[[dict[str, Any]], bool], group: str) -> None:
            def done(state: dict[str, Any]) -> bool:
                assert w.alive() and p.alive(), f"a process exited; see {log_dir}"
                return all_match(aggregates_on_topics(state, suffix), expected) and check(state)

            state = await latest(settings.kafka(ADMIN), [*agg_topics, dlq], f"check-{group}-{unique}", done,
                                 wait_s=180)
            on_topics = aggregates_on_topics(state, suffix)
            for name in AGGREGATES:
                assert not value_diffs(on_topics[name], expected[name]), (name, value_diffs(on_topics[name],
                                                                                           expected[name])[:5])
            assert check(state)

            async def projected() -> bool:
                return all_match(await snapshot(conn), expected) and all_match(await typed_tables(conn), expected,
                                                                               TYPED)

            await _poll(projected, 120)
            in_snapshot, in_tables = await snapshot(conn), await typed_tables(conn)
            for name in AGGREGATES:
                assert not value_diffs(in_snapshot[name], expected[name]), ("agg_snapshot", name)
            for name in TYPED:
                assert not value_diffs(in_tables[name], expected[name]), ("typed tables", name)

        def not_revisable(state: dict[str, Any]) -> list[bytes]:
            return [h.get("x-alliance-university", b"") for _, h in state[dlq].values()
                    if h.get("x-alliance-reject-reason") == b"not_revisable"]

        await caught_up(expected_aggregates(accepted), lambda s: True, "day")

        # what the universities take back and correct: a few events of each kind, by their own university
        by_type: dict[str, list[Event]] = {}
        for e in accepted:
            by_type.setdefault(e.type, []).append(e)
        picked = [e for t in TYPES for e in rng.sample(by_type[t], min(3, len(by_type[t])))]
        seekers = sorted({str(s) for e in accepted if (s := getattr(e.data, "seeker_id", None))})
        retract = picked[::2]
        corrected = {e.event_id: corrected_copy(rng, e, seekers) for e in picked[1::2]}
        # (the oracle's copies of what the tool sends; only the originals and the corrected versions matter)
        revisions: list[Event] = [retraction(e, event_id=str(uuid.uuid4())) for e in retract]
        revisions += [correction(e, corrected[e.event_id], event_id=str(uuid.uuid4())) for e in picked[1::2]]

        # another university's posting: refused by the tool itself; another university's service: sent,
        # refused by the worker as not the stranger's (its id is unknown among the stranger's events)
        posting = next(e for e in retract if e.type == "recruitment.job_posted")
        stranger = next(u for u in ("scu", "cqu", "uestc") if u != posting.source)
        refused = _cli("retract", stranger, [posting.model_dump(mode="json")], ingest_topic(stranger) + suffix, env,
                       log_dir / "stranger-posting.jsonl")
        assert refused.returncode == 1 and "may not change it" in refused.stderr, refused.stderr
        service = next(e for e in accepted if e.family == "services" and e.source != stranger)
        sent = _cli("retract", stranger, [service.model_dump(mode="json")], ingest_topic(stranger) + suffix, env,
                    log_dir / "stranger-service.jsonl")
        assert sent.returncode == 0, sent.stderr

        for university in sorted({e.source for e in picked}):
            mine = [e.model_dump(mode="json") for e in retract if e.source == university]
            fixes = [corrected[e.event_id].model_dump(mode="json") for e in picked[1::2] if e.source == university]
            for command, lines in (("retract", mine), ("correct", fixes)):
                if lines:
                    done = _cli(command, university, lines, ingest_topic(university) + suffix, env,
                                log_dir / f"{command}-{university}.jsonl")
                    assert done.returncode == 0, done.stderr
                    assert len(done.stdout.splitlines()) == len(lines)
        # a crash at the worst moment: both killed while the revisions are being applied, then started again
        await asyncio.sleep(rng.uniform(0.2, 1.5))
        for service_process in (w, p):
            service_process.proc.kill()  # type: ignore[union-attr]
            await asyncio.to_thread(service_process.proc.wait)  # type: ignore[union-attr]
        w.start(cfg)
        p.start(cfg)
        await asyncio.to_thread(w.wait_ready, 120)
        await asyncio.to_thread(p.wait_ready, 60)
        expected = expected_aggregates(accepted + revisions)
        assert expected != expected_aggregates(accepted)
        await caught_up(expected, lambda s: not_revisable(s) == [stranger.encode()], "revised")

        # the same retractions again: each refused (retracted already), nothing moves
        again = _cli("retract", posting.source, [posting.model_dump(mode="json")],
                     ingest_topic(posting.source) + suffix, env, log_dir / "again.jsonl")
        assert again.returncode == 0, again.stderr
        await caught_up(expected, lambda s: sorted(not_revisable(s)) == sorted([stranger.encode(),
                                                                               posting.source.encode()]), "again")
        logged = await conn.fetchval("SELECT count(*) FROM event_log WHERE revised_at IS NOT NULL")
        assert logged == len(picked)
        assert w.alive() and p.alive()
    finally:
        await conn.close()
        p.stop()
        w.stop()
