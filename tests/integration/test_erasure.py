"""PIPL erasure end to end, with a real worker, the real projector, Kafka and PostgreSQL.

A university asks, with its own tool (``python -m events.tools erase``), to erase its most active students
(checked in at fairs, applied, offered, hired, mentored, served). Afterwards:

- no live record of the worker's entity-state changelog names them (their keys are tombstones), their
  1-1-3-1 record on ``alliance.agg.seeker-guarantee`` is a tombstone, no read-model row names them;
- every figure, on the aggregated topics, in ``agg_snapshot`` and in the typed tables, is still exactly the
  independent oracle's (an erasure removes identifiers, not counts);
- events naming them that arrive later are refused by the worker (``erased_seeker``, DLQ copy without key
  and value) and not projected into the read model; the figures stay the oracle's;
- a request for another university's student is refused by the tool and, sent anyway, by the ingest.
"""

from __future__ import annotations

import asyncio
import random
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from core.settings import PROJECT_ROOT, Settings
from events.base import Event
from events.codec import encode, from_dict
from events.privacy import minted_by, named_seekers
from events.simulator import Record, alliance_day
from events.simulator.revisions import correction
from events.topics import agg_topic, ingest_topic
from infra.oracle import accepted_events, expected_aggregates
from infra.processes import freshness
from streams import erasure
from tests.data.samples import most_active_seekers
from tests.stack import worker_and_projector

pytestmark = pytest.mark.integration


def _erase_cli(university: str, seekers: list[str], topic: str,
               env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "events.tools", "erase", "-u", university, "--topic", topic,
                           *seekers], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=120,
                          check=False)


def _late(source: str, etype: str, data: dict[str, Any]) -> Event:
    at = datetime.now(UTC) - timedelta(minutes=3)
    return from_dict({"event_id": str(uuid.uuid4()), "type": etype, "source": source, "occurred_at": at.isoformat(),
                      "schema_version": 1, "data": data})


async def _rows_naming(conn: asyncpg.Connection, seekers: list[str]) -> dict[str, int]:
    """Rows of every read-model table whose text names one of ``seekers``."""
    tables = [r["table_name"] for r in await conn.fetch(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' "
        "AND table_type = 'BASE TABLE'")]
    found = {}
    for table in tables:
        n = await conn.fetchval(f"SELECT count(*) FROM {table} t WHERE "  # table names from the catalog
                                "EXISTS (SELECT 1 FROM unnest($1::text[]) s WHERE strpos(t::text, s) > 0)", seekers)
        if n:
            found[table] = n
    return found


async def test_an_erased_student_leaves_every_stage_and_every_figure_stays(
        settings: Settings, pg_dsn: str, unique: str) -> None:
    records = alliance_day(seed=31, scale=0.05)
    accepted = accepted_events(records)
    async with worker_and_projector(settings, pg_dsn, unique, "erase") as stack:
        suffix, conn, env = stack.suffix, stack.conn, stack.env
        changelog, dlq = f"{stack.app_id}-entity-state-changelog", stack.dlq
        stack.publish(records)

        async def caught_up(expected: dict[str, Any], check: Callable[[dict[str, Any]], bool] = lambda s: True,
                            group: str = "a") -> dict[str, Any]:
            return await stack.exact_everywhere(expected, group, [changelog], check)

        await caught_up(expected_aggregates(accepted), group="day")
        erased = most_active_seekers(accepted, 5)
        # a check-in corrected to name one of them at a fair they never checked in at (the corrected student has
        # other events, so the read model still lists them): the worker's refold writes that member key, and the
        # erasure must find it too
        visited = {e.subject for e in accepted if e.type == "jobfair.student_checked_in"
                   and e.data.seeker_id == erased[1]}  # type: ignore[attr-defined]
        named = Counter(s for e in accepted for s in named_seekers(e.data))
        moved = next(e for e in accepted if e.type == "jobfair.student_checked_in" and e.subject not in visited
                     and named[e.data.seeker_id] > 1)  # type: ignore[attr-defined]
        fix = correction(moved, moved.model_copy(update={"data": moved.data.model_copy(  # type: ignore[attr-defined]
            update={"seeker_id": erased[1]})}), event_id=str(uuid.uuid4()))
        stack.publish([Record(ingest_topic(fix.source), fix.key, encode(fix), "valid", fix)])
        accepted.append(fix)
        await caught_up(expected_aggregates(accepted), group="fixed")
        assert await _rows_naming(conn, erased)

        # the university's own tool: one request per student; another university's student is refused
        owners: dict[str, list[str]] = {}
        for seeker in erased:
            owners.setdefault(minted_by(seeker)[0], []).append(seeker)  # type: ignore[index]
        stranger = next(u for u in ("scu", "cqu") if u != minted_by(erased[0])[0])  # type: ignore[index]
        refused = _erase_cli(stranger, [erased[0]], ingest_topic(stranger) + suffix, env)
        assert refused.returncode == 1 and "only its university may ask" in refused.stderr, refused.stderr
        requests: list[Event] = []
        for university, seekers in owners.items():
            done = _erase_cli(university, seekers, ingest_topic(university) + suffix, env)
            assert done.returncode == 0, done.stderr
            for line in done.stdout.splitlines():
                event_id, seeker = line.split()
                requests.append(from_dict({"event_id": event_id, "type": "services.seeker_erasure_requested",
                                           "source": university, "occurred_at": datetime.now(UTC).isoformat(),
                                           "schema_version": 1, "data": {"seeker_id": seeker}}))
        assert sorted(r.data.seeker_id for r in requests) == sorted(erased)  # type: ignore[attr-defined]
        # a crash at the worst moment: worker and projector killed (-9) while the copies are being applied,
        # then started again: they replay what they had not committed, and an erasure applied twice changes
        # nothing (its markers)
        await asyncio.sleep(random.Random(unique).uniform(0.2, 1.5))
        await stack.crash_and_restart()

        def no_live_record_names_them(state: dict[str, Any]) -> bool:
            live = [k for k, (v, _) in state[changelog].items()
                    if v is not None and any(s in k or s in str(v) for s in erased)]
            return not live

        after = expected_aggregates(accepted + requests)
        state = await caught_up(after, no_live_record_names_them, group="erased")
        assert no_live_record_names_them(state)
        tombstoned = [k for k, (v, _) in state[changelog].items() if v is None and any(s in k for s in erased)]
        assert tombstoned, "the erased seekers' keys must end in tombstones"
        for seeker in erased:
            assert state[agg_topic("seeker-guarantee") + suffix].get(f"seeker:{seeker}", (None,))[0] is None
        assert await _rows_naming(conn, erased) == {}

        # later events naming them: refused by the worker, not projected; the figures stay the oracle's
        fair = next(e for e in accepted if e.type == "jobfair.scheduled")
        posting = next(e for e in accepted if e.type == "recruitment.job_posted")
        late = []
        for i, seeker in enumerate(erased):
            late += [_late(fair.source, "jobfair.student_checked_in", {"fair_id": fair.data.fair_id,  # type: ignore[attr-defined]
                                                                       "seeker_id": seeker}),
                     _late(posting.source, "recruitment.application_submitted", {
                         "posting_id": posting.data.posting_id, "application_id": f"late-{i}",  # type: ignore[attr-defined]
                         "seeker_id": seeker, "degree": "master"}),
                     _late("swu", "services.career_counselling_held", {"seeker_id": seeker,
                                                                       "counselling_id": f"late-c{i}",
                                                                       "counsellor_id": "swu-counsellor-01"})]
        stack.publish([Record(ingest_topic(e.source), e.key, encode(e), "valid", e) for e in late])

        def refused_in_dlq(state: dict[str, Any]) -> bool:
            return sum(h.get("x-alliance-reject-reason") == b"erased_seeker" for _, h in state[dlq].values()) \
                == len(late)

        state = await caught_up(expected_aggregates(accepted + requests + late), refused_in_dlq, group="late")
        assert refused_in_dlq(state) and no_live_record_names_them(state)
        for value, headers in state[dlq].values():
            if headers.get("x-alliance-reject-reason") == b"erased_seeker":
                assert value is None and not any(s.encode() in b"".join(headers.values()) for s in erased)
        assert await _rows_naming(conn, erased) == {}
        assert await conn.fetchval("SELECT count(DISTINCT digest) FROM erased_seekers") == len(erased)

        # retention: the read model lists a university's seekers past the retention period (the simulated day
        # lies days back), never the erased ones; the list is what `erase -u <university> -` reads
        owner = minted_by(erased[0])[0]  # type: ignore[index]
        due_env = {**env, **stack.cfg.database_env()}
        owned = {s for e in accepted for s in named_seekers(e.data) if s.startswith(f"ps.{owner}.")}
        for days, listed in ((1, owned - set(erased)), (3650, set())):
            due = await asyncio.to_thread(
                subprocess.run, [sys.executable, "-m", "consumers", "due-for-erasure", "-u", owner, "--days",
                                 str(days)], cwd=PROJECT_ROOT, env=due_env, capture_output=True, text=True,
                timeout=60, check=False)
            assert due.returncode == 0, due.stderr
            assert set(due.stdout.split()) == listed and f"{len(listed)} seeker(s)" in due.stderr
        assert stack.alive()


LONG_HISTORY = 3000  # job recommendations of one seeker: their erasure writes ~2.7 MB to one changelog partition


async def test_a_seeker_with_a_long_history_is_erased_in_parts_even_when_the_worker_is_killed_meanwhile(
        settings: Settings, pg_dsn: str, unique: str) -> None:
    """A seeker with thousands of events on one partition (their own 1-1-3-1 entity): the erasure renames more
    than one changelog record batch may hold (streams.writer.SPLIT_BYTES). Before, it was refused to the DLQ and
    the seeker stayed in the worker's tables. Now the worker writes it in parts (streams.batch.resumable_parts);
    killed (-9) as soon as it began and started again, it replays the copy from what was durable and completes
    it: no live record names the seeker, their 1-1-3-1 record is a tombstone, nothing went to the DLQ, and every
    figure is the oracle's."""
    seeker = "ps.scu.dev." + uuid.uuid4().hex
    at = (datetime.now(UTC) - timedelta(hours=1)).isoformat()

    def event(etype: str, data: dict[str, Any]) -> Event:
        return from_dict({"event_id": str(uuid.uuid4()), "type": etype, "source": "scu", "occurred_at": at,
                          "schema_version": 1, "data": {"seeker_id": seeker, **data}})

    served = [event("services.job_recommended", {"recommendation_id": f"long-rec-{i:05d}",
                                                 "posting_id": f"scu-job-{i:05d}"}) for i in range(LONG_HISTORY)]
    request = event("services.seeker_erasure_requested", {})
    async with worker_and_projector(settings, pg_dsn, unique, "long-erase") as stack:
        changelog = f"{stack.app_id}-entity-state-changelog"
        stack.publish([Record(ingest_topic("scu"), e.key, encode(e), "valid", e) for e in served])
        state = await stack.exact_everywhere(expected_aggregates(served), "served", [changelog])
        assert sum(seeker in k for k, (v, _) in state[changelog].items() if v is not None) > 2 * LONG_HISTORY
        pages = [k for k, (v, _) in state[changelog].items() if v is not None and f"seekers|{seeker}|" in k]
        assert len(pages) > LONG_HISTORY // erasure.PAGE_KEYS  # (their index in pages: streams.erasure.Listing)

        stack.publish([Record(ingest_topic("scu"), request.key, encode(request), "valid", request)])
        deadline = time.monotonic() + 120
        while not (await asyncio.to_thread(freshness, [stack.worker], "erasures_in_parts")).get("tables"):
            assert time.monotonic() < deadline and stack.alive(), stack.worker.log_tail(40)
            await asyncio.sleep(0.01)
        await stack.crash_and_restart()  # while its parts are being written (or just after)

        def no_live_record_names_them(state: dict[str, Any]) -> bool:
            return not [k for k, (v, _) in state[changelog].items()
                        if v is not None and (seeker in k or seeker in str(v))]

        state = await stack.exact_everywhere(expected_aggregates([*served, request]), "erased", [changelog],
                                             no_live_record_names_them)
        assert no_live_record_names_them(state)
        assert sum(v is None and seeker in k for k, (v, _) in state[changelog].items()) > 2 * LONG_HISTORY
        assert state[agg_topic("seeker-guarantee") + stack.suffix].get(f"seeker:{seeker}", (None,))[0] is None
        assert not state[stack.dlq], [h for _, h in state[stack.dlq].values()][:3]
        assert await _rows_naming(stack.conn, [seeker]) == {}
