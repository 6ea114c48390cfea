"""Writing one ``Plan`` to PostgreSQL in ONE transaction: COPY into per-connection staging tables, set-based
``INSERT ... ON CONFLICT`` upserts, recounts of the touched parents, rejects, and the consumer offsets."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Sequence
from uuid import UUID

import asyncpg

from consumers.mapping import (
    ENTITY_TABLES,
    ROW_SOURCES,
    SEEKER_COLUMNS,
    Erasure,
    LogEntry,
    Plan,
    employer_of,
    employer_rows,
    entity_rows,
    event_rows,
)
from consumers.tables import BY_NAME, EMPLOYERS, TABLES, Row, Table
from core.partitioning import key_partition
from events.base import Event
from events.codec import decode_stored
from events.corrections import replacement, revision_problem
from events.topics import EVENT_PARTITIONS

_AGG_STAGE = ("CREATE TEMP TABLE IF NOT EXISTS stage_agg (aggregate text, key text, dims jsonb, value jsonb, "
              "updated_at timestamptz) ON COMMIT DELETE ROWS")
_AGG_UPSERT = """
INSERT INTO agg_snapshot AS t (aggregate, key, dims, value, updated_at)
SELECT aggregate, key, dims, value, updated_at FROM stage_agg WHERE value IS NOT NULL
ON CONFLICT (aggregate, key) DO UPDATE SET dims = excluded.dims, value = excluded.value,
    updated_at = excluded.updated_at
WHERE excluded.updated_at > t.updated_at
   OR (excluded.updated_at = t.updated_at AND (excluded.dims, excluded.value) IS DISTINCT FROM (t.dims, t.value))"""
_AGG_DELETE = """
DELETE FROM agg_snapshot t USING stage_agg s
WHERE s.value IS NULL AND t.aggregate = s.aggregate AND t.key = s.key"""

# Placeholder parents for children that arrive first, then recounts of the touched parents only.
_PENDING = "DELETE FROM pending_rebuilds RETURNING family, subject"
_PLACEHOLDER = "INSERT INTO {table} ({key}) SELECT unnest($1::text[]) ON CONFLICT DO NOTHING"
_RECOUNT_POSTINGS = """
UPDATE postings p SET applications = c.applications, offers = c.offers, accepted = c.accepted,
    declined = c.declined, hired = c.hired
FROM (SELECT ids.id,
             (SELECT count(*) FROM applications a WHERE a.posting_id = ids.id)::int AS applications,
             o.offers, o.accepted, o.declined, o.hired
      FROM unnest($1::text[]) AS ids(id)
      CROSS JOIN LATERAL (
          SELECT count(*)::int AS offers,
                 (count(*) FILTER (WHERE answer = 'accepted'))::int AS accepted,
                 (count(*) FILTER (WHERE answer = 'declined'))::int AS declined,
                 (count(DISTINCT seeker_id) FILTER (WHERE hired_at IS NOT NULL))::int AS hired
          FROM offers WHERE offers.posting_id = ids.id) o) c
WHERE p.posting_id = c.id
  AND (p.applications, p.offers, p.accepted, p.declined, p.hired)
      IS DISTINCT FROM (c.applications, c.offers, c.accepted, c.declined, c.hired)"""
_RECOUNT_FAIRS = """
UPDATE fairs f SET booths = c.booths, checkins = c.checkins, onsite_offers = c.onsite_offers
FROM (SELECT ids.id,
             (SELECT count(*) FROM booths b WHERE b.fair_id = ids.id)::int AS booths,
             (SELECT count(*) FROM fair_checkins k WHERE k.fair_id = ids.id)::int AS checkins,
             (SELECT count(*) FROM fair_offers o WHERE o.fair_id = ids.id)::int AS onsite_offers
      FROM unnest($1::text[]) AS ids(id)) c
WHERE f.fair_id = c.id
  AND (f.booths, f.checkins, f.onsite_offers) IS DISTINCT FROM (c.booths, c.checkins, c.onsite_offers)"""
_RECOUNT_MENTORS = """
UPDATE mentors m SET assigned = c.assigned, sessions = c.sessions, session_minutes = c.session_minutes,
    seekers_served = c.seekers_served
FROM (SELECT ids.id,
             (SELECT count(*) FROM mentor_assignments a WHERE a.mentor_id = ids.id)::int AS assigned,
             s.sessions, s.session_minutes,
             (SELECT count(DISTINCT x) FROM mentoring_sessions ms, unnest(ms.seeker_ids) AS x
              WHERE ms.mentor_id = ids.id)::int AS seekers_served
      FROM unnest($1::text[]) AS ids(id)
      CROSS JOIN LATERAL (SELECT count(*)::int AS sessions,
                                 coalesce(sum(duration_minutes), 0)::int AS session_minutes
                          FROM mentoring_sessions ms WHERE ms.mentor_id = ids.id) s) c
WHERE m.mentor_id = c.id
  AND (m.assigned, m.sessions, m.session_minutes, m.seekers_served)
      IS DISTINCT FROM (c.assigned, c.sessions, c.session_minutes, c.seekers_served)"""
_SERVICE_PROGRESS = """
INSERT INTO service_progress AS t (seeker_id, university, briefings, counsellings, recommendations, trainings,
                                   updated_at)
SELECT s.seeker_id,
       (array_agg(s.university ORDER BY s.occurred_at DESC, s.university))[1],
       (count(*) FILTER (WHERE s.kind = 'briefing'))::int,
       (count(*) FILTER (WHERE s.kind = 'counselling'))::int,
       (count(DISTINCT s.ref) FILTER (WHERE s.kind = 'recommendation'))::int,
       (count(*) FILTER (WHERE s.kind = 'training'))::int,
       max(s.occurred_at)
FROM service_items s WHERE s.seeker_id = ANY($1::text[])
GROUP BY s.seeker_id
ON CONFLICT (seeker_id) DO UPDATE SET university = excluded.university, briefings = excluded.briefings,
    counsellings = excluded.counsellings, recommendations = excluded.recommendations,
    trainings = excluded.trainings, updated_at = excluded.updated_at
WHERE (t.university, t.briefings, t.counsellings, t.recommendations, t.trainings, t.updated_at)
      IS DISTINCT FROM (excluded.university, excluded.briefings, excluded.counsellings,
                        excluded.recommendations, excluded.trainings, excluded.updated_at)"""
_REJECT = """
INSERT INTO projector_rejects (topic, partition, "offset", group_id, key, value, reason)
VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING"""
_OFFSETS = """
INSERT INTO consumer_offsets AS t (group_id, topic, partition, next_offset)
SELECT $1, u.topic, u.partition, u.next_offset
FROM unnest($2::text[], $3::int[], $4::bigint[]) AS u(topic, partition, next_offset)
ON CONFLICT (group_id, topic, partition) DO UPDATE
SET next_offset = GREATEST(t.next_offset, excluded.next_offset), updated_at = now()"""

_UPSERTS = {t.name: t.upsert_sql() for t in TABLES}
_LOG_COLUMNS = ["source", "event_id", "family", "partition", "subject", "type", "employer_id", "payload"]
_LOG_STAGE = ("CREATE TEMP TABLE IF NOT EXISTS stage_event_log (source text, event_id uuid, family text, "
              "partition integer, subject text, type text, employer_id text, payload jsonb) ON COMMIT DELETE ROWS")
_LOG_INSERT = f"""
INSERT INTO event_log ({', '.join(_LOG_COLUMNS)}) SELECT {', '.join(_LOG_COLUMNS)} FROM stage_event_log
ON CONFLICT (source, event_id) DO NOTHING"""
# a copy of an event logged before whose stored version differs (it was revised since: the worker re-sent the
# original after a crash): its entity is rebuilt from the log, so that the copy's rows do not stand. One primary-key
# lookup per staged event (LIMIT 1 keeps the subquery from being flattened into a join): as a plain join the planner
# hashed the whole event_log for every batch, so each batch cost in proportion to all history (120 ms at 100,000
# logged events, against 1 ms at 2,000)
_LOG_REVISED = """
SELECT DISTINCT l.family, l.subject FROM stage_event_log s
CROSS JOIN LATERAL (SELECT family, subject, payload FROM event_log
                    WHERE source = s.source AND event_id = s.event_id LIMIT 1) l
WHERE l.payload IS DISTINCT FROM s.payload"""


async def prepare_connection(conn: asyncpg.Connection) -> None:
    """Create this session's staging tables (pool ``init`` callback; runs again after a reconnect)."""
    for table in TABLES:
        await conn.execute(table.create_stage_sql())
    await conn.execute(_AGG_STAGE)
    await conn.execute(_LOG_STAGE)


def _parents(plan: Plan, children: Iterable[tuple[str, str]]) -> list[str]:
    ids: set[str] = set()
    for table, column in children:
        ids.update(plan.touched(table, column))
    return sorted(ids)


async def apply_plan(conn: asyncpg.Connection, group: str, plan: Plan,
                     event_partitions: int = EVENT_PARTITIONS) -> Counter[str]:
    """Write the whole plan in one transaction; return rows staged per table. Raises asyncpg errors
    (the transaction is then rolled back and nothing, including the offsets, advances). ``event_partitions``:
    of each canonical topic (an erasure renames the rows of entities on its own partition)."""
    written: Counter[str] = Counter()
    async with conn.transaction():
        for erasure in plan.erasures:  # before the batch's rows: those are renamed already (consumers.mapping)
            written["erased_rows"] += await _erase(conn, erasure, event_partitions)
        for table in TABLES:
            written[table.name] += await _upsert(conn, table, plan.rows.get(table.name))
        rebuilt = await _log_and_revise(conn, plan, written)
        await _recount(conn, plan, rebuilt)
        if plan.aggs:
            await conn.copy_records_to_table(
                "stage_agg", columns=["aggregate", "key", "dims", "value", "updated_at"],
                records=[(a.aggregate, a.key, a.dims, a.value, a.updated_at) for a in plan.aggs])
            await conn.execute(_AGG_UPSERT)
            await conn.execute(_AGG_DELETE)
            written["agg_snapshot"] += len(plan.aggs)
        if plan.rejects:
            await conn.executemany(_REJECT, [(r.topic, r.partition, r.offset, group, r.key, r.value, r.reason)
                                             for r in plan.rejects])
            written["projector_rejects"] += len(plan.rejects)
        if plan.offsets:
            tps = sorted(plan.offsets)
            await conn.execute(_OFFSETS, group, [t for t, _ in tps], [p for _, p in tps],
                               [plan.offsets[tp] for tp in tps])
    return written


async def _upsert(conn: asyncpg.Connection, table: Table, rows: list[Row] | None) -> int:
    """Merge ``rows`` into ``table`` by its rules (consumers.tables); the staging table is emptied first, as
    one transaction may upsert a table more than once (a batch's rows, then an entity's rebuilt rows)."""
    if not rows:
        return 0
    await conn.execute(f"DELETE FROM {table.stage}")
    await conn.copy_records_to_table(table.stage, records=rows, columns=list(table.column_names))
    await conn.execute(_UPSERTS[table.name])
    return len(rows)


async def _log_and_revise(conn: asyncpg.Connection, plan: Plan, written: Counter[str]) -> dict[str, set[str]]:
    """Log the batch's events and apply its revisions in record order (each sees the log as it stood when it
    was read); then rebuild the rows of every revised entity from its events left standing. Returns the
    rebuilt entities' subjects per family (for the recounts)."""
    entities: set[tuple[str, str]] = set()
    revised: dict[tuple[str, str], list[Event]] = {}  # entities whose revised rows alone are rebuilt: the versions
    employers: set[str] = set()
    done = 0
    for planned in plan.revisions:
        entities |= await _log(conn, plan.log[done:planned.after])
        done = planned.after
        row = await conn.fetchrow("SELECT payload FROM event_log WHERE source = $1 AND event_id = $2",
                                  planned.revision.source, UUID(planned.revision.original_id))
        original = decode_stored(row["payload"]) if row and row["payload"] is not None else None
        if revision_problem(planned.revision, original) is not None:  # the worker refused it too (DLQ)
            written["revisions_refused"] += 1
            continue
        assert original is not None
        await conn.execute("UPDATE event_log SET payload = $3::jsonb, revised_at = now() "
                           "WHERE source = $1 AND event_id = $2", planned.revision.source,
                           UUID(planned.revision.original_id),
                           json.dumps(planned.replacement) if planned.replacement is not None else None)
        written["revisions"] += 1
        versions = [v for v in (original, replacement(planned.revision)) if v is not None]
        if all(type(v) in ROW_SOURCES for v in versions):
            revised.setdefault((planned.family, planned.subject), []).extend(versions)
        else:
            entities.add((planned.family, planned.subject))
        for version in versions:
            if (employer := employer_of(version)) is not None:
                employers.add(employer)
    entities |= await _log(conn, plan.log[done:])
    written["event_log"] += len(plan.log)
    # entities a migration asked to rebuild (009: member rows merged across entities by their earlier keys)
    entities |= {(r["family"], r["subject"]) for r in await conn.fetch(_PENDING)}
    rebuilt: dict[str, set[str]] = {}
    for family, subject in sorted(entities):
        rows = await _rebuild(conn, family, subject)
        written["rebuilt_rows"] += rows
        rebuilt.setdefault(family, set()).add(subject)
    for (family, subject), versions in sorted(revised.items()):
        if subject in rebuilt.get(family, ()):
            continue
        written["rebuilt_rows"] += await _rebuild_rows(conn, family, subject, versions)
        rebuilt.setdefault(family, set()).add(subject)
    if employers:
        ids = sorted(employers)
        await conn.execute("DELETE FROM employers WHERE employer_id = ANY($1)", ids)
        payloads = await conn.fetch("SELECT payload FROM event_log WHERE employer_id = ANY($1) AND payload IS NOT "
                                    "NULL", ids)
        written["rebuilt_rows"] += await _upsert(conn, EMPLOYERS, employer_rows(
            decode_stored(r["payload"]) for r in payloads))
    return rebuilt


async def _log(conn: asyncpg.Connection, entries: list[LogEntry]) -> set[tuple[str, str]]:
    """Insert ``entries`` into event_log (a copy seen before keeps the stored version); the entities of copies
    whose stored version was revised since."""
    if not entries:
        return set()
    await conn.execute("DELETE FROM stage_event_log")
    await conn.copy_records_to_table("stage_event_log", records=[e.row() for e in entries], columns=_LOG_COLUMNS)
    stale = {(r["family"], r["subject"]) for r in await conn.fetch(_LOG_REVISED)}
    await conn.execute(_LOG_INSERT)
    return stale


async def _rebuild(conn: asyncpg.Connection, family: str, subject: str) -> int:
    """Replace the entity's own rows (consumers.mapping.ENTITY_TABLES) with those of its events left
    standing."""
    for table, column in ENTITY_TABLES[family]:
        await conn.execute(f"DELETE FROM {table.name} WHERE {column} = $1", subject)
    payloads = await conn.fetch("SELECT payload FROM event_log WHERE family = $1 AND subject = $2 AND payload IS "
                                "NOT NULL", family, subject)
    rows = entity_rows(decode_stored(r["payload"]) for r in payloads)
    return sum([await _upsert(conn, BY_NAME[name], rows.get(name)) for name in BY_NAME])


async def _rebuild_rows(conn: asyncpg.Connection, family: str, subject: str, versions: list[Event]) -> int:
    """Replace the rows the revised events (``versions``: the originals and their corrected versions; types of
    ROW_SOURCES) keyed in the entity's tables with those of the entity's standing events that write the same rows:
    what ``_rebuild`` does to those rows, reading those events only (a member's, or the few that write the entity's
    own row), not the entity's whole history. An entity none of whose events stands is rebuilt whole (its rows all
    go)."""
    if not await conn.fetchval("SELECT EXISTS (SELECT 1 FROM event_log WHERE family = $1 AND subject = $2 AND "
                               "payload IS NOT NULL)", family, subject):
        return await _rebuild(conn, family, subject)
    keys: dict[str, set[Row]] = {}  # table -> the keys of the rows the versions wrote
    # types -> the members the versions name (event_log's ``member``: the declared field, migration 011); None: the
    # entity's own row, written by every event of those types
    named: dict[tuple[str, ...], set[str] | None] = {}
    for version in versions:
        source = ROW_SOURCES[type(version)]
        if source.field is None:
            named[source.types] = None
        elif (members := named.setdefault(source.types, set())) is not None:
            members.add(str(getattr(version.data, source.field)))
        for table, row in event_rows(version):
            if table is not EMPLOYERS:
                keys.setdefault(table.name, set()).add(row[:len(table.key)])
    payloads = []
    for types, members in sorted(named.items()):
        which = "" if members is None else " AND member = ANY($4::text[])"
        payloads += await conn.fetch(f"SELECT payload FROM event_log WHERE family = $1 AND subject = $2 AND type = "
                                     f"ANY($3::text[]){which} AND payload IS NOT NULL", family, subject, list(types),
                                     *([] if members is None else [sorted(members)]))
    rows = entity_rows(decode_stored(r["payload"]) for r in payloads)
    column = {table.name: entity for table, entity in ENTITY_TABLES[family]}
    written = 0
    for name, table_keys in sorted(keys.items()):
        table = BY_NAME[name]
        key = ", ".join(table.key)
        await conn.execute(f"DELETE FROM {name} WHERE {column[name]} = $1 AND ({key}) IN (SELECT * FROM unnest("
                           + ", ".join(f"${i + 2}::text[]" for i in range(len(table.key))) + "))",
                           subject, *(list(k[i] for k in sorted(table_keys)) for i in range(len(table.key))))
        written += await _upsert(conn, table, [r for r in rows.get(name, []) if r[:len(table.key)] in table_keys])
    return written


async def _recount(conn: asyncpg.Connection, plan: Plan, rebuilt: dict[str, set[str]]) -> None:
    """Recount the parents the batch's rows touched, and those of rebuilt entities (a parent none of whose
    events is left standing has no row left: it gets no placeholder)."""
    steps: Sequence[tuple[str, str, list[str], str, str]] = (
        ("postings", "posting_id",
         _parents(plan, [("applications", "posting_id"), ("offers", "posting_id")]), _RECOUNT_POSTINGS,
         "recruitment"),
        ("fairs", "fair_id",
         _parents(plan, [("booths", "fair_id"), ("fair_checkins", "fair_id"), ("fair_offers", "fair_id")]),
         _RECOUNT_FAIRS, "jobfair"),
        ("mentors", "mentor_id",
         _parents(plan, [("mentor_assignments", "mentor_id"), ("mentoring_sessions", "mentor_id")]),
         _RECOUNT_MENTORS, "mentoring"),
    )
    for table, key, ids, recount, family in steps:
        subjects = rebuilt.get(family, set())
        standing = await _standing(conn, family, subjects)
        ids = sorted((set(ids) - subjects) | standing)
        if ids:
            await conn.execute(_PLACEHOLDER.format(table=table, key=key), ids)
            await conn.execute(recount, ids)
    seekers = plan.touched("service_items", "seeker_id")
    seekers += [e.token for e in plan.erasures if e.family == "services"]  # their progress, renamed
    gone = sorted(rebuilt.get("services", set()))
    if gone:  # a rebuilt seeker without a service left has no progress row
        await conn.execute("DELETE FROM service_progress p WHERE seeker_id = ANY($1) AND NOT EXISTS "
                           "(SELECT 1 FROM service_items s WHERE s.seeker_id = p.seeker_id)", gone)
        seekers += gone
    if seekers:
        await conn.execute(_SERVICE_PROGRESS, seekers)


async def _standing(conn: asyncpg.Connection, family: str, subjects: set[str]) -> set[str]:
    """The rebuilt ``subjects`` of ``family`` that still have an event standing in the log."""
    if not subjects:
        return set()
    rows = await conn.fetch("SELECT DISTINCT subject FROM event_log WHERE family = $1 AND subject = ANY($2) AND "
                            "payload IS NOT NULL", family, sorted(subjects))
    return {r["subject"] for r in rows}


async def _erase(conn: asyncpg.Connection, erasure: Erasure, partitions: int) -> int:
    """Rename an erased seeker in the stored rows of the erasure's (family, partition): the same rows keep
    counting, under the anonymous token; remember the digest so that later events naming the seeker on that
    partition are not projected. Returns the rows renamed."""
    renamed = 0
    for table, entity, column in SEEKER_COLUMNS[erasure.family]:
        array = column == "seeker_ids"
        naming = f"$1 = ANY({column})" if array else f"{column} = $1"
        ids = [r[0] for r in await conn.fetch(f"SELECT DISTINCT {entity} FROM {table.name} WHERE {naming}",
                                              erasure.seeker)]
        ids = [i for i in ids if key_partition(i.encode(), partitions) == erasure.partition]
        if not ids:
            continue
        new = f"array_replace({column}, $1, $2)" if array else "$2"
        status = await conn.execute(f"UPDATE {table.name} SET {column} = {new} WHERE {naming} AND {entity} = ANY($3)",
                                    erasure.seeker, erasure.token, ids)
        renamed += int(status.split()[-1])
    quoted = json.dumps(erasure.seeker)  # a pseudonym has no character JSON escapes: its text is its value
    status = await conn.execute(
        "UPDATE event_log SET payload = replace(payload::text, $1, $2)::jsonb, "
        "subject = CASE WHEN subject = $5 THEN $6 ELSE subject END "
        "WHERE family = $3 AND partition = $4 AND (payload::text LIKE '%' || $1 || '%' OR subject = $5)",
        quoted, json.dumps(erasure.token), erasure.family, erasure.partition, erasure.seeker, erasure.token)
    renamed += int(status.split()[-1])
    if erasure.family == "services" and key_partition(erasure.seeker.encode(), partitions) == erasure.partition:
        await conn.execute("DELETE FROM service_progress WHERE seeker_id = $1", erasure.seeker)
        await conn.execute("DELETE FROM agg_snapshot WHERE aggregate = 'seeker-guarantee' AND key = $1",
                           f"seeker:{erasure.seeker}")
    await conn.execute("INSERT INTO erased_seekers (digest, family, partition) VALUES ($1, $2, $3) "
                       "ON CONFLICT DO NOTHING", *erasure.marker)
    return renamed


async def erased_markers(conn: asyncpg.Connection) -> set[tuple[str, str, int]]:
    """Every (seeker digest, family, partition) an erasure was applied on (consumers.mapping.plan_batch)."""
    return {(r["digest"], r["family"], r["partition"])
            for r in await conn.fetch("SELECT digest, family, partition FROM erased_seekers")}


async def stored_offsets(conn: asyncpg.Connection, group: str,
                         partitions: Iterable[tuple[str, int]]) -> dict[tuple[str, int], int]:
    wanted = sorted(set(partitions))
    rows = await conn.fetch(
        "SELECT topic, partition, next_offset FROM consumer_offsets WHERE group_id = $1 "
        "AND (topic, partition) IN (SELECT * FROM unnest($2::text[], $3::int[]))",
        group, [t for t, _ in wanted], [p for _, p in wanted])
    return {(r["topic"], r["partition"]): r["next_offset"] for r in rows}
