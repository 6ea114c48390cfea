"""Staged tables of the read model: columns, merge rules, and the set-based upsert SQL derived from them.

Each table's non-key columns fall into groups. A group is owned by one version column (an occurred_at):
a row's group replaces the stored group only when its version is newer ("newest") or older ("earliest")
than the stored one. On a tie the stored group stays, except in a ``tiebreak`` group (one field, never NULL
beside its version), where the greater value wins (text compared by code point, as in Python), so that the
outcome never depends on arrival order (the stream processors use the same rule). So applying the same row
twice, or an older row after a newer one, changes nothing. The same rule folds several rows of one batch with
the same key (``merge_rows``), since one INSERT ... ON CONFLICT statement must not touch a row twice.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from typing import Any, Literal

Row = tuple[Any, ...]


@dataclass(frozen=True)
class Group:
    version: str
    fields: tuple[str, ...] = ()
    wins: Literal["newest", "earliest"] = "newest"
    tiebreak: bool = False  # on equal versions the greater field value wins (single-field groups)


@dataclass(frozen=True)
class Table:
    name: str
    key: tuple[str, ...]
    columns: tuple[tuple[str, str], ...]  # (name, SQL type), in row-tuple order, key columns first
    groups: tuple[Group, ...]

    @cached_property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c for c, _ in self.columns)

    @cached_property
    def column_set(self) -> frozenset[str]:
        return frozenset(self.column_names)

    @property
    def stage(self) -> str:
        return f"stage_{self.name}"

    def index(self, column: str) -> int:
        return self.column_names.index(column)

    def check(self) -> None:
        names = self.column_names
        grouped = [c for g in self.groups for c in (g.version, *g.fields)]
        missing = set(names) - set(self.key) - set(grouped)
        if len(set(grouped)) != len(grouped) or missing or not set(grouped) <= set(names) \
                or names[: len(self.key)] != self.key or any(g.tiebreak and len(g.fields) != 1 for g in self.groups):
            raise ValueError(f"table {self.name}: inconsistent column groups")

    def create_stage_sql(self) -> str:
        cols = ", ".join(f"{c} {t}" for c, t in self.columns)
        return f"CREATE TEMP TABLE IF NOT EXISTS {self.stage} ({cols}) ON COMMIT DELETE ROWS"

    def upsert_sql(self) -> str:
        names = self.column_names
        sets, changed = [], []
        types = dict(self.columns)
        for g in self.groups:
            cmp = ">" if g.wins == "newest" else "<"
            tie = ""
            if g.tiebreak:
                f = g.fields[0]
                collate = ' COLLATE "C"' if types[f] == "text" else ""
                tie = f" OR (excluded.{g.version} = t.{g.version} AND excluded.{f}{collate} > t.{f}{collate})"
            cond = f"(excluded.{g.version} IS NOT NULL AND (t.{g.version} IS NULL OR " \
                   f"excluded.{g.version} {cmp} t.{g.version}{tie}))"
            changed.append(cond)
            sets += [f"{c} = CASE WHEN {cond} THEN excluded.{c} ELSE t.{c} END" for c in (g.version, *g.fields)]
        return (
            f"INSERT INTO {self.name} AS t ({', '.join(names)}) SELECT {', '.join(names)} FROM {self.stage} "
            f"ON CONFLICT ({', '.join(self.key)}) DO UPDATE SET {', '.join(sets)} WHERE {' OR '.join(changed)}"
        )

    def merge_rows(self, rows: Iterable[Row]) -> list[Row]:
        """Fold rows with the same key, in order, by the same rule as ``upsert_sql``."""
        nkey = len(self.key)
        slots = [(self.index(g.version), [self.index(f) for f in g.fields], g.wins, g.tiebreak) for g in self.groups]
        merged: dict[Row, list[Any]] = {}
        for row in rows:
            k = row[:nkey]
            cur = merged.get(k)
            if cur is None:
                merged[k] = list(row)
                continue
            for vi, fis, wins, tiebreak in slots:
                new: datetime | None = row[vi]
                old: datetime | None = cur[vi]
                if new is not None and (old is None or (new > old if wins == "newest" else new < old)
                                        or (tiebreak and new == old and row[fis[0]] > cur[fis[0]])):
                    cur[vi] = new
                    for fi in fis:
                        cur[fi] = row[fi]
        return [tuple(v) for v in merged.values()]


def _t(name: str, key: Sequence[str], columns: str, *groups: Group) -> Table:
    cols = tuple((c.split()[0], " ".join(c.split()[1:])) for c in columns.split(","))
    table = Table(name, tuple(key), tuple((c.strip(), t.strip()) for c, t in cols), groups)
    table.check()
    return table


TS = "timestamptz"
EMPLOYERS = _t(
    "employers", ["employer_id"],
    f"employer_id text, name text, employer_type text, industry text, seen_at {TS}",
    Group("seen_at", ("name", "employer_type", "industry")),
)
# A flag is the flagging university's own judgement of a shared employer (events.ownership): one row per
# employer and university, never one university's flag for all.
EMPLOYER_FLAGS = _t(
    "employer_flags", ["employer_id", "university"],
    f"employer_id text, university text, severity text, reason text, postings_affected integer, flagged_at {TS}",
    Group("flagged_at", ("severity", "reason", "postings_affected")),
)
POSTINGS = _t(
    "postings", ["posting_id"],
    f"posting_id text, university text, employer_id text, employer_name text, employer_type text, "
    f"industry text, city text, district text, kind text, degree_min text, description text, "
    f"posted_at {TS}, title text, title_at {TS}, positions integer, positions_at {TS}, salary_min integer, "
    f"salary_min_at {TS}, salary_max integer, salary_max_at {TS}, deadline date, deadline_at {TS}, "
    f"closed_at {TS}, close_reason text",
    Group("posted_at", ("university", "employer_id", "employer_name", "employer_type", "industry", "city",
                        "district", "kind", "degree_min", "description")),
    Group("title_at", ("title",), tiebreak=True),
    Group("positions_at", ("positions",), tiebreak=True),
    Group("salary_min_at", ("salary_min",), tiebreak=True),
    Group("salary_max_at", ("salary_max",), tiebreak=True),
    Group("deadline_at", ("deadline",), tiebreak=True),
    Group("closed_at", ("close_reason",), wins="earliest"),
)
# A member row (an application, an offer, a session) is keyed by its entity as well as by its own id: ids are the
# publishing university's, so another university reusing one on its own entity gets a row of its own, never this one
# (migration 009).
APPLICATIONS = _t(
    "applications", ["posting_id", "application_id"],
    f"posting_id text, application_id text, seeker_id text, degree text, university text, submitted_at {TS}",
    Group("submitted_at", ("seeker_id", "degree", "university")),
)
OFFERS = _t(
    "offers", ["posting_id", "offer_id"],
    f"posting_id text, offer_id text, seeker_id text, seen_at {TS}, application_id text, "
    f"salary_monthly integer, university text, made_at {TS}, answer text, answered_at {TS}, "
    f"start_date date, hired_at {TS}, seeker_university text, hire_at {TS}, hire_place text",
    Group("seen_at", ("seeker_id", "seeker_university"), wins="earliest"),
    Group("made_at", ("application_id", "salary_monthly", "university")),
    Group("answered_at", ("answer",), tiebreak=True),  # a decline wins over an acceptance of the same instant
    Group("hired_at", ("start_date",), wins="earliest"),
    Group("hire_at", ("hire_place",), tiebreak=True),  # the newest Hired; a tie: the greater work_city|degree
)
FAIRS = _t(
    "fairs", ["fair_id"],
    f"fair_id text, university text, name text, host_university text, city text, venue text, "
    f"starts_at {TS}, ends_at {TS}, expected_booths integer, scheduled_at {TS}, closed_at {TS}",
    Group("scheduled_at", ("university", "name", "host_university", "city", "venue", "starts_at", "ends_at",
                           "expected_booths")),
    Group("closed_at", (), wins="earliest"),
)
BOOTHS = _t(
    "booths", ["fair_id", "booth_id"],
    f"fair_id text, booth_id text, employer_id text, employer_name text, employer_type text, industry text, "
    f"positions_offered integer, registered_at {TS}",
    Group("registered_at", ("employer_id", "employer_name", "employer_type", "industry", "positions_offered")),
)
FAIR_CHECKINS = _t(
    "fair_checkins", ["fair_id", "seeker_id"], f"fair_id text, seeker_id text, first_at {TS}",
    Group("first_at", (), wins="earliest"),
)
FAIR_OFFERS = _t(
    "fair_offers", ["fair_id", "offer_id"], f"fair_id text, offer_id text, booth_id text, seeker_id text, made_at {TS}",
    Group("made_at", ("booth_id", "seeker_id")),
)
MENTORS = _t(
    "mentors", ["mentor_id"],
    f"mentor_id text, university text, expertise text, industry text, employer_type text, title text, "
    f"registered_at {TS}",
    Group("registered_at", ("university", "expertise", "industry", "employer_type", "title")),
)
MENTOR_ASSIGNMENTS = _t(
    "mentor_assignments", ["mentor_id", "seeker_id"], f"mentor_id text, seeker_id text, assigned_at {TS}",
    Group("assigned_at", (), wins="earliest"),
)
MENTORING_SESSIONS = _t(
    "mentoring_sessions", ["mentor_id", "session_id"],
    f"mentor_id text, session_id text, topic text, seeker_ids text[], duration_minutes integer, held_at {TS}",
    Group("held_at", ("topic", "seeker_ids", "duration_minutes")),
)
SERVICE_ITEMS = _t(
    "service_items", ["seeker_id", "kind", "item_id"],
    f"seeker_id text, kind text, item_id text, ref text, university text, occurred_at {TS}",
    Group("occurred_at", ("ref", "university")),
)

# Order of application inside a batch (parents before the counts that read children).
TABLES: tuple[Table, ...] = (
    EMPLOYERS, EMPLOYER_FLAGS, POSTINGS, APPLICATIONS, OFFERS, FAIRS, BOOTHS, FAIR_CHECKINS, FAIR_OFFERS, MENTORS,
    MENTOR_ASSIGNMENTS, MENTORING_SESSIONS, SERVICE_ITEMS,
)
BY_NAME: dict[str, Table] = {t.name: t for t in TABLES}
