"""Checking a run from the outside: read the aggregated topics and the read model as a portal would, and
compare every aggregate with the independent oracle (infra.oracle).

Used by the end-to-end tests and by ``python -m infra chaos``. The readers are plain clients (aiokafka,
asyncpg) that know nothing of the stream processors' code.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import asyncpg
from aiokafka import AIOKafkaConsumer

from core.kafka_access import KafkaAccess
from events.privacy import ERASED_PREFIX
from events.topics import AGGREGATES, DLQ_TOPIC, agg_topic

TopicState = dict[str, dict[str, Any]]  # topic -> key (or partition:offset for the DLQ) -> (value, headers)
Aggregates = dict[str, dict[str, dict[str, Any]]]  # aggregate -> key -> value
TYPED = [n for n in AGGREGATES if n != "windows"]  # the aggregates the read model also keeps in typed tables


def value_diffs(actual: dict[str, dict[str, Any]], expected: dict[str, dict[str, Any]]) -> list[str]:
    """Keys missing on either side, and the expected fields whose actual value differs."""
    diffs = []
    for key in expected.keys() | actual.keys():
        e, a = expected.get(key), actual.get(key)
        if e is None or a is None:
            diffs.append(f"{key}: expected {e}, got {a}")
            continue
        wrong = {f: (v, a.get(f)) for f, v in e.items() if a.get(f) != v}
        if wrong:
            diffs.append(f"{key}: {wrong}")
    return diffs


def all_match(actual: Aggregates, expected: Aggregates, names: Iterable[str] = AGGREGATES) -> bool:
    return all(not value_diffs(actual.get(n, {}), expected[n]) for n in names)


async def latest(kafka: KafkaAccess, topics: list[str], group: str, until: Callable[[TopicState], bool],
                 wait_s: float) -> TopicState:
    """Latest value per (topic, key), read until ``until(state)`` holds or the timeout expires. DLQ records
    are all kept (by partition:offset) with their headers."""
    consumer = AIOKafkaConsumer(*topics, **kafka.aiokafka(), group_id=group,
                                auto_offset_reset="earliest", enable_auto_commit=False)
    await consumer.start()
    state: TopicState = {t: {} for t in topics}
    try:
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            for tp, records in batch.items():
                for r in records:
                    if tp.topic.startswith(DLQ_TOPIC):
                        state[tp.topic][f"{tp.partition}:{r.offset}"] = (r.value, dict(r.headers))
                    else:
                        state[tp.topic][(r.key or b"").decode()] = (json.loads(r.value) if r.value else None, None)
            if until(state):
                break
    finally:
        await consumer.stop()
    return state


def agg_key(dims: dict[str, str]) -> str:
    """The oracle's key of an aggregate record: the entity id, or the sorted dimension string."""
    return dims["id"] if set(dims) == {"id"} else "|".join(f"{d}={dims[d]}" for d in sorted(dims))


def aggregates_on_topics(state: TopicState, suffix: str) -> Aggregates:
    """{aggregate: {key: value}} from the latest records of the alliance.agg.* topics."""
    out: Aggregates = {}
    for name in AGGREGATES:
        out[name] = {}
        for rec, _headers in state.get(agg_topic(name) + suffix, {}).values():
            if isinstance(rec, dict) and isinstance(rec.get("key"), dict) and "value" in rec:  # not a forgery
                out[name][agg_key(rec["key"])] = rec["value"]
    return out


# ------------------------------------------------------------------------------------- the read model

_SEGMENTS = """
SELECT industry, city, employer_type, coalesce(university, '*') AS university, count(*)::int AS postings_total,
       (count(*) FILTER (WHERE state = 'open'))::int AS open_postings,
       (coalesce(sum(positions) FILTER (WHERE state = 'open'), 0))::int AS open_positions
FROM postings WHERE posted_at IS NOT NULL
GROUP BY GROUPING SETS ((industry, city, employer_type, university), (industry, city, employer_type))"""
_MENTORS = """
SELECT coalesce(university, '*') AS university, expertise, count(*)::int AS mentors, sum(sessions)::int AS sessions,
       sum(assigned)::int AS seekers_assigned, sum(session_minutes)::int AS session_minutes
FROM mentors WHERE registered_at IS NOT NULL GROUP BY GROUPING SETS ((university, expertise), (expertise))"""


async def typed_tables(conn: asyncpg.Connection) -> Aggregates:
    """The aggregates as the read model's typed tables state them, in the oracle's shape."""
    out: Aggregates = {name: {} for name in AGGREGATES}
    for r in await conn.fetch("SELECT * FROM postings"):
        out["posting-funnel"][r["posting_id"]] = {
            "applications": r["applications"], "offers": r["offers"], "accepted": r["accepted"],
            "declined": r["declined"], "hired": r["hired"], "status": r["state"]}
    for r in await conn.fetch("SELECT * FROM fairs"):
        out["fairs"][r["fair_id"]] = {"booths": r["booths"], "distinct_checkins": r["checkins"],
                                      "onsite_offers": r["onsite_offers"], "status": r["state"]}
    for r in await conn.fetch("SELECT * FROM service_progress"):
        if r["seeker_id"].startswith(ERASED_PREFIX):  # an erased seeker: counted below, no record of their own
            continue
        out["seeker-guarantee"][f"seeker:{r['seeker_id']}"] = {
            "briefings": r["briefings"], "counsellings": r["counsellings"],
            "recommended_postings": r["recommendations"], "programs": r["trainings"],
            "fully_served": r["fully_served"]}
    seekers, fully = await conn.fetchrow("SELECT count(*)::int, (count(*) FILTER (WHERE fully_served))::int "
                                         "FROM service_progress")
    out["service-guarantee"]["scope=alliance"] = {"seekers": seekers, "fully_served": fully}
    for r in await conn.fetch(_SEGMENTS):
        dims = {k: r[k] for k in ("industry", "city", "employer_type", "university")}
        out["postings-by-segment"][agg_key(dims)] = {k: r[k] for k in ("postings_total", "open_postings",
                                                                         "open_positions")}
    for r in await conn.fetch("SELECT * FROM portal.talent_flow"):  # the view portals read, per university and *
        dims = {k: r[k] for k in ("origin", "destination", "industry", "degree", "month")}
        for university in (r["university"], "*"):
            key = agg_key({**dims, "university": university})
            current = out["talent-flow"].setdefault(key, {"hires": 0, "accepted_offers": 0})
            current["hires"] += r["hires"]
            current["accepted_offers"] += r["accepted_offers"]
    for r in await conn.fetch(_MENTORS):
        out["mentors"][agg_key({"university": r["university"], "expertise": r["expertise"]})] = {
            k: r[k] for k in ("mentors", "sessions", "seekers_assigned", "session_minutes")}
    return out


async def snapshot(conn: asyncpg.Connection) -> Aggregates:
    """The aggregates as ``agg_snapshot`` (the projected aggregated topics) holds them."""
    out: Aggregates = {name: {} for name in AGGREGATES}
    for r in await conn.fetch("SELECT aggregate, dims, value FROM agg_snapshot"):
        out[r["aggregate"]][agg_key(json.loads(r["dims"]))] = json.loads(r["value"])
    return out


# --------------------------------------------------------------------------------------------- verdict

@dataclass
class Verdict:
    """How far what a run produced is from the oracle. ``lost`` / ``double`` count events: the day's
    windows (every event counted once per family, university and day) below / above the oracle's."""

    lost: int = 0
    double: int = 0
    wrong: dict[str, list[str]] = field(default_factory=dict)  # "<place> <aggregate>" -> differences

    @property
    def exact(self) -> bool:
        return not self.lost and not self.double and not self.wrong


def verdict(places: dict[str, Aggregates], expected: Aggregates) -> Verdict:
    """Compare each place (e.g. "topics", "agg_snapshot", "typed tables") with the oracle."""
    out = Verdict()
    for place, actual in places.items():
        for name in expected:
            if name not in actual or (place == "typed tables" and name not in TYPED):
                continue
            diffs = value_diffs(actual[name], expected[name])
            if diffs:
                out.wrong[f"{place} {name}"] = diffs
        if "windows" in actual and place != "typed tables":  # the worst place counts
            lost = double = 0
            for key, want in expected["windows"].items():
                if "granularity=day" in key:
                    got = int((actual["windows"].get(key) or {}).get("events", 0))
                    lost += max(0, int(want["events"]) - got)
                    double += max(0, got - int(want["events"]))
            out.lost, out.double = max(out.lost, lost), max(out.double, double)
    return out


# ------------------------------------------------------------------------------------- both, for the tests

async def poll(check: Callable[[], Awaitable[bool]], within: float) -> None:
    """Call ``check`` every half second until it holds or ``within`` seconds have passed."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline and not await check():  # noqa: ASYNC110  (polling a database)
        await asyncio.sleep(0.5)


async def exact_everywhere(kafka: KafkaAccess, conn: asyncpg.Connection, topics: list[str], suffix: str,
                           expected: Aggregates, group: str, alive: Callable[[], bool],
                           check: Callable[[TopicState], bool] = lambda _: True) -> TopicState:
    """Wait until every aggregate is ``expected`` on its topic (``topics``: the aggregated topics and any
    others ``check`` reads), in ``agg_snapshot`` and in the typed tables, and ``check`` holds; then assert
    each, naming the first differences. ``alive()``: the processes under test still run."""
    def done(state: TopicState) -> bool:
        assert alive(), "a process under test exited"
        return all_match(aggregates_on_topics(state, suffix), expected) and check(state)

    state = await latest(kafka, topics, group, done, wait_s=180)
    on_topics = aggregates_on_topics(state, suffix)
    for name in AGGREGATES:
        assert not value_diffs(on_topics[name], expected[name]), (name, value_diffs(on_topics[name],
                                                                                   expected[name])[:5])
    assert check(state)

    async def projected() -> bool:
        return all_match(await snapshot(conn), expected) and all_match(await typed_tables(conn), expected, TYPED)

    await poll(projected, 120)
    in_snapshot, in_tables = await snapshot(conn), await typed_tables(conn)
    for name in AGGREGATES:
        assert not value_diffs(in_snapshot[name], expected[name]), ("agg_snapshot", name,
                                                                    value_diffs(in_snapshot[name], expected[name])[:5])
    for name in TYPED:
        assert not value_diffs(in_tables[name], expected[name]), ("typed tables", name,
                                                                  value_diffs(in_tables[name], expected[name])[:5])
    return state
