"""Portal-facing queries over the read model: one named, parameterised SQL statement each, over the views of
schema ``portal`` (migration 005), all the portal role may read."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import asyncpg

from consumers.errors import QueryError
from events.reference import UNIVERSITIES


@dataclass(frozen=True)
class Query:
    name: str
    description: str
    sql: str  # $1 = university or NULL (all), $2 = row limit


QUERIES: dict[str, Query] = {q.name: q for q in (
    Query("open-postings", "open postings and positions by industry x city x employer type", """
        SELECT industry, city, employer_type, count(*) AS postings, sum(positions) AS positions
        FROM portal.postings
        WHERE closed_at IS NULL AND posted_at IS NOT NULL AND ($1::text IS NULL OR university = $1)
        GROUP BY industry, city, employer_type
        ORDER BY positions DESC, industry, city, employer_type LIMIT $2"""),
    Query("posting-funnel", "applications, offers, acceptances, hires and rates per posting", """
        SELECT posting_id, university, employer_name, title, state, applications, offers, accepted,
               declined, hired,
               round(offers::numeric / nullif(applications, 0), 3) AS offer_rate,
               round(accepted::numeric / nullif(offers, 0), 3) AS acceptance_rate
        FROM portal.postings
        WHERE posted_at IS NOT NULL AND ($1::text IS NULL OR university = $1)
        ORDER BY applications DESC, posting_id LIMIT $2"""),
    Query("fairs", "job fairs: booths, distinct check-ins and on-site offers", """
        SELECT fair_id, name, host_university, city, starts_at, ends_at, state, booths, checkins,
               onsite_offers
        FROM portal.fairs
        WHERE scheduled_at IS NOT NULL AND ($1::text IS NULL OR host_university = $1)
        ORDER BY starts_at DESC, fair_id LIMIT $2"""),
    Query("mentors", "mentor pool by university and expertise, sessions held", """
        SELECT university, expertise, count(*) AS mentors, sum(assigned) AS assigned_seekers,
               sum(sessions) AS sessions, sum(session_minutes) AS session_minutes,
               sum(seekers_served) AS seekers_served
        FROM portal.mentors
        WHERE registered_at IS NOT NULL AND ($1::text IS NULL OR university = $1)
        GROUP BY university, expertise
        ORDER BY university, expertise LIMIT $2"""),
    Query("service-guarantee", "1-1-3-1 service guarantee: seekers reached and fully served per university",
          """
        SELECT university, seekers, briefed, counselled, three_recommendations, trained, fully_served,
               round(fully_served::numeric / seekers, 3) AS fully_served_rate
        FROM portal.service_guarantee
        WHERE ($1::text IS NULL OR university = $1)
        ORDER BY university LIMIT $2"""),
    Query("talent-flow", "hires by the seeker's university: stayed in its province, moved within the circle, "
                         "left it; retention in the Chengdu-Chongqing circle", """
        SELECT university, origin, sum(hires)::int AS hires,
               coalesce(sum(hires) FILTER (WHERE destination = origin), 0)::int AS stayed_in_province,
               coalesce(sum(hires) FILTER (WHERE destination <> origin AND destination <> 'outside_circle'),
                        0)::int AS moved_within_circle,
               coalesce(sum(hires) FILTER (WHERE destination = 'outside_circle'), 0)::int AS left_circle,
               round(coalesce(sum(hires) FILTER (WHERE destination <> 'outside_circle'), 0)::numeric
                     / nullif(sum(hires), 0), 3) AS retention_in_circle,
               sum(accepted_offers)::int AS accepted_offers
        FROM portal.talent_flow
        WHERE ($1::text IS NULL OR university = $1)
        GROUP BY university, origin
        ORDER BY hires DESC, university LIMIT $2"""),
    Query("snapshots", "latest aggregated-topic snapshots (alliance.agg.*), newest first", """
        SELECT aggregate, key, dims, value, updated_at
        FROM portal.snapshots  -- without per-student records
        WHERE ($1::text IS NULL OR dims ->> 'university' = $1)
        ORDER BY updated_at DESC, aggregate, key LIMIT $2"""),
)}


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value


async def run_query(conn: asyncpg.Connection, name: str, university: str | None = None,
                    limit: int = 100) -> list[dict[str, Any]]:
    query = QUERIES.get(name)
    if query is None:
        raise QueryError(f"unknown query {name!r}; choose one of: {', '.join(QUERIES)}")
    if university is not None and university not in UNIVERSITIES:
        raise QueryError(f"unknown university {university!r}; members: {', '.join(sorted(UNIVERSITIES))}")
    if not 1 <= limit <= 10_000:
        raise QueryError("limit must be between 1 and 10000")
    rows = await conn.fetch(query.sql, university, limit)
    return [{k: _plain(v) for k, v in r.items()} for r in rows]


def format_table(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "(no rows)"
    cols = list(rows[0])
    cells = [[("" if r[c] is None else str(r[c])) for c in cols] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(cols)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(cols, widths, strict=True)),
             "  ".join("-" * w for w in widths)]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)) for row in cells]
    return "\n".join(lines)
