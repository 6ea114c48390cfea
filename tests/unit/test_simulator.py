"""The simulated alliance day: determinism, volume, content, causal order and the kinds of noise."""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from datetime import UTC, date, datetime, time
from typing import Any

import pytest

from events.base import Event
from events.codec import EVENT_TYPES, decode
from events.errors import EventValidationError
from events.jobfair import BoothRegistered, JobFairClosed, JobFairScheduled, OnSiteOfferMade, StudentCheckedIn
from events.mentoring import MentorAssigned, MentoringSessionHeld, MentorRegistered
from events.ownership import ownership_problem
from events.privacy import minted_by
from events.recruitment import (
    ApplicationSubmitted,
    EmployerFlagged,
    Hired,
    JobPosted,
    JobPostingClosed,
    JobPostingUpdated,
    OfferAccepted,
    OfferDeclined,
    OfferMade,
    PostingKind,
)
from events.reference import UNIVERSITIES, Industry
from events.services import (
    CareerCounsellingHeld,
    JobRecommended,
    PolicyBriefingDelivered,
    TrainingOrInternshipOffered,
)
from events.simulator import (
    DEFAULT_DAY,
    LOCAL_TZ,
    MUTATORS,
    Record,
    alliance_day,
    day_events,
    entity_of,
    invalid_record,
)
from events.simulator.noise import _fails_decode
from events.simulator.publish import build_parser, main, summary, throttle_delay
from events.simulator.world import NOT_SIMULATED
from events.topics import ingest_topic


def university_of(topic: str) -> str:
    return topic.removeprefix("alliance.ingest.")


def fingerprint(records: list[Record]) -> list[tuple[str, bytes, bytes, str]]:
    return [(r.topic, r.key, r.value, r.kind) for r in records]


def valid_events(records: list[Record]) -> list[Event]:
    return [r.event for r in records if r.kind == "valid" and r.event is not None]


def of_type(records: list[Record], cls: type[Event]) -> list[Any]:
    return [e for e in valid_events(records) if isinstance(e, cls)]


@pytest.fixture(scope="module")
def small() -> list[Record]:
    return alliance_day(scale=0.05)


@pytest.fixture(scope="module")
def full() -> list[Record]:
    return alliance_day(scale=1.0)


# -- determinism and volume -------------------------------------------------------------------------


def test_same_seed_gives_the_same_list_and_another_seed_another() -> None:
    first = alliance_day(seed=11, scale=0.03)
    assert fingerprint(first) == fingerprint(alliance_day(seed=11, scale=0.03))
    assert [r.event for r in first] == [r.event for r in alliance_day(seed=11, scale=0.03)]
    assert fingerprint(first) != fingerprint(alliance_day(seed=12, scale=0.03))


def test_scale_one_is_about_twenty_thousand_records_and_scales_linearly(full: list[Record]) -> None:
    assert 18_000 <= len(full) <= 23_000
    small = len(alliance_day(scale=0.05))
    half = len(alliance_day(scale=0.5))
    assert 800 <= small <= 1_400
    assert 0.4 <= half / len(full) <= 0.6


def test_rejects_nonsense_parameters() -> None:
    with pytest.raises(ValueError, match="scale"):
        alliance_day(scale=0)
    with pytest.raises(ValueError, match="duplicate_rate"):
        alliance_day(scale=0.02, duplicate_rate=1.5)


# -- content ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("scale", [0.02, 0.05])
def test_every_event_type_occurs_even_in_small_days(scale: float) -> None:
    types = {e.type for e in valid_events(alliance_day(scale=scale))}
    assert types == set(EVENT_TYPES) - NOT_SIMULATED


def test_every_university_publishes_recruitment_mentoring_and_services(small: list[Record]) -> None:
    families: dict[str, set[str]] = defaultdict(set)
    for e in valid_events(small):
        families[e.source].add(e.family)
    for code in UNIVERSITIES:
        assert {"recruitment", "mentoring", "services"} <= families[code], code
    assert {"cqu", "uestc"} == {e.source for e in of_type(small, JobFairScheduled)}


def test_timestamps_lie_between_eight_and_twenty_local_time_and_are_utc(full: list[Record]) -> None:
    for e in valid_events(full):
        assert e.occurred_at.utcoffset() is not None and e.occurred_at.utcoffset().total_seconds() == 0
        local = e.occurred_at.astimezone(LOCAL_TZ)
        assert local.date() == DEFAULT_DAY
        assert time(8, 0) <= local.time() <= time(20, 0), e


def test_postings_have_realistic_industries_salaries_deadlines_and_internship_share(full: list[Record]) -> None:
    postings = of_type(full, JobPosted)
    by_uni: dict[str, Counter[Industry]] = defaultdict(Counter)
    for p in postings:
        by_uni[p.source][p.data.industry] += 1
        assert 4_000 <= p.data.salary_min <= p.data.salary_max <= 30_000
        assert p.data.deadline >= p.occurred_at.date()
    share = {u: {i: n / sum(c.values()) for i, n in c.items()} for u, c in by_uni.items()}
    assert share["uestc"][Industry.IT_SOFTWARE] + share["uestc"][Industry.ELECTRONICS] > 0.5
    assert share["cqu"][Industry.AUTOMOTIVE] + share["cqu"][Industry.MANUFACTURING] > 0.3
    assert share["swufe"][Industry.FINANCE] > 0.3
    assert share["swupl"][Industry.LEGAL] > 0.3
    assert share["cqmu"][Industry.HEALTHCARE] > 0.5
    internships = sum(p.data.kind is PostingKind.INTERNSHIP for p in postings) / len(postings)
    assert 0.10 <= internships <= 0.20
    assert {p.data.employer_type for p in postings} == {e for e in type(postings[0].data.employer_type)}
    reasons = Counter(c.data.reason.value for c in of_type(full, JobPostingClosed))
    assert set(reasons) == {"filled", "expired", "withdrawn"}


def test_students_are_pseudonymous_and_the_pseudonyms_depend_on_the_key() -> None:
    a = alliance_day(scale=0.02)
    b = alliance_day(scale=0.02, pseudonym_key="another-alliance-secret-key")
    seekers_a = {e.data.seeker_id for e in of_type(a, ApplicationSubmitted)}
    seekers_b = {e.data.seeker_id for e in of_type(b, ApplicationSubmitted)}
    assert all(s.startswith("ps.") and minted_by(s) is not None for s in seekers_a)
    assert seekers_a and seekers_b and not seekers_a & seekers_b


def test_events_of_one_entity_are_published_by_one_university_under_one_key(full: list[Record]) -> None:
    sources: dict[tuple[str, str], set[str]] = defaultdict(set)
    for r in full:
        if r.kind == "valid":
            assert r.event is not None
            assert r.key == str(r.event.subject).encode()
            sources[entity_of(r.event)].add(r.topic)
    assert all(len(topics) == 1 for topics in sources.values())


def test_the_large_fair_has_thousands_of_check_ins_with_repeat_visits(full: list[Record]) -> None:
    fairs = {f.data.fair_id: f for f in of_type(full, JobFairScheduled)}
    checkins = of_type(full, StudentCheckedIn)
    by_fair = Counter(c.data.fair_id for c in checkins)
    big = max(by_fair, key=lambda f: by_fair[f])
    assert fairs[big].data.host_university == "cqu" and by_fair[big] >= 3_000
    small_fair = min(by_fair, key=lambda f: by_fair[f])
    assert 0 < by_fair[small_fair] < by_fair[big]
    distinct = {(c.data.fair_id, c.data.seeker_id) for c in checkins}
    assert len(distinct) < len(checkins) * 0.6  # students check in several times
    same_booth_twice = Counter((c.data.fair_id, c.data.seeker_id, c.data.booth_id) for c in checkins
                               if c.data.booth_id is not None)
    assert max(same_booth_twice.values()) >= 2
    assert of_type(full, OnSiteOfferMade)
    visitors_from = Counter(c.data.seeker_id for c in checkins)
    assert len(visitors_from) > 1_000


def test_service_guarantee_is_reached_by_some_seekers_and_partly_by_others(full: list[Record]) -> None:
    progress: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    for e in valid_events(full):
        if isinstance(e, PolicyBriefingDelivered):
            progress[e.data.seeker_id]["briefing"].add(e.data.briefing_id)
        elif isinstance(e, CareerCounsellingHeld):
            progress[e.data.seeker_id]["counselling"].add(e.data.counselling_id)
        elif isinstance(e, JobRecommended):
            progress[e.data.seeker_id]["recommended"].add(e.data.posting_id)
        elif isinstance(e, TrainingOrInternshipOffered):
            progress[e.data.seeker_id]["training"].add(e.data.program_id)

    def full_guarantee(p: dict[str, set[str]]) -> bool:
        return bool(p["briefing"] and p["counselling"] and len(p["recommended"]) >= 3 and p["training"])

    done = sum(full_guarantee(p) for p in progress.values())
    assert 0.2 * len(progress) <= done <= 0.5 * len(progress)
    posting_ids = {p.data.posting_id for p in of_type(full, JobPosted)}
    assert all(r.data.posting_id in posting_ids for r in of_type(full, JobRecommended))


def test_mentors_hold_sessions_with_several_assigned_seekers(full: list[Record]) -> None:
    mentors = of_type(full, MentorRegistered)
    assert 150 <= len(mentors) <= 250
    assert {m.data.university for m in mentors} == set(UNIVERSITIES)
    sessions = of_type(full, MentoringSessionHeld)
    assert sum(len(s.data.seeker_ids) >= 2 for s in sessions) > len(sessions) / 2


# -- causal order per entity -------------------------------------------------------------------------


def _by_entity(records: list[Record]) -> dict[tuple[str, str], list[Event]]:
    """Valid events per entity, in publish order."""
    out: dict[tuple[str, str], list[Event]] = defaultdict(list)
    for e in valid_events(records):
        out[entity_of(e)].append(e)
    return out


def _histories(records: list[Record]) -> dict[tuple[str, str], list[Event]]:
    """Valid events per entity, in occurred_at order (what really happened)."""
    return {k: sorted(v, key=lambda e: e.occurred_at) for k, v in _by_entity(records).items()}


def test_posting_histories_are_causally_ordered(full: list[Record]) -> None:
    for (family, _), events in _histories(full).items():
        if family != "recruitment" or isinstance(events[0], EmployerFlagged):
            continue
        posted = [e for e in events if isinstance(e, JobPosted)]
        assert len(posted) == 1
        t0 = posted[0].occurred_at
        assert all(e.occurred_at > t0 for e in events if e is not posted[0])
        closed = [e for e in events if isinstance(e, JobPostingClosed)]
        assert len(closed) <= 1
        if closed:
            assert all(e.occurred_at < closed[0].occurred_at for e in events if e is not closed[0])
        applied = {e.data.application_id: e.occurred_at for e in events if isinstance(e, ApplicationSubmitted)}
        offered = {e.data.offer_id: e for e in events if isinstance(e, OfferMade)}
        answered = {e.data.offer_id: e.occurred_at for e in events if isinstance(e, OfferAccepted | OfferDeclined)}
        accepted = {e.data.offer_id for e in events if isinstance(e, OfferAccepted)}
        for offer_id, offer in offered.items():
            assert applied[offer.data.application_id] < offer.occurred_at
            if offer_id in answered:
                assert offer.occurred_at < answered[offer_id]
        for hired in (e for e in events if isinstance(e, Hired)):
            assert hired.data.offer_id in accepted
            assert answered[hired.data.offer_id] < hired.occurred_at


def test_fair_and_mentor_histories_are_causally_ordered(full: list[Record]) -> None:
    for (family, _), events in _histories(full).items():
        if family == "jobfair":
            scheduled = next(e for e in events if isinstance(e, JobFairScheduled))
            closed = next(e for e in events if isinstance(e, JobFairClosed))
            booths = {e.data.booth_id: e.occurred_at for e in events if isinstance(e, BoothRegistered)}
            visits: dict[tuple[str, str | None], datetime] = {}
            for e in events:
                assert scheduled.occurred_at <= e.occurred_at <= closed.occurred_at
                if isinstance(e, StudentCheckedIn):
                    assert scheduled.data.starts_at <= e.occurred_at <= scheduled.data.ends_at
                    if e.data.booth_id is not None:
                        assert booths[e.data.booth_id] < e.occurred_at
                    visits.setdefault((e.data.seeker_id, e.data.booth_id), e.occurred_at)
                if isinstance(e, OnSiteOfferMade):
                    assert visits[(e.data.seeker_id, e.data.booth_id)] < e.occurred_at
        elif family == "mentoring":
            registered = next(e for e in events if isinstance(e, MentorRegistered))
            assigned = {e.data.seeker_id: e.occurred_at for e in events if isinstance(e, MentorAssigned)}
            for e in events:
                if e is not registered:
                    assert registered.occurred_at < e.occurred_at
                if isinstance(e, MentoringSessionHeld):
                    assert all(assigned[s] < e.occurred_at for s in e.data.seeker_ids)


def test_recommendations_reference_postings_open_at_the_time(full: list[Record]) -> None:
    posted = {e.data.posting_id: e.occurred_at for e in of_type(full, JobPosted)}
    closed = {e.data.posting_id: e.occurred_at for e in of_type(full, JobPostingClosed)}
    for rec in of_type(full, JobRecommended):
        assert posted[rec.data.posting_id] < rec.occurred_at
        assert rec.occurred_at < closed.get(rec.data.posting_id, datetime.max.replace(tzinfo=UTC))


def test_without_reordering_every_entity_is_published_in_occurred_at_order() -> None:
    records = alliance_day(scale=0.05, out_of_order_rate=0.0)
    for events in _by_entity(records).values():
        times = [e.occurred_at for e in events]
        assert times == sorted(times)


def test_some_valid_records_are_published_out_of_order(small: list[Record]) -> None:
    events = valid_events(small)
    position = {e.event_id: i for i, e in enumerate(events)}
    by_entity = _by_entity(small)
    late = [e for evs in by_entity.values() for i, e in enumerate(evs)
            if any(o.occurred_at > e.occurred_at for o in evs[:i])]
    assert 0.005 * len(events) <= len(late) <= 0.04 * len(events)

    def published_after(first: Event, then: Event) -> bool:
        return position[first.event_id] > position[then.event_id]

    def some(cls: type[Event], later_cls: type[Event], same: str) -> bool:
        for evs in by_entity.values():
            for a in (e for e in evs if isinstance(e, cls)):
                for b in (e for e in evs if isinstance(e, later_cls)):
                    if getattr(a.data, same) == getattr(b.data, same) and b.occurred_at > a.occurred_at \
                            and published_after(a, b):
                        return True
        return False

    assert some(JobPostingUpdated, JobPostingClosed, "posting_id")  # an update after the close
    assert some(StudentCheckedIn, JobFairClosed, "fair_id")  # a check-in after the fair closed
    assert some(OfferMade, OfferAccepted, "offer_id")  # an acceptance before the offer


# -- the kinds of records --------------------------------------------------------------------------


def test_valid_records_decode_to_exactly_their_event_on_their_own_topic(full: list[Record]) -> None:
    for r in full:
        if r.kind == "valid":
            assert r.event is not None
            assert decode(r.value) == r.event
            assert r.topic == ingest_topic(r.event.source)
    ids = [r.event.event_id for r in full if r.kind == "valid" and r.event is not None]
    assert len(ids) == len(set(ids))


def test_duplicates_are_byte_identical_resends_of_an_earlier_valid_record(full: list[Record]) -> None:
    seen: set[tuple[str, bytes, bytes]] = set()
    duplicates = 0
    for r in full:
        if r.kind == "valid":
            seen.add((r.topic, r.key, r.value))
        elif r.kind == "duplicate":
            duplicates += 1
            assert (r.topic, r.key, r.value) in seen
            assert r.event is not None and decode(r.value) == r.event
    n_valid = sum(r.kind == "valid" for r in full)
    assert duplicates == round(n_valid * 0.02)


def test_invalid_records_fail_decoding_in_many_different_ways(full: list[Record]) -> None:
    reasons: Counter[str] = Counter()
    details: list[str] = []
    invalid = [r for r in full if r.kind == "invalid"]
    for r in invalid:
        assert r.event is None
        assert r.topic in {ingest_topic(u) for u in UNIVERSITIES}
        with pytest.raises(EventValidationError) as info:
            decode(r.value)
        reasons[info.value.reason_code] += 1
        details.append(str(info.value))
    assert set(reasons) == {"invalid", "personal_data", "malformed", "unknown_type", "oversized"}
    text = "\n".join(details)
    assert "phone number" in text and "seeker_id" in text and "Extra inputs" in text
    assert len(invalid) == round(sum(r.kind == "valid" for r in full) * 0.01)


def test_every_mutation_of_every_event_type_fails_decoding() -> None:
    _, events = day_events(scale=0.05)
    templates = {e.type: e for e in events}
    assert set(templates) == set(EVENT_TYPES) - NOT_SIMULATED
    rng = random.Random(1)
    applied = 0
    for mutator in MUTATORS:
        for template in templates.values():
            import json

            result = mutator(rng, template, json.loads(template.to_json()), DEFAULT_DAY)
            if result is None:
                continue
            applied += 1
            with pytest.raises(EventValidationError):
                decode(result[1])
    assert applied > len(MUTATORS) * 10
    record = invalid_record(rng, templates["services.job_recommended"], DEFAULT_DAY)
    assert record.kind == "invalid" and record.event is None


def test_spoofed_records_are_valid_events_on_another_universitys_topic(full: list[Record]) -> None:
    valid_ids = {r.event.event_id for r in full if r.kind == "valid" and r.event is not None}
    spoofed = [r for r in full if r.kind == "spoofed"]
    assert spoofed
    for r in spoofed:
        assert r.event is not None
        assert decode(r.value) == r.event
        assert r.event.source != university_of(r.topic)
        assert university_of(r.topic) in UNIVERSITIES
        assert r.event.event_id not in valid_ids
        assert r.key == r.event.key


def test_foreign_records_are_valid_events_about_what_another_university_owns(full: list[Record]) -> None:
    foreign = [r for r in full if r.kind == "foreign"]
    assert len(foreign) == round(len(full) * 0.002) or foreign
    for r in foreign:
        assert r.event is not None and decode(r.value) == r.event
        assert university_of(r.topic) == r.event.source  # its own topic, its own name: not spoofed
        assert ownership_problem(r.event) is not None  # the ingest refuses it: not_owner
    assert {r.event.type for r in foreign if r.event is not None} >= {"recruitment.job_posting_closed",
                                                                      "recruitment.job_posting_updated"}


def test_noise_can_be_switched_off() -> None:
    records = alliance_day(scale=0.02, duplicate_rate=0, invalid_rate=0, spoofed_rate=0, foreign_rate=0,
                           out_of_order_rate=0)
    assert {r.kind for r in records} == {"valid"}
    times = [r.event.occurred_at for r in records if r.event is not None]
    assert times == sorted(times)


def test_other_days_work() -> None:
    records = alliance_day(scale=0.02, day=date(2027, 3, 15))
    assert all(r.event.occurred_at.astimezone(LOCAL_TZ).date() == date(2027, 3, 15)
               for r in records if r.event is not None)


def _occurrence_ids(events: list[Event]) -> dict[str, set[str]]:
    """The ids of what happens on a day, by kind."""
    ids: dict[str, set[str]] = defaultdict(set)
    for e in events:
        for name in ("posting_id", "application_id", "offer_id", "fair_id", "booth_id", "session_id",
                     "counselling_id", "recommendation_id"):
            value = getattr(e.data, name, None)
            if value is not None and not (name == "posting_id" and isinstance(e, JobRecommended)):
                ids[name].add(value)
    return ids


def test_consecutive_days_are_history_not_the_same_day_again() -> None:
    # days published one after the other (python -m events.simulator --day ..., the benchmark's days of history)
    # name other postings, applications, offers, fairs, sessions and services: the same ids with other data
    # would re-post a posting in another industry and count a second day's application as the first's
    days = [date(2026, 11, 30), date(2026, 12, 1)]
    evs = [[r.event for r in alliance_day(seed=1 + i, scale=0.05, day=d, duplicate_rate=0.0, invalid_rate=0.0,
                                          spoofed_rate=0.0, foreign_rate=0.0) if r.event is not None]
           for i, d in enumerate(days)]
    first, second = _occurrence_ids(evs[0]), _occurrence_ids(evs[1])
    assert set(first) == set(second) == {"posting_id", "application_id", "offer_id", "fair_id", "booth_id",
                                         "session_id", "counselling_id", "recommendation_id"}
    for name in first:
        assert first[name] and not first[name] & second[name], name
    # the mentor pool is the same people on both days, each registered with the same profile
    mentors = [{e.data.mentor_id: e.data.model_dump(exclude={"mentor_id"}) for e in day
                if isinstance(e, MentorRegistered)} for day in evs]
    assert mentors[0] and mentors[0] == mentors[1]
    # and every id still names its owner
    assert not [e for day in evs for e in day if ownership_problem(e) is not None]


# -- the command line (pure parts; publishing is covered by the integration test) --------------------


def test_throttle_delay_keeps_the_rate() -> None:
    assert throttle_delay(100, None, 0.0) == 0.0
    assert throttle_delay(100, 50.0, 1.0) == pytest.approx(1.0)
    assert throttle_delay(100, 50.0, 3.0) == 0.0


def test_summary_counts_every_record_by_topic_and_kind(small: list[Record]) -> None:
    text = summary(small)
    last = text.splitlines()[-1].split()
    assert last[0] == "total" and int(last[-1]) == len(small)
    counts = Counter(r.kind for r in small)
    kinds = ("valid", "duplicate", "invalid", "spoofed", "foreign")
    assert [int(x) for x in last[1:6]] == [counts[k] for k in kinds]
    assert all(ingest_topic(u) in text for u in UNIVERSITIES)


def test_dry_run_prints_the_summary_and_publishes_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--dry-run", "--scale", "0.02", "--seed", "3"]) == 0
    out = capsys.readouterr().out
    assert "dry run" in out and "alliance.ingest.cqu" in out and "recruitment.job_posted" in out
    assert build_parser().parse_args(["--rate", "500"]).rate == 500.0


def test_a_day_with_revisions_whose_invalid_record_copies_a_revision_is_still_made() -> None:
    """A revision's key field is its envelope's ``subject``, not a field of its data: the missing-field mutation
    deleted ``data["subject"]`` and the whole day failed (``make run``'s random seed 24, 1 day in ~23)."""
    records = alliance_day(seed=24, scale=1.0, revision_rate=0.01)
    invalid = [r for r in records if r.kind == "invalid"]
    assert invalid and all(_fails_decode(r.value) for r in invalid)
