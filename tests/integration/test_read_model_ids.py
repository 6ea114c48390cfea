"""Member ids are the publishing university's own (an application, an offer, an on-site offer, a mentoring session),
so two universities may use the same one, by mistake or on purpose. The read model keeps each under its entity
(migration 009), like the worker and the oracle, on a real PostgreSQL (no Kafka: batches of records as the
projector reads them):

- the same ids on two universities' postings, fairs and mentors: each entity keeps its own row and counts, and a
  retraction of one university's event leaves the other's row;
- a read model written before the keys changed, with one university's application row taken over by another's
  event of the same id and another's offer row gone: migration 009 lists the entities and the projector's next
  batch rebuilds them from ``event_log``.
"""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from consumers.mapping import LogEntry, Plan
from consumers.migrate import MIGRATIONS_DIR, migrate
from consumers.store import apply_plan, prepare_connection
from events.base import Event
from events.simulator.revisions import retraction
from tests.integration.test_read_model_revisions import (
    SEEKERS,
    Log,
    _applied,
    _event,
    _fresh,
    _offer,
    _posted,
    _project,
)

pytestmark = pytest.mark.integration

COUNTS = ("SELECT posting_id, applications, offers, hired FROM postings ORDER BY 1",
          "SELECT fair_id, onsite_offers FROM fairs ORDER BY 1",
          "SELECT mentor_id, sessions, session_minutes FROM mentors ORDER BY 1")


def _same_ids(source: str, n: int, minutes: int) -> list[Event]:
    """One university's posting, fair and mentor, with an application, an offer, an on-site offer and a session
    whose ids every call repeats."""
    posting, fair, mentor = f"{source}-job-1", f"{source}-fair-1", f"{source}-mentor-1"
    return [_posted(posting, 3, f"emp-{source}", "Employer", minutes).model_copy(update={"source": source}),
            _applied(posting, "app-1", SEEKERS[n], minutes + 1).model_copy(update={"source": source}),
            *(e.model_copy(update={"source": source}) for e in _offer(posting, "o-1", SEEKERS[n], minutes + 2)),
            _event("jobfair.onsite_offer_made", {"fair_id": fair, "booth_id": "b-1", "offer_id": "off-1",
                                                 "seeker_id": SEEKERS[n]}, minutes + 3, source=source),
            _event("mentoring.session_held", {"mentor_id": mentor, "session_id": "s-1", "topic": "technology",
                                              "seeker_ids": [SEEKERS[n]], "duration_minutes": 30 + 10 * n},
                   minutes + 4, source=source)]


async def _counts(conn: asyncpg.Connection) -> list[list[tuple[Any, ...]]]:
    return [[tuple(r) for r in await conn.fetch(query)] for query in COUNTS]


async def test_two_universities_with_the_same_member_ids_keep_their_own_rows(pg_dsn: str) -> None:
    scu, cqu = _same_ids("scu", 0, 0), _same_ids("cqu", 1, 30)  # cqu's events are the newer
    conn = await _fresh(pg_dsn)
    log = Log()
    try:
        await _project(conn, log.records(scu))
        await _project(conn, log.records(cqu))
        assert await _counts(conn) == [[("cqu-job-1", 1, 1, 1), ("scu-job-1", 1, 1, 1)],
                                       [("cqu-fair-1", 1), ("scu-fair-1", 1)],
                                       [("cqu-mentor-1", 1, 40), ("scu-mentor-1", 1, 30)]]
        assert [tuple(r) for r in await conn.fetch("SELECT posting_id, seeker_id, university FROM applications "
                                                   "ORDER BY 1")] == [("cqu-job-1", SEEKERS[1], "cqu"),
                                                                      ("scu-job-1", SEEKERS[0], "scu")]
        await _project(conn, log.records([retraction(e, event_id=str(uuid.uuid4())) for e in cqu[1:]]))
        assert await _counts(conn) == [[("cqu-job-1", 0, 0, 0), ("scu-job-1", 1, 1, 1)],
                                       [("scu-fair-1", 1)], [("scu-mentor-1", 1, 30)]]
        assert [tuple(r) for r in await conn.fetch("SELECT posting_id, offer_id, seeker_id FROM offers")] == \
            [("scu-job-1", "o-1", SEEKERS[0])]
    finally:
        await conn.close()


async def test_migration_009_lists_merged_or_lost_rows_and_the_next_batch_rebuilds_them(
        pg_dsn: str, tmp_path: Path) -> None:
    """The read model as versions before 009 left it: cqu's application ``app-1`` (newer) had taken over scu's row
    of the same id, and scu's offer row had been lost (moved to cqu's posting, then deleted with it)."""
    before = tmp_path / "migrations"
    before.mkdir()
    for path in sorted(MIGRATIONS_DIR.glob("00[1-8]_*.sql")):
        shutil.copy(path, before / path.name)
    await migrate(pg_dsn, before)
    scu, cqu = _same_ids("scu", 0, 0)[:4], _same_ids("cqu", 1, 30)[:2]
    conn = await asyncpg.connect(pg_dsn)
    try:
        await conn.copy_records_to_table("event_log", records=[LogEntry.of(e, 0).row() for e in scu + cqu],
                                         columns=["source", "event_id", "family", "partition", "subject", "type",
                                                  "employer_id", "payload"])
        await conn.execute("INSERT INTO postings (posting_id, applications) VALUES ('scu-job-1', 1), ('cqu-job-1', 1)")
        await conn.execute("INSERT INTO applications (application_id, posting_id, seeker_id, university) VALUES "
                           "('app-1', 'cqu-job-1', $1, 'cqu')", SEEKERS[1])
        assert await migrate(pg_dsn)  # 009
        pending = {tuple(r) for r in await conn.fetch("SELECT family, subject FROM pending_rebuilds")}
        assert pending == {("recruitment", "scu-job-1"), ("recruitment", "cqu-job-1")}
        await prepare_connection(conn)
        await apply_plan(conn, "g", Plan())  # the projector's next batch, even an empty one
        assert await conn.fetchval("SELECT count(*) FROM pending_rebuilds") == 0
        assert [tuple(r) for r in await conn.fetch("SELECT posting_id, application_id, seeker_id FROM applications "
                                                   "ORDER BY 1")] == [("cqu-job-1", "app-1", SEEKERS[1]),
                                                                      ("scu-job-1", "app-1", SEEKERS[0])]
        assert [tuple(r) for r in await conn.fetch("SELECT posting_id, offer_id, seeker_id, hired_at IS NOT NULL "
                                                   "FROM offers")] == [("scu-job-1", "o-1", SEEKERS[0], True)]
        assert (await _counts(conn))[0] == [("cqu-job-1", 1, 0, 0), ("scu-job-1", 1, 1, 1)]
    finally:
        await conn.close()
