"""The read model's side of corrections and retractions, on a real PostgreSQL (no Kafka: batches of records
as the projector reads them go through ``consumers.mapping.plan_batch`` and ``consumers.store.apply_plan``):

- a retraction and a correction rebuild their entity's rows, recounts and the shared employer row, exactly
  as a read model that only ever saw the events left standing;
- an erasure and revisions interleave: the log never keeps the erased pseudonym, an entity whose log names
  the anonymous token rebuilds with it, and a correction naming the erased seeker is not projected;
- a copy of a retracted event re-sent by the worker after a crash does not bring it back.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from consumers.mapping import TopicKind, plan_batch
from consumers.migrate import migrate
from consumers.store import _LOG_REVISED, apply_plan, erased_markers, prepare_connection
from consumers.tables import TABLES
from core.partitioning import key_partition
from events.base import Event
from events.codec import encode, from_dict
from events.simulator import alliance_day
from events.simulator.revisions import correction, retraction
from events.topics import EVENT_PARTITIONS, Family, family_topic
from tests.unit.test_projector_mapping import Rec

pytestmark = pytest.mark.integration

T0 = datetime(2026, 11, 26, 2, 0, tzinfo=UTC)
SEEKERS = [f"ps.scu.dev.{i:032x}" for i in range(1, 5)]
KINDS = {family_topic(f): TopicKind.EVENTS for f in Family}
STATE = ("SELECT p.posting_id, p.positions, p.applications, p.offers, p.hired, p.state FROM postings p ORDER BY 1",
         "SELECT application_id, posting_id, seeker_id FROM applications ORDER BY 1",
         "SELECT employer_id, name FROM employers ORDER BY 1",
         "SELECT offer_id, seeker_id, answer FROM offers ORDER BY 1")


def _event(etype: str, data: dict[str, Any], minutes: int, source: str = "scu") -> Event:
    return from_dict({"event_id": str(uuid.uuid4()), "type": etype, "source": source,
                      "occurred_at": (T0 + timedelta(minutes=minutes)).isoformat(), "data": data})


def _posted(pid: str, positions: int, employer: str, name: str, minutes: int = 0) -> Event:
    return _event("recruitment.job_posted", {
        "posting_id": pid, "employer_id": employer, "employer_name": name, "employer_type": "private",
        "industry": "finance", "city": "chengdu", "title": "Analyst", "positions": positions, "degree_min": "bachelor",
        "salary_min": 8000, "salary_max": 12000, "deadline": "2026-12-31"}, minutes)


def _applied(pid: str, app: str, seeker: str, minutes: int) -> Event:
    return _event("recruitment.application_submitted", {"posting_id": pid, "application_id": app,
                                                        "seeker_id": seeker, "degree": "master"}, minutes)


def _offer(pid: str, oid: str, seeker: str, minutes: int) -> list[Event]:
    return [_event("recruitment.offer_made", {"posting_id": pid, "offer_id": oid, "application_id": f"a-{oid}",
                                              "seeker_id": seeker, "salary_monthly": 9000}, minutes),
            _event("recruitment.hired", {"posting_id": pid, "offer_id": oid, "seeker_id": seeker,
                                         "start_date": "2027-01-04"}, minutes + 1)]


def _erasure(seeker: str) -> Event:
    return _event("services.seeker_erasure_requested", {"seeker_id": seeker}, 600)


class Log:
    """The canonical topics as the projector reads them: each event on its family's partition (an erasure:
    on the partition of ``copy_to``, where the test needs it)."""

    def __init__(self) -> None:
        self.offset = 0

    def records(self, events: list[Event], copy_to: bytes = b"", family: str = "recruitment") -> list[Rec]:
        out = []
        for e in events:
            key = copy_to if e.type == "services.seeker_erasure_requested" else e.key
            topic = family_topic(family if e.type.startswith("services.seeker_erasure") else e.target_family)
            out.append(Rec(topic, key_partition(key, EVENT_PARTITIONS), self.offset, e.key, encode(e)))
            self.offset += 1
        return out


async def _project(conn: asyncpg.Connection, records: list[Rec]) -> None:
    plan = plan_batch(records, KINDS, await erased_markers(conn))
    await apply_plan(conn, "g", plan)


async def _state(conn: asyncpg.Connection) -> tuple[list[tuple[Any, ...]], ...]:
    out = []
    for query in STATE:
        out.append([tuple(r) for r in await conn.fetch(query)])
    return tuple(out)


async def _fresh(pg_dsn: str) -> asyncpg.Connection:
    await migrate(pg_dsn)
    conn = await asyncpg.connect(pg_dsn)
    await prepare_connection(conn)
    return conn


async def test_a_retraction_and_a_correction_rebuild_rows_recounts_and_the_employer(pg_dsn: str) -> None:
    first = _posted("scu-job-1", 3, "emp-1", "Old Name")
    other = _posted("scu-job-2", 2, "emp-1", "Newer Name", minutes=5)  # the employer's newest name, at first
    apps = [_applied("scu-job-1", f"a{i}", SEEKERS[i], 10 + i) for i in range(3)]
    offers = _offer("scu-job-1", "o1", SEEKERS[0], 20)
    day = [first, other, *apps, *offers]
    revisions = [retraction(apps[1], event_id=str(uuid.uuid4())),
                 correction(first, first.model_copy(update={"data": first.data.model_copy(
                     update={"positions": 9})}), event_id=str(uuid.uuid4())),
                 retraction(other, event_id=str(uuid.uuid4())),  # the employer's name goes back to the old one
                 retraction(offers[1], event_id=str(uuid.uuid4()))]  # the hire
    conn = await _fresh(pg_dsn)
    log = Log()
    try:
        await _project(conn, log.records(day[:4]))
        await _project(conn, log.records(day[4:] + revisions[:2]))  # revisions inside a batch, after their originals
        await _project(conn, log.records([*revisions[2:], retraction(apps[1], event_id=str(uuid.uuid4()))]))
        revised = await _state(conn)
        standing = [first.model_copy(update={"data": first.data.model_copy(update={"positions": 9})}),
                    apps[0], apps[2], offers[0]]
        await conn.execute("TRUNCATE postings, applications, offers, employers, event_log")
        await _project(conn, Log().records(standing))
        assert revised == await _state(conn)
        assert revised[0] == [("scu-job-1", 9, 2, 1, 0, "open")] and revised[2] == [("emp-1", "Old Name")]
    finally:
        await conn.close()


async def test_erasures_and_revisions_interleave_and_a_re_sent_original_stays_retracted(pg_dsn: str) -> None:
    posted = _posted("scu-job-7", 4, "emp-7", "Chengdu Bank")
    apps = [_applied("scu-job-7", f"b{i}", SEEKERS[i], 10 + i) for i in range(3)]
    conn = await _fresh(pg_dsn)
    log = Log()
    try:
        await _project(conn, log.records([posted, *apps]))
        erased = SEEKERS[0]
        fixed = apps[2].model_copy(update={"data": apps[2].data.model_copy(update={"seeker_id": erased})})
        await _project(conn, log.records([_erasure(erased)], copy_to=posted.key) + log.records([
            retraction(apps[1], event_id=str(uuid.uuid4())),  # refolds a log that names the token
            correction(apps[2], fixed, event_id=str(uuid.uuid4()))]))  # names the erased seeker: not projected
        rows = await conn.fetch("SELECT application_id, seeker_id FROM applications ORDER BY 1")
        assert [r["application_id"] for r in rows] == ["b0", "b2"]
        assert rows[0]["seeker_id"].startswith("erased.") and rows[1]["seeker_id"] == SEEKERS[2]
        assert await conn.fetchval("SELECT count(*) FROM event_log WHERE strpos(payload::text, $1) > 0", erased) == 0
        # the worker re-sends the retracted application's canonical copy after a crash: it stays retracted
        await _project(conn, log.records([apps[1]]))
        assert [r["application_id"] for r in await conn.fetch("SELECT application_id FROM applications")] \
            == ["b0", "b2"]
        assert await conn.fetchval("SELECT applications FROM postings WHERE posting_id = 'scu-job-7'") == 2
    finally:
        await conn.close()


def _plan_nodes(node: dict[str, Any]) -> list[dict[str, Any]]:
    return [node, *(n for child in node.get("Plans", []) for n in _plan_nodes(child))]


async def test_a_batch_reads_one_logged_row_per_staged_event_however_long_the_log(pg_dsn: str) -> None:
    """consumers.store._LOG_REVISED (which copies in a batch were revised since they were logged) looks each staged
    event up by its key: a plain join let the planner hash the whole event_log for every batch, so a batch cost in
    proportion to all history. With 20,000 logged events (statistics up to date), 1,000 of them staged again and 10
    of those with another payload: the query finds exactly those 10 entities, and reads no more rows of event_log
    than it stages (EXPLAIN ANALYZE's own counts), never scanning the table."""
    conn = await _fresh(pg_dsn)
    try:
        await conn.execute("""
            INSERT INTO event_log (source, event_id, family, partition, subject, type, payload)
            SELECT 'scu', gen_random_uuid(), 'jobfair', g % 3, 'scu-fair-' || g, 'jobfair.student_checked_in',
                   jsonb_build_object('n', g)
            FROM generate_series(1, 20000) g""")
        await conn.execute("ANALYZE event_log")
        async with conn.transaction():
            await conn.execute("""
                INSERT INTO stage_event_log (source, event_id, family, partition, subject, type, payload)
                SELECT source, event_id, family, partition, subject, type, payload FROM event_log
                ORDER BY event_id LIMIT 1000""")
            changed = await conn.fetch("""
                UPDATE stage_event_log SET payload = jsonb_build_object('revised', true)
                WHERE event_id IN (SELECT event_id FROM stage_event_log ORDER BY event_id LIMIT 10)
                RETURNING family, subject""")
            found = {tuple(r) for r in await conn.fetch(_LOG_REVISED)}
            assert found == {tuple(r) for r in changed} and len(found) == 10
            plan = json.loads(await conn.fetchval("EXPLAIN (ANALYZE, FORMAT JSON) " + _LOG_REVISED))[0]["Plan"]
        reads = [n for n in _plan_nodes(plan) if n.get("Relation Name") == "event_log"]
        assert reads and all("Seq Scan" not in n["Node Type"] for n in reads), [n["Node Type"] for n in reads]
        assert sum(n["Actual Rows"] * n["Actual Loops"] for n in reads) <= 1000
    finally:
        await conn.close()


async def _everything(conn: asyncpg.Connection) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every read-model table an entity writes or counts into (event_log's bookkeeping aside)."""
    names = [t.name for t in TABLES] + ["service_progress"]
    return {name: sorted(tuple(str(v) for v in r) for r in await conn.fetch(f"SELECT * FROM {name}"))  # (catalogue)
            for name in names}


def _day_and_a_big_fair() -> tuple[list[Event], list[Event], list[Event]]:
    """A simulated day, and 400 more check-ins at one of its fairs (a student checked in twice): (day, more,
    every event)."""
    day = [r.event for r in alliance_day(seed=13, scale=0.05, duplicate_rate=0.0, invalid_rate=0.0,
                                         spoofed_rate=0.0, foreign_rate=0.0) if r.kind == "valid" and r.event]
    fair = next(e for e in day if e.type == "jobfair.scheduled")
    template = next(e for e in day if e.type == "jobfair.student_checked_in" and e.subject == fair.subject)
    more = [template.model_copy(update={"event_id": uuid.uuid4(), "occurred_at": T0 + timedelta(minutes=i % 50),
                                        "data": template.data.model_copy(update={"seeker_id": f"ps.scu.dev.{i:032x}"})})
            for i in range(400)]
    twice = more[7].model_copy(update={"event_id": uuid.uuid4(), "occurred_at": T0 + timedelta(minutes=90)})
    return day, more, [*day, *more, twice]


async def _revise_as_if_standing(conn: asyncpg.Connection, events: list[Event], retracted: list[Event],
                                 fixes: list[tuple[Event, Event]]) -> tuple[dict[str, int], dict[str, Any]]:
    """Project ``events`` (batches of 500), then retract ``retracted`` and correct each (original, fixed) of
    ``fixes`` in one batch; then project only the events left standing into the emptied tables: the two read models
    must be equal row for row. Returns the revision batch's counts, and the revised tables (the second read model
    stays in ``conn``)."""
    log = Log()
    for start in range(0, len(events), 500):
        await _project(conn, log.records(events[start:start + 500]))
    revisions = [retraction(e, event_id=str(uuid.uuid4())) for e in retracted]
    revisions += [correction(original, fixed, event_id=str(uuid.uuid4())) for original, fixed in fixes]
    written = await apply_plan(conn, "g", plan_batch(log.records(revisions), KINDS, await erased_markers(conn)))
    assert written["revisions"] == len(revisions)
    gone = {e.event_id for e in retracted}
    fixed = {original.event_id: new for original, new in fixes}
    revised = await _everything(conn)
    await conn.execute("TRUNCATE " + ", ".join([t.name for t in TABLES] + ["service_progress", "event_log"]))
    await _project(conn, Log().records([fixed.get(e.event_id, e) for e in events if e.event_id not in gone]))
    assert revised == await _everything(conn)
    return written, revised


async def test_a_revision_of_a_member_event_rebuilds_that_member_alone_as_a_full_rebuild_would(pg_dsn: str) -> None:
    """A simulated day with a fair of 400 more check-ins (a student checked in twice): revisions of member events
    (check-ins, a booth, an on-site offer, an application, an assignment, service items; consumers.mapping.
    ROW_SOURCES) rebuild only the rows of their members: a few rows, not the fair's hundreds. The read model is
    then row for row that of one that saw only the events left standing, parents' counts and 1-1-3-1 progress
    included; and a retraction of an entity's last standing event removes its rows like a full rebuild."""
    day, more, events = _day_and_a_big_fair()
    template, twice = more[0], events[-1]

    def first(etype: str, *, skip: int = 0) -> Event:
        return [e for e in day if e.type == etype][skip]

    moved = more[8].model_copy(update={"occurred_at": T0 - timedelta(minutes=5), "data": more[8].data.model_copy(
        update={"seeker_id": more[9].data.seeker_id})})  # onto a student checked in already, earlier than them
    application = first("recruitment.application_submitted")
    other_seeker = first("recruitment.application_submitted", skip=1).data.seeker_id
    fixed_application = application.model_copy(update={"data": application.data.model_copy(
        update={"seeker_id": other_seeker})})
    retracted = [more[7], more[20], first("jobfair.booth_registered"), first("jobfair.onsite_offer_made"),
                 first("mentoring.mentor_assigned"), first("services.job_recommended"),
                 first("services.policy_briefing_delivered")]
    fixes = [(more[8], moved), (application, fixed_application)]
    conn = await _fresh(pg_dsn)
    try:
        written, revised = await _revise_as_if_standing(conn, events, retracted, fixes)
        assert 0 < written["rebuilt_rows"] <= 2 * (len(retracted) + len(fixes))  # (the fair rebuilt whole: 400+)
        gone = {e.event_id for e in retracted}
        standing = [e for e in events if e.event_id not in gone]
        again = next(r for r in revised["fair_checkins"] if r[1] == more[7].data.seeker_id)
        assert again[2] == str(twice.occurred_at)  # (its earlier check-in retracted: the later one is the first)
        # a student's one service item, retracted: the student's items and progress go, as with a full rebuild
        lone = next(e for e in standing if e.family == "services"
                    and sum(1 for x in standing if x.family == "services" and x.subject == e.subject) == 1)
        await _project(conn, Log().records([retraction(lone, event_id=str(uuid.uuid4()))]))
        for table in ("service_items", "service_progress"):
            assert await conn.fetchval(f"SELECT count(*) FROM {table} WHERE seeker_id = $1", str(lone.subject)) == 0
        # a fair known only by one check-in (its scheduling not sent yet), retracted: its row goes too
        alone = template.model_copy(update={"event_id": uuid.uuid4(), "subject": "scu-fair-alone",
                                            "data": template.data.model_copy(update={"fair_id": "scu-fair-alone"})})
        await _project(conn, Log().records([alone]))
        assert await conn.fetchval("SELECT checkins FROM fairs WHERE fair_id = 'scu-fair-alone'") == 1
        await _project(conn, Log().records([retraction(alone, event_id=str(uuid.uuid4()))]))
        for table in ("fairs", "fair_checkins"):
            assert await conn.fetchval(f"SELECT count(*) FROM {table} WHERE fair_id = 'scu-fair-alone'") == 0
    finally:
        await conn.close()


async def test_a_revision_of_an_event_that_is_not_a_member_rebuilds_its_rows_alone_as_a_full_rebuild_would(
        pg_dsn: str) -> None:
    """The same day and fair: revisions of events that are not members (the big fair's scheduling corrected to
    another city, a posting's update and closing, an offer's answer and hire, a session, a mentor's registration,
    a posting's JobPosted while its applications stand, an employer's flag) rebuild only the rows those events
    write, from the entity's events of the types writing them (consumers.mapping.ROW_SOURCES): a few rows, not the
    fair's 400 check-ins. The read model is row for row that of one that saw only the events left standing."""
    day, more, events = _day_and_a_big_fair()

    def first(etype: str, *, where: Any = lambda e: True) -> Event:
        return next(e for e in day if e.type == etype and where(e))

    scheduled = first("jobfair.scheduled", where=lambda e: e.subject == more[0].subject)
    city = next(c for c in ("chengdu", "chongqing", "mianyang") if c != scheduled.data.city.value)
    rescheduled = from_dict({**scheduled.model_dump(mode="json"),
                             "data": {**scheduled.data.model_dump(mode="json"), "city": city, "name": "Moved"}})
    session = first("mentoring.session_held")
    shorter = session.model_copy(update={"data": session.data.model_copy(update={"duration_minutes": 10})})
    applied = {e.subject for e in day if e.type == "recruitment.application_submitted"}
    retracted = [first("recruitment.job_posting_updated"), first("recruitment.job_posting_closed"),
                 first("recruitment.offer_accepted"), first("recruitment.hired"), first("mentoring.mentor_registered"),
                 first("recruitment.job_posted", where=lambda e: e.subject in applied),
                 first("recruitment.employer_flagged")]
    conn = await _fresh(pg_dsn)
    try:
        written, revised = await _revise_as_if_standing(conn, events, retracted,
                                                        [(scheduled, rescheduled), (session, shorter)])
        assert 0 < written["rebuilt_rows"] <= 30, written  # (the fair rebuilt whole: 400+ rows)
        fair = next(r for r in revised["fairs"] if r[0] == str(scheduled.subject))
        assert city in fair and "Moved" in fair
    finally:
        await conn.close()


async def test_a_check_in_of_an_erased_student_is_revised_through_the_member_the_erasure_renamed(pg_dsn: str) -> None:
    """event_log's ``member`` column (migration 011) is computed from the payload, so the erasure's rename of the
    payload renames it too: a student checked in twice and then erased, one check-in retracted, keeps the row under
    the anonymous token (rebuilt from the other check-in, found by the token); retracting the second removes it."""
    fair = "scu-fair-9"
    twice = [_event("jobfair.student_checked_in", {"fair_id": fair, "seeker_id": SEEKERS[0]}, 5 + i) for i in range(2)]
    other = _event("jobfair.student_checked_in", {"fair_id": fair, "seeker_id": SEEKERS[1]}, 8)
    conn = await _fresh(pg_dsn)
    log = Log()
    try:
        await _project(conn, log.records([*twice, other]))
        await _project(conn, log.records([_erasure(SEEKERS[0])], copy_to=twice[0].key, family="jobfair"))
        members = {r["member"] for r in await conn.fetch("SELECT member FROM event_log WHERE subject = $1", fair)}
        assert SEEKERS[0] not in members and SEEKERS[1] in members and len(members) == 2
        token = next(m for m in members if m != SEEKERS[1])
        assert token.startswith("erased.")
        await _project(conn, log.records([retraction(twice[0], event_id=str(uuid.uuid4()))]))
        rows = await conn.fetch("SELECT seeker_id, first_at FROM fair_checkins WHERE fair_id = $1 ORDER BY 1", fair)
        assert [r["seeker_id"] for r in rows] == sorted([token, SEEKERS[1]])
        assert await conn.fetchval("SELECT checkins FROM fairs WHERE fair_id = $1", fair) == 2
        await _project(conn, log.records([retraction(twice[1], event_id=str(uuid.uuid4()))]))
        assert [r["seeker_id"] for r in await conn.fetch("SELECT seeker_id FROM fair_checkins WHERE fair_id = $1",
                                                          fair)] == [SEEKERS[1]]
    finally:
        await conn.close()
