"""Projector against the real broker and database: N distinct events -> exactly the rows an independent
oracle expects; duplicates in the input, a replay from offset 0 and a second group change nothing;
undecodable records land in projector_rejects; dropped connections are survived."""

from __future__ import annotations

import asyncio
import json
import random
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest
from kafka import KafkaConsumer, KafkaProducer
from kafka.structs import TopicPartition
from prometheus_client import CollectorRegistry

from consumers.migrate import migrate
from consumers.projector import Projector, ProjectorConfig
from core.access_policy import Grant, Resource
from core.kafka_access import ADMIN, PROJECTOR, KafkaAccess
from core.settings import Settings
from core.topic_admin import grant, provision
from events import jobfair as jf
from events import mentoring as mt
from events import recruitment as rc
from events import services as sv
from events.base import Event
from events.codec import encode
from events.topics import Family, TopicSpec

pytestmark = pytest.mark.integration

T0 = datetime(2025, 3, 3, 8, 0, tzinfo=UTC)
UNIS = ["scu", "uestc", "cqu", "swu"]
AGG_NAMES = ["fairs", "seeker-guarantee"]


def seeker(i: int) -> str:
    return f"ps_{i:032x}"


# --- the scenario: distinct events, deliberately produced out of occurred_at order ------------------------

@dataclass
class Scenario:
    events: list[Event] = field(default_factory=list)  # in production order
    aggs: list[tuple[str, str, dict[str, Any] | None]] = field(default_factory=list)  # (aggregate, key, value)


def build_scenario(seed: int = 7, postings: int = 40, fairs: int = 4, mentors: int = 8,
                   seekers: int = 30) -> Scenario:
    rnd = random.Random(seed)
    sc = Scenario()
    ev = sc.events

    def at(minutes: float) -> datetime:
        return T0 + timedelta(minutes=minutes)

    for p in range(postings):
        pid, uni, base = f"post-{p}", UNIS[p % len(UNIS)], p * 3.0
        employer = f"emp-{p % 7}"
        posted = rc.JobPosted(source=uni, occurred_at=at(base), data=rc.JobPostedData(
            posting_id=pid, employer_id=employer, employer_name=f"Employer {p % 7}",
            employer_type=rnd.choice(["state_owned", "private", "foreign"]),
            industry=rnd.choice(["it_software", "finance", "manufacturing"]),
            city=rnd.choice(["chengdu", "chongqing"]), title=f"Engineer {p}", positions=rnd.randint(1, 9),
            degree_min="bachelor", salary_min=6000, salary_max=9000, deadline=(T0 + timedelta(days=60)).date()))
        upd_early = rc.JobPostingUpdated(source=uni, occurred_at=at(base + 600), data=rc.JobPostingUpdatedData(
            posting_id=pid, positions=rnd.randint(1, 9), title=f"Senior engineer {p}"))
        upd_late = rc.JobPostingUpdated(source=uni, occurred_at=at(base + 900), data=rc.JobPostingUpdatedData(
            posting_id=pid, positions=rnd.randint(10, 20), salary_max=12000))
        closed = rc.JobPostingClosed(source=uni, occurred_at=at(base + 700),
                                     data=rc.JobPostingClosedData(posting_id=pid, reason="filled"))
        shape = p % 4
        if shape == 0:    # in order
            ev += [posted, upd_early, upd_late]
        elif shape == 1:  # updates before the posting, the later update first
            ev += [upd_late, upd_early, posted]
        elif shape == 2:  # closed, then an update that happened before and one after the close
            ev += [posted, closed, upd_late, upd_early]
        else:             # the close arrives first of all
            ev += [closed, posted, upd_early]
        for a in range(rnd.randint(0, 5)):
            aid, sid = f"app-{p}-{a}", seeker(rnd.randrange(seekers))
            ev.append(rc.ApplicationSubmitted(
                source=uni, occurred_at=at(base + 10 + a), data=rc.ApplicationSubmittedData(
                    posting_id=pid, application_id=aid, seeker_id=sid, degree="master")))
            if a % 2 == 0:
                oid = f"off-{p}-{a}"
                made = rc.OfferMade(source=uni, occurred_at=at(base + 100 + a), data=rc.OfferMadeData(
                    posting_id=pid, offer_id=oid, application_id=aid, seeker_id=sid, salary_monthly=8000))
                answer_cls = rc.OfferAccepted if a % 4 == 0 else rc.OfferDeclined
                answer = answer_cls(source=uni, occurred_at=at(base + 200 + a), data=rc.OfferAnswerData(
                    posting_id=pid, offer_id=oid, seeker_id=sid))
                ev += [answer, made] if p % 3 == 0 else [made, answer]  # the answer may come first
                if answer_cls is rc.OfferAccepted and p % 2 == 0:
                    ev.append(rc.Hired(source=uni, occurred_at=at(base + 300 + a), data=rc.HiredData(
                        posting_id=pid, offer_id=oid, seeker_id=sid, start_date=(T0 + timedelta(days=90)).date())))
    for e in range(0, 7, 3):
        ev.append(rc.EmployerFlagged(source="scu", occurred_at=at(5000 + e), data=rc.EmployerFlaggedData(
            employer_id=f"emp-{e}", severity="warning", reason="late salary payments")))
    # another university's suspension of a shared employer is its own flag, not one for every member
    ev.append(rc.EmployerFlagged(source="cqu", occurred_at=at(5100), data=rc.EmployerFlaggedData(
        employer_id="emp-0", severity="suspended", reason="unpaid wages")))

    for f in range(fairs):
        fid, host = f"fair-{f}", UNIS[f % len(UNIS)]
        ev.append(jf.JobFairScheduled(source=host, occurred_at=at(f), data=jf.JobFairScheduledData(
            fair_id=fid, name=f"Spring fair {f}", host_university=host, city="chengdu", venue="Hall A",
            starts_at=at(1440), ends_at=at(1440 + 480), expected_booths=10)))
        for b in range(rnd.randint(1, 6)):
            ev.append(jf.BoothRegistered(source=host, occurred_at=at(10 + b), data=jf.BoothRegisteredData(
                fair_id=fid, booth_id=f"booth-{b}", employer_id=f"emp-{b}", employer_name=f"Employer {b}",
                employer_type="private", industry="it_software", positions_offered=3)))
        for c in range(rnd.randint(5, 25)):  # repeat visitors: distinct seekers < check-ins
            ev.append(jf.StudentCheckedIn(source=host, occurred_at=at(1440 + c), data=jf.StudentCheckedInData(
                fair_id=fid, seeker_id=seeker(rnd.randrange(12)), booth_id=None if c % 2 else "booth-0")))
        for o in range(rnd.randint(0, 3)):
            ev.append(jf.OnSiteOfferMade(source=host, occurred_at=at(1500 + o), data=jf.OnSiteOfferMadeData(
                fair_id=fid, booth_id="booth-0", offer_id=f"fo-{f}-{o}", seeker_id=seeker(o))))
        if f % 2 == 0:
            ev.append(jf.JobFairClosed(source=host, occurred_at=at(1440 + 480), data=jf.JobFairClosedData(fair_id=fid)))

    for m in range(mentors):
        mid, uni = f"mentor-{m}", UNIS[m % len(UNIS)]
        reg = mt.MentorRegistered(source=uni, occurred_at=at(m), data=mt.MentorRegisteredData(
            mentor_id=mid, university=uni, expertise="career_planning", industry="finance",
            employer_type="state_owned", title="Director"))
        assigned = [mt.MentorAssigned(source=uni, occurred_at=at(10 + s), data=mt.MentorAssignedData(
            mentor_id=mid, seeker_id=seeker(rnd.randrange(seekers)))) for s in range(rnd.randint(0, 4))]
        sessions = [mt.MentoringSessionHeld(source=uni, occurred_at=at(100 + s), data=mt.MentoringSessionHeldData(
            mentor_id=mid, session_id=f"sess-{m}-{s}", topic="interview_skills", duration_minutes=30 + 10 * s,
            seeker_ids=tuple(seeker(rnd.randrange(seekers)) for _ in range(rnd.randint(1, 4)))))
            for s in range(rnd.randint(0, 3))]
        ev += ([*sessions, reg, *assigned] if m % 2 else [reg, *assigned, *sessions])

    for s in range(seekers):
        sid, uni, base = seeker(s), UNIS[s % len(UNIS)], 2000.0 + s
        if s % 3 != 2:
            ev.append(sv.PolicyBriefingDelivered(source=uni, occurred_at=at(base), data=sv.PolicyBriefingDeliveredData(
                seeker_id=sid, briefing_id=f"brief-{s}", topic="graduate employment subsidies")))
        if s % 5 != 4:
            ev.append(sv.CareerCounsellingHeld(source=uni, occurred_at=at(base + 1), data=sv.CareerCounsellingHeldData(
                seeker_id=sid, counselling_id=f"couns-{s}", counsellor_id="c-1")))
        for r in range(s % 5):  # the posting of recommendation 3 repeats recommendation 0's
            ev.append(sv.JobRecommended(source=uni, occurred_at=at(base + 2 + r), data=sv.JobRecommendedData(
                seeker_id=sid, recommendation_id=f"rec-{s}-{r}", posting_id=f"post-{r % 3}")))
        if s % 2 == 0:
            ev.append(sv.TrainingOrInternshipOffered(source=uni, occurred_at=at(base + 9),
                                                     data=sv.TrainingOrInternshipOfferedData(
                seeker_id=sid, program_id=f"prog-{s}", kind="internship", provider="Alliance training centre")))

    for i in range(12):  # aggregated snapshots: out-of-order updated_at and tombstones
        name = AGG_NAMES[i % 2]
        key = f"k{i % 5}"
        stamp = (T0 + timedelta(seconds=(i * 37) % 11)).isoformat()
        sc.aggs.append((name, key, {"aggregate": name, "key": {"id": f"{UNIS[i % 4]}-{i % 5}"},
                                    "value": _agg_value(name, i), "updated_at": stamp}))
    sc.aggs.append(("fairs", "k2", None))
    sc.aggs.append(("fairs", "gone", {"aggregate": "fairs", "key": {"id": "gone"}, "value": _agg_value("fairs", 1),
                                      "updated_at": T0.isoformat()}))
    sc.aggs.append(("fairs", "gone", None))
    assert len({e.event_id for e in ev}) == len(ev)
    return sc


# --- the oracle: an independent, sequential fold in occurred_at order ------------------------------------

def expected_state(sc: Scenario) -> dict[str, Any]:
    events = sorted({e.event_id: e for e in sc.events}.values(), key=lambda e: e.occurred_at)
    postings: dict[str, dict[str, Any]] = {}
    apps: dict[str, str] = {}
    offers: dict[str, dict[str, Any]] = {}
    fairs: dict[str, dict[str, Any]] = {}
    booths: set[tuple[str, str]] = set()
    checkins: set[tuple[str, str]] = set()
    fair_offers: dict[str, str] = {}
    mentors: dict[str, dict[str, Any]] = {}
    assignments: set[tuple[str, str]] = set()
    sessions: dict[str, tuple[str, int, tuple[str, ...]]] = {}
    services: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    flags: dict[tuple[str, str], str] = {}
    for e in events:
        d: Any = e.data
        if isinstance(e, rc.JobPosted):
            p = postings.setdefault(d.posting_id, {"state": "pending"})
            p.update(title=d.title, positions=d.positions, salary_min=d.salary_min, salary_max=d.salary_max,
                     state="closed" if p["state"] == "closed" else "open")
        elif isinstance(e, rc.JobPostingUpdated):
            postings.setdefault(d.posting_id, {"state": "pending"}).update(
                {k: v for k in ("title", "positions", "salary_min", "salary_max") if (v := getattr(d, k)) is not None})
        elif isinstance(e, rc.JobPostingClosed):
            postings.setdefault(d.posting_id, {})["state"] = "closed"
        elif isinstance(e, rc.ApplicationSubmitted):
            apps[d.application_id] = d.posting_id
        elif isinstance(e, rc.OfferMade | rc.OfferAccepted | rc.OfferDeclined | rc.Hired):
            o = offers.setdefault(d.offer_id, {"posting": d.posting_id, "seeker": d.seeker_id, "answer": None,
                                               "hired": False})
            if isinstance(e, rc.OfferAccepted):
                o["answer"] = "accepted"
            elif isinstance(e, rc.OfferDeclined):
                o["answer"] = "declined"
            elif isinstance(e, rc.Hired):
                o["hired"] = True
        elif isinstance(e, rc.EmployerFlagged):
            flags[(d.employer_id, e.source)] = d.severity.value  # each university's flag is its own
        elif isinstance(e, jf.JobFairScheduled):
            f = fairs.setdefault(d.fair_id, {"state": "pending"})
            f["state"] = "closed" if f["state"] == "closed" else "open"
        elif isinstance(e, jf.JobFairClosed):
            fairs.setdefault(d.fair_id, {})["state"] = "closed"
        elif isinstance(e, jf.BoothRegistered):
            booths.add((d.fair_id, d.booth_id))
        elif isinstance(e, jf.StudentCheckedIn):
            checkins.add((d.fair_id, d.seeker_id))
        elif isinstance(e, jf.OnSiteOfferMade):
            fair_offers[d.offer_id] = d.fair_id
        elif isinstance(e, mt.MentorRegistered):
            mentors[d.mentor_id] = {}
        elif isinstance(e, mt.MentorAssigned):
            assignments.add((d.mentor_id, d.seeker_id))
        elif isinstance(e, mt.MentoringSessionHeld):
            sessions[d.session_id] = (d.mentor_id, d.duration_minutes, d.seeker_ids)
        elif isinstance(e, sv.PolicyBriefingDelivered):
            services[d.seeker_id]["b"].add(d.briefing_id)
        elif isinstance(e, sv.CareerCounsellingHeld):
            services[d.seeker_id]["c"].add(d.counselling_id)
        elif isinstance(e, sv.JobRecommended):
            services[d.seeker_id]["r"].add(d.posting_id)
        elif isinstance(e, sv.TrainingOrInternshipOffered):
            services[d.seeker_id]["t"].add(d.program_id)
    post_rows = set()
    for pid, p in postings.items():
        po = [o for o in offers.values() if o["posting"] == pid]
        post_rows.add((pid, p["state"], p["title"], p["positions"], p["salary_min"], p["salary_max"],
                       sum(1 for a in apps.values() if a == pid), len(po),
                       sum(o["answer"] == "accepted" for o in po), sum(o["answer"] == "declined" for o in po),
                       len({o["seeker"] for o in po if o["hired"]})))  # hired: distinct job seekers
    fair_rows = {(fid, f["state"], sum(b[0] == fid for b in booths), sum(c[0] == fid for c in checkins),
                  sum(v == fid for v in fair_offers.values())) for fid, f in fairs.items()}
    mentor_rows = set()
    for mid in mentors:
        ms = [s for s in sessions.values() if s[0] == mid]
        mentor_rows.add((mid, sum(a[0] == mid for a in assignments), len(ms), sum(s[1] for s in ms),
                         len({x for s in ms for x in s[2]})))
    service_rows = set()
    for sid, kinds in services.items():
        b, c, r, t = (len(kinds[k]) for k in "bcrt")
        service_rows.add((sid, b, c, r, t, b >= 1 and c >= 1 and r >= 3 and t >= 1))
    aggs: dict[tuple[str, str], dict[str, Any] | None] = {}
    for name, key, value in sc.aggs:
        cur = aggs.get((name, key))
        if value is None or cur is None or value["updated_at"] >= cur["updated_at"]:
            aggs[(name, key)] = value
    agg_rows = {(n, k, json.dumps(v["key"], sort_keys=True), json.dumps(v["value"], sort_keys=True))
                for (n, k), v in aggs.items() if v is not None}
    return {
        "postings": post_rows, "fairs": fair_rows, "mentors": mentor_rows, "service_progress": service_rows,
        "flags": {(*k, v) for k, v in flags.items()}, "applications": len(apps), "offers": len(offers),
        "agg_snapshot": agg_rows,
    }


async def actual_state(dsn: str) -> dict[str, Any]:
    conn = await asyncpg.connect(dsn)
    try:
        def rows(records: list[asyncpg.Record]) -> set[tuple[Any, ...]]:
            return {tuple(r) for r in records}

        return {
            "postings": rows(await conn.fetch(
                "SELECT posting_id, state, title, positions, salary_min, salary_max, applications, offers, "
                "accepted, declined, hired FROM postings")),
            "fairs": rows(await conn.fetch("SELECT fair_id, state, booths, checkins, onsite_offers FROM fairs")),
            "mentors": rows(await conn.fetch(
                "SELECT mentor_id, assigned, sessions, session_minutes, seekers_served FROM mentors")),
            "service_progress": rows(await conn.fetch(
                "SELECT seeker_id, briefings, counsellings, recommendations, trainings, fully_served "
                "FROM service_progress")),
            "flags": rows(await conn.fetch(
                "SELECT employer_id, university, severity FROM employer_flags")),
            "applications": await conn.fetchval("SELECT count(*) FROM applications"),
            "offers": await conn.fetchval("SELECT count(*) FROM offers"),
            "agg_snapshot": {(r[0], r[1], json.dumps(json.loads(r[2]), sort_keys=True),
                              json.dumps(json.loads(r[3]), sort_keys=True))
                             for r in await conn.fetch("SELECT aggregate, key, dims, value FROM agg_snapshot")},
        }
    finally:
        await conn.close()


# --- plumbing ------------------------------------------------------------------------------------------------

@dataclass
class Topics:
    events: dict[Family, str]
    aggs: dict[str, str]

    @property
    def all(self) -> list[str]:
        return [*self.events.values(), *self.aggs.values()]


def make_topics(kafka: KafkaAccess, unique: str, partitions: int = 3) -> Topics:
    """The test's own canonical and aggregated topics, readable by the projector principal."""
    topics = Topics({f: f"t{unique}.events.{f.value}" for f in Family},
                    {n: f"t{unique}.agg.{n}" for n in AGG_NAMES})
    provision(kafka, [TopicSpec(t, partitions, compacted=t in topics.aggs.values()) for t in topics.all])
    grant(kafka, [Grant(PROJECTOR, Resource.TOPIC, t, op) for t in topics.all for op in ("READ", "DESCRIBE")])
    return topics


def produce(kafka: KafkaAccess, topics: Topics, sc: Scenario, duplicate_every: int = 0,
            raw: list[tuple[str, bytes | None, bytes]] = ()) -> None:  # type: ignore[assignment]
    producer = KafkaProducer(**kafka.kafka_python(), acks="all", enable_idempotence=True, linger_ms=5)
    try:
        for i, e in enumerate(sc.events):
            value, key = encode(e), e.key
            producer.send(topics.events[Family(e.family)], value, key=key)
            if duplicate_every and i % duplicate_every == 0:
                producer.send(topics.events[Family(e.family)], value, key=key)
        for name, key, obj in sc.aggs:
            producer.send(topics.aggs[name], None if obj is None else json.dumps(obj).encode(), key=key.encode())
        for topic, key, value in raw:
            producer.send(topic, value, key=key)
        producer.flush(timeout=30)
    finally:
        producer.close(timeout=10)


def end_offsets(kafka: KafkaAccess, topics: list[str]) -> dict[tuple[str, int], int]:
    consumer = KafkaConsumer(**kafka.kafka_python())
    try:
        tps = [TopicPartition(t, p) for t in topics for p in sorted(consumer.partitions_for_topic(t) or [])]
        return {(tp.topic, tp.partition): off for tp, off in consumer.end_offsets(tps).items()}
    finally:
        consumer.close()


async def stored(dsn: str, group: str) -> dict[tuple[str, int], int]:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch("SELECT topic, partition, next_offset FROM consumer_offsets WHERE group_id = $1", group)
    finally:
        await conn.close()
    return {(r[0], r[1]): r[2] for r in rows}


def caught_up(have: dict[tuple[str, int], int], want: dict[tuple[str, int], int]) -> bool:
    return all(have.get(tp, 0) >= off for tp, off in want.items())


async def project_until_caught_up(config: ProjectorConfig, want: dict[tuple[str, int], int],
                                  registry: CollectorRegistry | None = None, limit_s: float = 90,
                                  during: Any = None) -> Projector:
    projector = Projector(config, registry)
    stop = asyncio.Event()
    task = asyncio.create_task(projector.run(stop))
    try:
        async with asyncio.timeout(limit_s):
            while not caught_up(await stored(config.dsn, config.group), want):
                if task.done():
                    task.result()
                    raise AssertionError("projector stopped before catching up")
                if during is not None:
                    await during(projector)
                await asyncio.sleep(0.1)
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=30)
    return projector


def config_for(settings: Settings, dsn: str, topics: Topics, group: str, **kw: Any) -> ProjectorConfig:
    """The projector of ``topics``, as the projector principal."""
    return ProjectorConfig(kafka=settings.kafka(PROJECTOR), dsn=dsn, group=group,
                           event_topics=tuple(topics.events.values()), agg_topics=tuple(topics.aggs.values()),
                           batch_timeout_ms=200, **kw)


# --- tests ---------------------------------------------------------------------------------------------------

async def test_distinct_events_give_exactly_the_expected_rows_with_duplicates_and_replay(
        kafka_settings: Settings, pg_dsn: str, unique: str) -> None:
    sc = build_scenario()
    topics = make_topics(kafka_settings.kafka(ADMIN), unique)
    produce(kafka_settings.kafka(ADMIN), topics, sc, duplicate_every=3)  # a third of the events arrive twice
    await migrate(pg_dsn)
    want = end_offsets(kafka_settings.kafka(ADMIN), topics.all)
    expected = expected_state(sc)
    assert len(sc.events) > 500 and expected["postings"] and expected["agg_snapshot"]

    registry = CollectorRegistry()
    await project_until_caught_up(config_for(kafka_settings, pg_dsn, topics, f"g1-{unique}", batch_size=97),
                                  want, registry)
    first = await actual_state(pg_dsn)
    assert first == expected

    # replay: the same group from stored offset 0
    conn = await asyncpg.connect(pg_dsn)
    try:
        await conn.execute("UPDATE consumer_offsets SET next_offset = 0 WHERE group_id = $1", f"g1-{unique}")
    finally:
        await conn.close()
    await project_until_caught_up(config_for(kafka_settings, pg_dsn, topics, f"g1-{unique}", batch_size=500), want)
    assert await actual_state(pg_dsn) == expected
    # replay: a second group over the same database, different batch boundaries
    await project_until_caught_up(config_for(kafka_settings, pg_dsn, topics, f"g2-{unique}", batch_size=13), want)
    assert await actual_state(pg_dsn) == expected
    assert await stored(pg_dsn, f"g2-{unique}") == want

    # metrics under their contract names
    value = registry.get_sample_value
    assert value("alliance_projector_events_total", {"family": "recruitment"}) == sum(
        1 for i, e in enumerate(sc.events) if e.family == "recruitment" for _ in range(2 if i % 3 == 0 else 1))
    assert value("alliance_projector_batch_rows_count") == value("alliance_projector_batch_seconds_count") > 1
    assert value("alliance_projector_rows_total", {"table": "postings"}) >= len(expected["postings"])
    assert value("alliance_projector_last_batch_timestamp_seconds") > 0
    lag = {s.labels["partition"]: s.value for m in registry.collect() if m.name == "alliance_consumer_lag_messages"
           for s in m.samples}
    assert lag and set(lag.values()) == {0.0}


def _agg_value(name: str, i: int) -> dict[str, Any]:
    """A value of the aggregate's contract (events.aggregates) that differs with ``i``."""
    if name == "fairs":
        return {"status": "open", "name": f"fair {i}", "host_university": "cqu", "city": "chongqing",
                "booths": i, "distinct_checkins": 2 * i, "onsite_offers": i // 2}
    return {"briefings": i, "counsellings": 1, "recommended_postings": i % 4, "programs": 0,
            "fully_served": False, "steps_met": 2}


async def test_undecodable_records_are_rejected_with_reason_in_the_same_transaction(
        kafka_settings: Settings, pg_dsn: str, unique: str) -> None:
    topics = make_topics(kafka_settings.kafka(ADMIN), unique, partitions=1)
    sc = Scenario(events=build_scenario(postings=2, fairs=1, mentors=1, seekers=2).events[:5])
    good = json.loads(encode(sc.events[0]))
    raw = [
        (topics.events[Family.RECRUITMENT], b"k1", b"{not json"),
        (topics.events[Family.RECRUITMENT], b"k2", json.dumps({**good, "type": "recruitment.nope"}).encode()),
        (topics.aggs["fairs"], b"k3", json.dumps({"aggregate": "mentors", "key": {}, "value": {},
                                                  "updated_at": T0.isoformat()}).encode()),
        (topics.aggs["fairs"], b"k4", b"[1, 2]"),
    ]
    produce(kafka_settings.kafka(ADMIN), topics, sc, raw=raw)
    await migrate(pg_dsn)
    want = end_offsets(kafka_settings.kafka(ADMIN), topics.all)
    await project_until_caught_up(config_for(kafka_settings, pg_dsn, topics, f"g-{unique}"), want)
    conn = await asyncpg.connect(pg_dsn)
    try:
        rejects = await conn.fetch('SELECT topic, key, reason FROM projector_rejects ORDER BY topic, key')
        postings = await conn.fetchval("SELECT count(*) FROM postings")
    finally:
        await conn.close()
    assert [(r["topic"], r["key"]) for r in rejects] == [
        (topics.aggs["fairs"], b"k3"), (topics.aggs["fairs"], b"k4"),
        (topics.events[Family.RECRUITMENT], b"k1"), (topics.events[Family.RECRUITMENT], b"k2")]
    reasons = [r["reason"] for r in rejects]
    assert "not a valid fairs record" in reasons[0] and "not a valid fairs record" in reasons[1]
    assert "JSON" in reasons[2] and "unknown event type" in reasons[3]
    assert postings == len({e.subject for e in sc.events if e.family == "recruitment"})


async def test_dropped_database_connections_lose_and_duplicate_nothing(
        kafka_settings: Settings, pg_dsn: str, unique: str) -> None:
    sc = build_scenario(seed=11, postings=30)
    topics = make_topics(kafka_settings.kafka(ADMIN), unique)
    produce(kafka_settings.kafka(ADMIN), topics, sc)
    await migrate(pg_dsn)
    want = end_offsets(kafka_settings.kafka(ADMIN), topics.all)
    group = f"g-{unique}"
    kills = 0
    registry = CollectorRegistry()

    async def kill_projector_connections(_: Projector) -> None:
        nonlocal kills
        if kills >= 3:
            return
        conn = await asyncpg.connect(pg_dsn)
        try:
            killed = await conn.fetchval(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()")
        finally:
            await conn.close()
        kills += 1 if killed else 0

    await project_until_caught_up(config_for(kafka_settings, pg_dsn, topics, group, batch_size=20, pause_ms=20),
                                  want, registry, during=kill_projector_connections)
    assert kills == 3
    assert await actual_state(pg_dsn) == expected_state(sc)
