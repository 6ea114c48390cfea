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
import random
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

from core.settings import PROJECT_ROOT, Settings
from events.base import Event
from events.simulator import alliance_day
from events.simulator.revisions import corrected_copy, correction, retraction
from events.topics import ingest_topic
from infra.oracle import accepted_events, expected_aggregates
from tests.stack import worker_and_projector

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


async def test_retractions_and_corrections_move_every_stage_to_the_events_left_standing(
        settings: Settings, pg_dsn: str, unique: str) -> None:
    records = alliance_day(seed=41, scale=0.05)
    accepted = accepted_events(records)
    rng = random.Random(unique)
    async with worker_and_projector(settings, pg_dsn, unique, "revise") as stack:
        stack.publish(records)

        def not_revisable(state: dict[str, Any]) -> list[bytes]:
            return [h.get("x-alliance-university", b"") for _, h in state[stack.dlq].values()
                    if h.get("x-alliance-reject-reason") == b"not_revisable"]

        def tool(command: str, university: str, lines: list[Event], name: str) -> subprocess.CompletedProcess[str]:
            return _cli(command, university, [e.model_dump(mode="json") for e in lines],
                        ingest_topic(university) + stack.suffix, stack.env, stack.log_dir / f"{name}.jsonl")

        await stack.exact_everywhere(expected_aggregates(accepted), "day")

        # what the universities take back and correct: a few events of each kind, by their own university
        by_type: dict[str, list[Event]] = {}
        for e in accepted:
            by_type.setdefault(e.type, []).append(e)
        picked = [e for t in TYPES for e in rng.sample(by_type[t], min(3, len(by_type[t])))]
        seekers = sorted({str(s) for e in accepted if (s := getattr(e.data, "seeker_id", None))})
        retract, fix = picked[::2], picked[1::2]
        corrected = {e.event_id: corrected_copy(rng, e, seekers) for e in fix}
        # (the oracle's copies of what the tool sends; only the originals and the corrected versions matter)
        revisions: list[Event] = [retraction(e, event_id=str(uuid.uuid4())) for e in retract]
        revisions += [correction(e, corrected[e.event_id], event_id=str(uuid.uuid4())) for e in fix]

        # another university's posting: refused by the tool itself; another university's service: sent,
        # refused by the worker as not the stranger's (its id is unknown among the stranger's events)
        posting = next(e for e in retract if e.type == "recruitment.job_posted")
        stranger = next(u for u in ("scu", "cqu", "uestc") if u != posting.source)
        refused = tool("retract", stranger, [posting], "stranger-posting")
        assert refused.returncode == 1 and "may not change it" in refused.stderr, refused.stderr
        service = next(e for e in accepted if e.family == "services" and e.source != stranger)
        sent = tool("retract", stranger, [service], "stranger-service")
        assert sent.returncode == 0, sent.stderr

        for university in sorted({e.source for e in picked}):
            for command, lines in (("retract", [e for e in retract if e.source == university]),
                                   ("correct", [corrected[e.event_id] for e in fix if e.source == university])):
                if lines:
                    done = tool(command, university, lines, f"{command}-{university}")
                    assert done.returncode == 0, done.stderr
                    assert len(done.stdout.splitlines()) == len(lines)
        # a crash at the worst moment: both killed while the revisions are being applied, then started again
        await asyncio.sleep(rng.uniform(0.2, 1.5))
        await stack.crash_and_restart()
        expected = expected_aggregates(accepted + revisions)
        assert expected != expected_aggregates(accepted)
        await stack.exact_everywhere(expected, "revised", check=lambda s: not_revisable(s) == [stranger.encode()])

        # the same retraction again: refused (retracted already), nothing moves
        again = tool("retract", posting.source, [posting], "again")
        assert again.returncode == 0, again.stderr
        await stack.exact_everywhere(expected, "again", check=lambda s: sorted(not_revisable(s)) == sorted(
            [stranger.encode(), posting.source.encode()]))
        assert await stack.conn.fetchval("SELECT count(*) FROM event_log WHERE revised_at IS NOT NULL") == len(picked)
        assert stack.alive()
