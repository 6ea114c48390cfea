"""Pure mapping: one event -> row tuples of the staged tables; one batch of Kafka records -> a ``Plan``.

No I/O here. Row tuples follow the column order of ``consumers.tables``; ``None`` means "this event says
nothing about that column" (its group's version is None too, so the merge rule ignores it).
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from typing import Any
from uuid import UUID

from consumers.tables import (
    APPLICATIONS,
    BOOTHS,
    BY_NAME,
    EMPLOYER_FLAGS,
    EMPLOYERS,
    FAIR_CHECKINS,
    FAIR_OFFERS,
    FAIRS,
    MENTOR_ASSIGNMENTS,
    MENTORING_SESSIONS,
    MENTORS,
    OFFERS,
    POSTINGS,
    SERVICE_ITEMS,
    Row,
    Table,
)
from events import jobfair, mentoring, recruitment, services
from events.aggregates import parse_record
from events.base import Event
from events.codec import decode, stored
from events.corrections import EventCorrected, EventRetracted, Revision, replacement, revision_seekers
from events.errors import EventValidationError
from events.privacy import erasure_token, minted_by, named_seekers, renamed, seeker_digest
from events.topics import AGGREGATES
from events.wire import ConsumedRecord

TableRows = list[tuple[Table, Row]]


class TopicKind(StrEnum):
    EVENTS = "events"
    AGG = "agg"


def _row(table: Table, **values: Any) -> tuple[Table, Row]:
    if not values.keys() <= table.column_set:
        raise KeyError(f"{table.name} has no column(s) {sorted(set(values) - table.column_set)}")
    return table, tuple(map(values.get, table.column_names))


# --- recruitment -----------------------------------------------------------------------------------------

def _employer(d: recruitment.JobPostedData | jobfair.BoothRegisteredData, at: datetime) -> tuple[Table, Row]:
    """The employers row that both a job posting and a fair booth name."""
    return _row(EMPLOYERS, employer_id=d.employer_id, name=d.employer_name, employer_type=d.employer_type.value,
                industry=d.industry.value, seen_at=at)


def _job_posted(e: recruitment.JobPosted) -> TableRows:
    d, at = e.data, e.occurred_at
    return [
        _employer(d, at),
        _row(POSTINGS, posting_id=d.posting_id, university=e.source, employer_id=d.employer_id,
             employer_name=d.employer_name, employer_type=d.employer_type.value, industry=d.industry.value,
             city=d.city.value, district=d.district, kind=d.kind.value, degree_min=d.degree_min.value,
             description=d.description, posted_at=at, title=d.title, title_at=at, positions=d.positions,
             positions_at=at, salary_min=d.salary_min, salary_min_at=at, salary_max=d.salary_max,
             salary_max_at=at, deadline=d.deadline, deadline_at=at),
    ]


def _job_posting_updated(e: recruitment.JobPostingUpdated) -> TableRows:
    d, at = e.data, e.occurred_at
    changed: dict[str, Any] = {}
    for f in ("title", "positions", "salary_min", "salary_max", "deadline"):
        value = getattr(d, f)
        if value is not None:
            changed[f], changed[f"{f}_at"] = value, at
    return [_row(POSTINGS, posting_id=d.posting_id, **changed)]


def _job_posting_closed(e: recruitment.JobPostingClosed) -> TableRows:
    return [_row(POSTINGS, posting_id=e.data.posting_id, closed_at=e.occurred_at, close_reason=e.data.reason.value)]


def _application(e: recruitment.ApplicationSubmitted) -> TableRows:
    d = e.data
    return [_row(APPLICATIONS, application_id=d.application_id, posting_id=d.posting_id, seeker_id=d.seeker_id,
                 degree=d.degree.value, university=e.source, submitted_at=e.occurred_at)]


def _seeker_university(seeker: str) -> str:
    minted = minted_by(seeker)
    return minted[0] if minted else "unknown"


def _offer_made(e: recruitment.OfferMade) -> TableRows:
    d, at = e.data, e.occurred_at
    return [_row(OFFERS, offer_id=d.offer_id, posting_id=d.posting_id, seeker_id=d.seeker_id, seen_at=at,
                 seeker_university=_seeker_university(d.seeker_id), application_id=d.application_id,
                 salary_monthly=d.salary_monthly, university=e.source, made_at=at)]


def _offer_answer(answer: str) -> Callable[[recruitment.OfferAccepted | recruitment.OfferDeclined], TableRows]:
    def rows(e: recruitment.OfferAccepted | recruitment.OfferDeclined) -> TableRows:
        d, at = e.data, e.occurred_at
        return [_row(OFFERS, offer_id=d.offer_id, posting_id=d.posting_id, seeker_id=d.seeker_id, seen_at=at,
                     seeker_university=_seeker_university(d.seeker_id), answer=answer, answered_at=at)]
    return rows


def _hired(e: recruitment.Hired) -> TableRows:
    d, at = e.data, e.occurred_at
    return [_row(OFFERS, offer_id=d.offer_id, posting_id=d.posting_id, seeker_id=d.seeker_id, seen_at=at,
                 seeker_university=_seeker_university(d.seeker_id), start_date=d.start_date, hired_at=at,
                 hire_at=at, hire_place=f"{d.work_city or ''}|{d.degree or ''}")]


def _employer_flagged(e: recruitment.EmployerFlagged) -> TableRows:
    d = e.data
    return [_row(EMPLOYER_FLAGS, employer_id=d.employer_id, university=e.source, severity=d.severity.value,
                 reason=d.reason, postings_affected=d.postings_affected, flagged_at=e.occurred_at)]


# --- job fairs -------------------------------------------------------------------------------------------

def _fair_scheduled(e: jobfair.JobFairScheduled) -> TableRows:
    d = e.data
    return [_row(FAIRS, fair_id=d.fair_id, university=e.source, name=d.name, host_university=d.host_university,
                 city=d.city.value, venue=d.venue, starts_at=d.starts_at, ends_at=d.ends_at,
                 expected_booths=d.expected_booths, scheduled_at=e.occurred_at)]


def _booth(e: jobfair.BoothRegistered) -> TableRows:
    d, at = e.data, e.occurred_at
    return [
        _employer(d, at),
        _row(BOOTHS, fair_id=d.fair_id, booth_id=d.booth_id, employer_id=d.employer_id,
             employer_name=d.employer_name, employer_type=d.employer_type.value, industry=d.industry.value,
             positions_offered=d.positions_offered, registered_at=at),
    ]


def _checked_in(e: jobfair.StudentCheckedIn) -> TableRows:
    return [_row(FAIR_CHECKINS, fair_id=e.data.fair_id, seeker_id=e.data.seeker_id, first_at=e.occurred_at)]


def _onsite_offer(e: jobfair.OnSiteOfferMade) -> TableRows:
    d = e.data
    return [_row(FAIR_OFFERS, offer_id=d.offer_id, fair_id=d.fair_id, booth_id=d.booth_id, seeker_id=d.seeker_id,
                 made_at=e.occurred_at)]


def _fair_closed(e: jobfair.JobFairClosed) -> TableRows:
    return [_row(FAIRS, fair_id=e.data.fair_id, closed_at=e.occurred_at)]


# --- mentoring -------------------------------------------------------------------------------------------

def _mentor(e: mentoring.MentorRegistered) -> TableRows:
    d = e.data
    return [_row(MENTORS, mentor_id=d.mentor_id, university=d.university, expertise=d.expertise.value,
                 industry=d.industry.value, employer_type=d.employer_type.value, title=d.title,
                 registered_at=e.occurred_at)]


def _assigned(e: mentoring.MentorAssigned) -> TableRows:
    return [_row(MENTOR_ASSIGNMENTS, mentor_id=e.data.mentor_id, seeker_id=e.data.seeker_id,
                 assigned_at=e.occurred_at)]


def _session(e: mentoring.MentoringSessionHeld) -> TableRows:
    d = e.data
    return [_row(MENTORING_SESSIONS, session_id=d.session_id, mentor_id=d.mentor_id, topic=d.topic.value,
                 seeker_ids=sorted(set(d.seeker_ids)), duration_minutes=d.duration_minutes,
                 held_at=e.occurred_at)]


# --- employment services ---------------------------------------------------------------------------------

def _service(kind: str, item: str, ref: str | None) -> Callable[[Any], TableRows]:
    def rows(e: Any) -> TableRows:
        d = e.data
        return [_row(SERVICE_ITEMS, seeker_id=d.seeker_id, kind=kind, item_id=getattr(d, item),
                     ref=getattr(d, ref) if ref else None, university=e.source, occurred_at=e.occurred_at)]
    return rows


def _training_ref(e: services.TrainingOrInternshipOffered) -> TableRows:
    d = e.data
    return [_row(SERVICE_ITEMS, seeker_id=d.seeker_id, kind="training", item_id=d.program_id, ref=d.kind.value,
                 university=e.source, occurred_at=e.occurred_at)]


MAPPERS: dict[type[Event], Callable[[Any], TableRows]] = {
    recruitment.JobPosted: _job_posted,
    recruitment.JobPostingUpdated: _job_posting_updated,
    recruitment.JobPostingClosed: _job_posting_closed,
    recruitment.ApplicationSubmitted: _application,
    recruitment.OfferMade: _offer_made,
    recruitment.OfferAccepted: _offer_answer("accepted"),
    recruitment.OfferDeclined: _offer_answer("declined"),
    recruitment.Hired: _hired,
    recruitment.EmployerFlagged: _employer_flagged,
    jobfair.JobFairScheduled: _fair_scheduled,
    jobfair.BoothRegistered: _booth,
    jobfair.StudentCheckedIn: _checked_in,
    jobfair.OnSiteOfferMade: _onsite_offer,
    jobfair.JobFairClosed: _fair_closed,
    mentoring.MentorRegistered: _mentor,
    mentoring.MentorAssigned: _assigned,
    mentoring.MentoringSessionHeld: _session,
    services.PolicyBriefingDelivered: _service("briefing", "briefing_id", None),
    services.CareerCounsellingHeld: _service("counselling", "counselling_id", "counsellor_id"),
    services.JobRecommended: _service("recommendation", "recommendation_id", "posting_id"),
    services.TrainingOrInternshipOffered: _training_ref,
}

@dataclass(frozen=True)
class RowSource:
    """Which of an entity's events write the rows an event of a type writes in the entity's tables: the events of
    ``types`` (the types writing those tables) naming the same value in their data's ``field`` (the rest of the
    rows' key, beside the entity), or every event of ``types`` when ``field`` is None (the entity's own row:
    its scheduling, posting, registration; few events per entity)."""

    types: tuple[str, ...]
    field: str | None


def _types(*classes: type[Event]) -> tuple[str, ...]:
    return tuple(cls.model_fields["type"].default for cls in classes)


_POSTING = RowSource(_types(recruitment.JobPosted, recruitment.JobPostingUpdated, recruitment.JobPostingClosed), None)
_OFFER = RowSource(_types(recruitment.OfferMade, recruitment.OfferAccepted, recruitment.OfferDeclined,
                          recruitment.Hired), "offer_id")
_FAIR = RowSource(_types(jobfair.JobFairScheduled, jobfair.JobFairClosed), None)

# A revision of an event of these types rebuilds only the rows its versions (the original, the corrected event) write
# in their entity's tables, from the entity's standing events that write the same rows (consumers.store), not the
# entity's whole history: a check-in's row from the fair's check-ins of that student, a fair's own row from its
# scheduling and closing (not its check-ins; the counts are recounted from the child tables). An employer's flags
# (the employer is the entity, every event of it a flag) rebuild the employer whole. Checked against every event of
# a simulated day (tests/unit/test_projector_mapping.py).
ROW_SOURCES: dict[type[Event], RowSource] = {
    recruitment.JobPosted: _POSTING,
    recruitment.JobPostingUpdated: _POSTING,
    recruitment.JobPostingClosed: _POSTING,
    recruitment.ApplicationSubmitted: RowSource(_types(recruitment.ApplicationSubmitted), "application_id"),
    recruitment.OfferMade: _OFFER,
    recruitment.OfferAccepted: _OFFER,
    recruitment.OfferDeclined: _OFFER,
    recruitment.Hired: _OFFER,
    jobfair.JobFairScheduled: _FAIR,
    jobfair.JobFairClosed: _FAIR,
    jobfair.BoothRegistered: RowSource(_types(jobfair.BoothRegistered), "booth_id"),
    jobfair.StudentCheckedIn: RowSource(_types(jobfair.StudentCheckedIn), "seeker_id"),
    jobfair.OnSiteOfferMade: RowSource(_types(jobfair.OnSiteOfferMade), "offer_id"),
    mentoring.MentorRegistered: RowSource(_types(mentoring.MentorRegistered), None),
    mentoring.MentorAssigned: RowSource(_types(mentoring.MentorAssigned), "seeker_id"),
    mentoring.MentoringSessionHeld: RowSource(_types(mentoring.MentoringSessionHeld), "session_id"),
    services.PolicyBriefingDelivered: RowSource(_types(services.PolicyBriefingDelivered), "briefing_id"),
    services.CareerCounsellingHeld: RowSource(_types(services.CareerCounsellingHeld), "counselling_id"),
    services.JobRecommended: RowSource(_types(services.JobRecommended), "recommendation_id"),
    services.TrainingOrInternshipOffered: RowSource(_types(services.TrainingOrInternshipOffered), "program_id"),
}

# The read-model rows that name job seekers, per family: (table, the column of the entity the event is keyed
# by (so its partition), the seeker column). An erasure renames the seeker in exactly these (consumers.store).
SEEKER_COLUMNS: dict[str, tuple[tuple[Table, str, str], ...]] = {
    "recruitment": ((APPLICATIONS, "posting_id", "seeker_id"), (OFFERS, "posting_id", "seeker_id")),
    "jobfair": ((FAIR_CHECKINS, "fair_id", "seeker_id"), (FAIR_OFFERS, "fair_id", "seeker_id")),
    "mentoring": ((MENTOR_ASSIGNMENTS, "mentor_id", "seeker_id"), (MENTORING_SESSIONS, "mentor_id", "seeker_ids")),
    "services": ((SERVICE_ITEMS, "seeker_id", "seeker_id"),),
}


@dataclass(frozen=True)
class Erasure:
    """One copy of a seeker erasure request, as read from (family topic, partition) (streams.erasure has the
    worker's side; the read model follows the same copies in the same order)."""

    seeker: str
    token: str
    family: str
    partition: int

    @property
    def marker(self) -> tuple[str, str, int]:
        return seeker_digest(self.seeker), self.family, self.partition


# The rows an entity's events own, per family: (table, the column holding the event's subject). A revision
# (events.corrections) rebuilds exactly these rows of its entity from the entity's events left standing, and
# the shared ``employers`` rows its events name from every event naming them.
ENTITY_TABLES: dict[str, tuple[tuple[Table, str], ...]] = {
    "recruitment": ((POSTINGS, "posting_id"), (APPLICATIONS, "posting_id"), (OFFERS, "posting_id"),
                    (EMPLOYER_FLAGS, "employer_id")),
    "jobfair": ((FAIRS, "fair_id"), (BOOTHS, "fair_id"), (FAIR_CHECKINS, "fair_id"), (FAIR_OFFERS, "fair_id")),
    "mentoring": ((MENTORS, "mentor_id"), (MENTOR_ASSIGNMENTS, "mentor_id"), (MENTORING_SESSIONS, "mentor_id")),
    "services": ((SERVICE_ITEMS, "seeker_id"),),
}
EMPLOYER_EVENT_TYPES = ("recruitment.job_posted", "jobfair.booth_registered")  # they write an employers row


def employer_of(event: Event) -> str | None:
    """The shared employer whose ``employers`` row ``event`` writes (None: it writes none)."""
    return str(event.data.employer_id) if event.type in EMPLOYER_EVENT_TYPES else None  # type: ignore[attr-defined]


@dataclass(frozen=True)
class LogEntry:
    """A projected event as the read model's ``event_log`` keeps it (migration 008)."""

    source: str
    event_id: str
    family: str
    partition: int
    subject: str
    type: str
    employer_id: str | None
    payload: dict[str, Any]

    @classmethod
    def of(cls, event: Event, partition: int) -> LogEntry:
        return cls(event.source, str(event.event_id), event.family, partition, str(event.subject), event.type,
                   employer_of(event), stored(event))

    def row(self) -> Row:
        return (self.source, UUID(self.event_id), self.family, self.partition, self.subject, self.type,
                self.employer_id, json.dumps(self.payload))


@dataclass(frozen=True)
class PlannedRevision:
    """A retraction or correction read from (family topic, partition), applied after the ``after`` first log
    entries of its batch (consumers.store decides with events.corrections.revision_problem, like the worker)."""

    revision: Revision
    family: str
    partition: int
    after: int
    replacement: dict[str, Any] | None  # the corrected event's stored form; None: a retraction

    @property
    def subject(self) -> str:
        return str(self.revision.subject)


def entity_rows(events: Iterable[Event]) -> dict[str, list[Row]]:
    """The merged rows of an entity's own tables (ENTITY_TABLES) from its events left standing."""
    staged: dict[str, list[Row]] = defaultdict(list)
    for event in events:
        for table, row in event_rows(event):
            if table is not EMPLOYERS:
                staged[table.name].append(row)
    return {name: BY_NAME[name].merge_rows(rows) for name, rows in staged.items()}


def employer_rows(events: Iterable[Event]) -> list[Row]:
    """The merged ``employers`` rows the events name (postings and booths)."""
    return EMPLOYERS.merge_rows(row for event in events for table, row in event_rows(event) if table is EMPLOYERS)


def family_of_topic(topic: str) -> str:
    """``alliance.events.jobfair`` (also with a deployment suffix) -> ``jobfair``."""
    return topic.split(".events.", 1)[-1].split(".", 1)[0]


def event_rows(event: Event) -> TableRows:
    """The row tuples one event contributes (before merging with the rest of its batch)."""
    mapper = MAPPERS.get(type(event))
    if mapper is None:
        raise KeyError(f"no read-model mapping for {type(event).__name__}")
    return mapper(event)


# --- aggregated topics -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class AggUpdate:
    aggregate: str
    key: str
    dims: str | None  # JSON text; None with value None = tombstone
    value: str | None
    updated_at: datetime | None

    @property
    def is_tombstone(self) -> bool:
        return self.value is None


class RecordError(ValueError):
    """A record that cannot be projected; the message is stored as the reject reason."""


def aggregate_of_topic(topic: str) -> str:
    """``alliance.agg.fairs`` (or ``x.agg.fairs``, or with a topic suffix ``alliance.agg.fairs.staging``)
    -> ``fairs``. Aggregate names have no dots, so the first segment after ``.agg.`` is the name."""
    name = topic.split(".agg.", 1)[-1].split(".", 1)[0]
    if name not in AGGREGATES:
        raise ValueError(f"topic {topic!r} does not end in an aggregate name ({', '.join(AGGREGATES)})")
    return name


def decode_agg(topic: str, key: bytes | None, value: bytes | None) -> AggUpdate:
    """One record of an aggregated topic, validated against its contract (``events.aggregates``)."""
    aggregate = aggregate_of_topic(topic)
    if key is None:
        raise RecordError("aggregate record without a key")
    try:
        skey = key.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RecordError(f"aggregate key is not UTF-8: {exc}") from None
    if value is None:
        return AggUpdate(aggregate, skey, None, None, None)
    try:
        record = parse_record(aggregate, value)
    except EventValidationError as exc:
        raise RecordError(f"not a valid {aggregate} record: {exc}") from None
    dims = record.key.model_dump(mode="json")
    return AggUpdate(aggregate, skey, json.dumps(dims, sort_keys=True),
                     json.dumps(record.value.model_dump(mode="json"), sort_keys=True), record.updated_at)


def fold_aggs(updates: Iterable[AggUpdate]) -> list[AggUpdate]:
    """Last operation per (aggregate, key) in offset order; between two values the newest updated_at wins."""
    out: dict[tuple[str, str], AggUpdate] = {}
    for u in updates:
        cur = out.get((u.aggregate, u.key))
        if (cur is None or u.is_tombstone or cur.is_tombstone
                or (u.updated_at is not None and cur.updated_at is not None and u.updated_at >= cur.updated_at)):
            out[(u.aggregate, u.key)] = u
    return list(out.values())


# --- batches ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Reject:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    reason: str


@dataclass
class Plan:
    """Everything one batch writes, in one transaction."""

    rows: dict[str, list[Row]] = field(default_factory=dict)  # table name -> merged rows
    aggs: list[AggUpdate] = field(default_factory=list)
    rejects: list[Reject] = field(default_factory=list)
    offsets: dict[tuple[str, int], int] = field(default_factory=dict)  # (topic, partition) -> next offset
    families: Counter[str] = field(default_factory=Counter)
    records: int = 0
    erasures: list[Erasure] = field(default_factory=list)  # applied to stored rows before this batch's rows
    erased_skipped: int = 0  # events naming a seeker erased before them on their partition (not projected)
    log: list[LogEntry] = field(default_factory=list)  # every projected event, for later revisions
    revisions: list[PlannedRevision] = field(default_factory=list)

    def touched(self, table: str, column: str) -> list[str]:
        """Distinct values of ``column`` in this batch's rows of ``table`` (for recounts)."""
        rows = self.rows.get(table)
        if not rows:
            return []
        i = BY_NAME[table].index(column)
        return sorted({r[i] for r in rows})


def _reason(exc: Exception) -> str:
    return f"{type(exc).__name__}: {exc}"[:1000]


def plan_batch(records: Iterable[ConsumedRecord], kinds: Mapping[str, TopicKind],
               erased: set[tuple[str, str, int]] | None = None) -> Plan:
    """``erased``: the (seeker digest, family, partition) markers of erasures applied before this batch; the
    batch's own erasures are added to it."""
    plan = Plan()
    erased = set() if erased is None else erased
    staged: dict[str, list[Row]] = defaultdict(list)
    staged_at: dict[str, list[tuple[str, int]]] = defaultdict(list)  # (family, partition) of each staged row
    aggs: list[AggUpdate] = []
    for rec in records:
        plan.records += 1
        tp = (rec.topic, rec.partition)
        plan.offsets[tp] = max(plan.offsets.get(tp, 0), rec.offset + 1)
        kind = kinds.get(rec.topic)
        try:
            if kind is TopicKind.AGG:
                aggs.append(decode_agg(rec.topic, rec.key, rec.value))
                continue
            if kind is not TopicKind.EVENTS:
                raise RecordError(f"topic {rec.topic!r} is not configured for this projector")
            if rec.value is None:
                raise RecordError("event record without a value")
            event = decode(rec.value)
            if isinstance(event, services.SeekerErasureRequested):
                _erase(plan, Erasure(event.data.seeker_id, erasure_token(event.source, str(event.event_id)),
                                     family_of_topic(rec.topic), rec.partition), erased, staged, staged_at)
                continue
            family = event.target_family
            seekers = revision_seekers(event, family) if isinstance(event, EventRetracted | EventCorrected) \
                else named_seekers(event.data)
            if any((seeker_digest(s), family, rec.partition) in erased for s in seekers):
                plan.erased_skipped += 1
                continue
            if isinstance(event, EventRetracted | EventCorrected):
                corrected = replacement(event)
                plan.revisions.append(PlannedRevision(event, family, rec.partition, len(plan.log),
                                                      stored(corrected) if corrected is not None else None))
                plan.families[family] += 1
                continue
            for table, row in event_rows(event):
                staged[table.name].append(row)
                staged_at[table.name].append((event.family, rec.partition))
            plan.log.append(LogEntry.of(event, rec.partition))
            plan.families[event.family] += 1
        except (RecordError, EventValidationError) as exc:
            plan.rejects.append(Reject(rec.topic, rec.partition, rec.offset, rec.key, rec.value, _reason(exc)))
    plan.rows = {name: BY_NAME[name].merge_rows(rows) for name, rows in staged.items()}
    plan.aggs = fold_aggs(aggs)
    return plan


def _erase(plan: Plan, erasure: Erasure, erased: set[tuple[str, str, int]], staged: dict[str, list[Row]],
           staged_at: dict[str, list[tuple[str, int]]]) -> None:
    """An erasure copy: rename the seeker in the rows staged so far from its (family, partition); the stored
    rows are renamed by the store, before this batch's rows are written. A copy seen before changes nothing."""
    if erasure.marker in erased:
        return
    erased.add(erasure.marker)
    plan.erasures.append(erasure)
    where = (erasure.family, erasure.partition)
    for name, rows in staged.items():
        at = staged_at[name]
        for i, row in enumerate(rows):
            if at[i] == where:
                rows[i] = renamed(row, erasure.seeker, erasure.token)
    seeker, token = erasure.seeker, erasure.token
    plan.log = [replace(e, subject=renamed(e.subject, seeker, token), payload=renamed(e.payload, seeker, token))
                if (e.family, e.partition) == where else e for e in plan.log]
    plan.revisions = [replace(r, revision=r.revision.model_copy(update={"subject": renamed(r.subject, seeker, token)}),
                              replacement=renamed(r.replacement, seeker, token))
                      if (r.family, r.partition) == where else r for r in plan.revisions]
