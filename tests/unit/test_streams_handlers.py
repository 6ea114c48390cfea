"""Pure stream handlers: ingest classification, domain merge rules, the batch engine, the rollup."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

from consumers.mapping import event_rows
from consumers.tables import FAIRS, MENTORS, POSTINGS
from events import jobfair as j
from events import mentoring as m
from events import recruitment as r
from events.base import MAX_CLOCK_SKEW, Event
from events.reference import City, Degree, EmployerType, Industry
from streams import engine, rollup
from streams.contributions import diff
from streams.domains import Domain, domains
from streams.domains import recruitment as rec
from streams.domains.base import Tx
from streams.ingest import Accepted, Rejected, classify, seen_key

T0 = datetime(2026, 11, 26, 2, 0, tzinfo=UTC)
SEEKER = "ps_" + "a" * 32


def posted(pid: str = "scu-job-1", positions: int = 3, at: datetime = T0, source: str = "scu") -> r.JobPosted:
    return r.JobPosted(source=source, occurred_at=at, data=r.JobPostedData(
        posting_id=pid, employer_id="emp-1", employer_name="Chengdu Tianfu Software",
        employer_type=EmployerType.PRIVATE,
        industry=Industry.IT_SOFTWARE, city=City.CHENGDU, title="Backend engineer", positions=positions,
        degree_min=Degree.BACHELOR, salary_min=8000, salary_max=14000, deadline=date(2026, 12, 31)))


def updated(pid: str, positions: int, at: datetime) -> r.JobPostingUpdated:
    return r.JobPostingUpdated(source="scu", occurred_at=at,
                               data=r.JobPostingUpdatedData(posting_id=pid, positions=positions))


def closed(pid: str, at: datetime) -> r.JobPostingClosed:
    return r.JobPostingClosed(source="scu", occurred_at=at,
                              data=r.JobPostingClosedData(posting_id=pid, reason=r.CloseReason.FILLED))


def apply_all(domain: Domain, events: list[Event], store: dict[str, Any] | None = None) -> dict[str, Any]:
    """Apply ``events`` one by one, as the engine does: each in a Tx over ``store``; returns the store."""
    store = {} if store is None else store
    for e in events:
        key = domain.state_key(e)
        tx = Tx(store.get)
        tx.put(key, domain.apply(tx, tx.get(key), e))
        store.update(tx.writes)
    return store


def fold(events: list[Event]) -> dict[str, Any]:
    store = apply_all(domains()["recruitment"], events)
    state: dict[str, Any] = store[rec.state_key(events[0])]
    return state


# ---------------------------------------------------------------- ingest


def _classify(raw: bytes | None, university: str, seen: dict[str, object], partition: int = 0, offset: int = 0,
              received_at: datetime = T0 + timedelta(hours=1)) -> Accepted | Rejected:
    """classify with a dict as the ingest-seen table: an accepted event is remembered, as the agent does."""
    result = classify(raw, university, seen.get, partition=partition, offset=offset, received_at=received_at)
    if isinstance(result, Accepted) and not result.replay:
        seen[seen_key(university, str(result.event.event_id))] = result.seen.to_value()
    return result


def test_classify_accepts_valid_and_rejects_duplicate_spoofed_and_bad() -> None:
    e = posted()
    seen: dict[str, object] = {}
    first = _classify(e.to_json(), "scu", seen, offset=1)
    assert isinstance(first, Accepted) and first.event == e and not first.replay
    dup = _classify(e.to_json(), "scu", seen, offset=2)
    assert isinstance(dup, Rejected) and dup.reason == "duplicate" and dup.event_id == str(e.event_id)
    spoof = _classify(posted(pid="x-1").to_json(), "cqu", seen)
    assert isinstance(spoof, Rejected) and spoof.reason == "spoofed_source" and spoof.university == "cqu"
    bad = _classify(b'{"type": "recruitment.job_posted"', "scu", seen)
    assert isinstance(bad, Rejected) and bad.reason == "malformed"
    retyped = e.to_json().replace(b'"positions":3', b'"positions":"3"')
    wrong = _classify(retyped, "scu", {})
    assert isinstance(wrong, Rejected) and wrong.reason == "invalid" and "data.positions" in wrong.detail
    assert wrong.event_id == str(e.event_id)  # readable although invalid: the DLQ header names it
    assert isinstance(_classify(None, "scu", seen), Rejected)


def test_event_ids_are_scoped_by_university_and_a_reused_id_with_other_content_is_a_conflict() -> None:
    """Bug: dedupe was alliance-global, so a university could claim another's event id first."""
    real = posted("scu-job-1")
    claim = posted("cqu-job-9", source="cqu").model_copy(update={"event_id": real.event_id})
    seen: dict[str, object] = {}
    assert isinstance(_classify(claim.to_json(), "cqu", seen, offset=1), Accepted)
    assert isinstance(_classify(real.to_json(), "scu", seen, offset=1), Accepted)  # not a duplicate
    other = posted("scu-job-2").model_copy(update={"event_id": real.event_id})
    conflict = _classify(other.to_json(), "scu", seen, offset=2)
    assert isinstance(conflict, Rejected) and conflict.reason == "conflict"
    # the same content re-encoded differently (key order, spacing) is an exact re-send
    respaced = json.dumps(json.loads(real.to_json()), indent=1, sort_keys=True).encode()
    resend = _classify(respaced, "scu", seen, offset=3)
    assert isinstance(resend, Rejected) and resend.reason == "duplicate"


def test_a_record_reread_from_the_same_coordinates_is_a_replay_not_a_duplicate() -> None:
    """Bug: each kill -9 of a worker flooded the DLQ with 'duplicates' of events it had accepted itself."""
    e = posted()
    seen: dict[str, object] = {}
    assert isinstance(_classify(e.to_json(), "scu", seen, partition=2, offset=40), Accepted)
    again = _classify(e.to_json(), "scu", seen, partition=2, offset=40)
    assert isinstance(again, Accepted) and again.replay and again.event == e
    resent = _classify(e.to_json(), "scu", seen, partition=1, offset=40)
    assert isinstance(resent, Rejected) and resent.reason == "duplicate"


def test_far_future_timestamps_are_rejected_beyond_the_tolerance() -> None:
    """Bug: an occurred_at in 2099 won every newest-wins rule and froze the posting."""
    arrival = T0
    ok = updated("scu-job-1", 5, arrival + MAX_CLOCK_SKEW)
    assert isinstance(_classify(ok.to_json(), "scu", {}, received_at=arrival), Accepted)
    for late in (arrival + MAX_CLOCK_SKEW + timedelta(seconds=1), datetime(2099, 1, 1, tzinfo=UTC)):
        result = _classify(updated("scu-job-1", 5, late).to_json(), "scu", {}, received_at=arrival)
        assert isinstance(result, Rejected) and result.reason == "future_timestamp", result
    old = updated("scu-job-1", 5, datetime(2001, 1, 1, tzinfo=UTC))  # old events go through the merge rules
    assert isinstance(_classify(old.to_json(), "scu", {}, received_at=arrival), Accepted)


# ---------------------------------------------------------------- recruitment merge rules


def test_late_update_does_not_reopen_a_closed_posting() -> None:
    late = updated("scu-job-1", 9, T0 + timedelta(minutes=5))
    state = fold([posted(), closed("scu-job-1", T0 + timedelta(minutes=10)), late])
    assert state["closed"] and not rec.is_open(state)
    key = next(iter(rec.contributions(state)))
    assert rec.contributions(state)[key] == {"postings_total": 1, "open_postings": 0, "open_positions": 0}


def test_field_values_follow_occurred_at_not_arrival_order() -> None:
    newer, older = updated("scu-job-1", 7, T0 + timedelta(hours=2)), updated("scu-job-1", 5, T0 + timedelta(hours=1))
    assert fold([posted(), newer, older])["fields"]["positions"][0] == 7
    # the update arrives before the posting itself: still counted once the posting arrives
    assert fold([newer, posted()])["fields"]["positions"][0] == 7


def _created_twice() -> list[tuple[Domain, list[Event], tuple[str, ...], Any]]:
    """For each owned entity: its creating event twice, an hour apart, with other segment fields; the state
    fields and the read model's table that hold them."""
    later = T0 + timedelta(hours=1)
    post = posted()
    reposted = post.model_copy(update={"occurred_at": later, "event_id": uuid.uuid4(), "data": post.data.model_copy(
        update={"industry": Industry.FINANCE, "city": City.CHONGQING, "employer_type": EmployerType.STATE_OWNED})})
    fair = j.JobFairScheduled(source="cqu", occurred_at=T0, data=j.JobFairScheduledData(
        fair_id="cqu-fair-1", name="Autumn fair", host_university="cqu", city=City.CHONGQING, venue="Gym",
        starts_at=T0 + timedelta(days=1), ends_at=T0 + timedelta(days=1, hours=6)))
    moved = fair.model_copy(update={"occurred_at": later, "event_id": uuid.uuid4(), "data": fair.data.model_copy(
        update={"city": City.CHENGDU, "name": "Autumn fair (moved)", "starts_at": T0 + timedelta(days=2),
                "ends_at": T0 + timedelta(days=2, hours=6)})})
    mentor = m.MentorRegistered(source="swu", occurred_at=T0, data=m.MentorRegisteredData(
        mentor_id="swu-mentor-1", university="swu", expertise=m.Expertise.TECHNOLOGY, industry=Industry.IT_SOFTWARE,
        employer_type=EmployerType.PRIVATE, title="Engineer"))
    profiled = mentor.model_copy(update={"occurred_at": later, "event_id": uuid.uuid4(), "data": mentor.data.model_copy(
        update={"expertise": m.Expertise.CAREER_PLANNING, "industry": Industry.FINANCE})})
    return [(domains()["recruitment"], [post, reposted], ("industry", "city", "employer_type"), POSTINGS),
            (domains()["jobfair"], [fair, moved], ("name", "city", "starts_at"), FAIRS),
            (domains()["mentoring"], [mentor, profiled], ("expertise", "industry"), MENTORS)]


def test_an_entity_created_twice_keeps_its_newest_creation_in_any_order_as_the_read_model_does() -> None:
    # a posting posted twice (a university's system re-sends JobPosted with another segment instead of a
    # correction), a fair scheduled twice, a mentor registered twice: arrival order must not decide which
    # segment the alliance figures count it under
    for domain, (old, new), names, table in _created_twice():
        key = domain.state_key(old)
        states = [apply_all(domain, order)[key] for order in ([old, new], [new, old])]
        assert [{n: s[n] for n in names} for s in states] == [{n: states[0][n] for n in names}] * 2
        assert domain.contributions(states[0]) == domain.contributions(states[1])
        [row] = table.merge_rows([next(r for t, r in event_rows(e) if t is table) for e in (new, old)])
        newest = {n: getattr(new.data, n) for n in names}
        worker = {n: states[0][n] for n in names}
        read_model = {n: row[table.index(n)] for n in names}
        assert worker == {n: v.isoformat() if isinstance(v, datetime) else str(v) for n, v in newest.items()}
        assert read_model == {n: newest[n] for n in names}, table.name
    # at the same instant the one applied first stays, in the worker as in the read model's batch fold
    domain, (old, new), _, _ = _created_twice()[0]
    tie = new.model_copy(update={"occurred_at": old.occurred_at})
    key = domain.state_key(old)
    assert (apply_all(domain, [old, tie])[key]["industry"], apply_all(domain, [tie, old])[key]["industry"]) == (
        "it_software", "finance")


def test_answers_imply_offers_and_repeats_count_once() -> None:
    accept = r.OfferAccepted(source="scu", occurred_at=T0 + timedelta(hours=3),
                             data=r.OfferAnswerData(posting_id="scu-job-1", offer_id="o-1", seeker_id=SEEKER))
    made = r.OfferMade(source="scu", occurred_at=T0 + timedelta(hours=2), data=r.OfferMadeData(
        posting_id="scu-job-1", offer_id="o-1", application_id="a-1", seeker_id=SEEKER, salary_monthly=9000))
    apply_ = r.ApplicationSubmitted(source="scu", occurred_at=T0 + timedelta(hours=1), data=r.ApplicationSubmittedData(
        posting_id="scu-job-1", application_id="a-1", seeker_id=SEEKER, degree=Degree.MASTER))
    state = fold([posted(), accept, apply_, apply_, made, accept])
    f = rec.funnel(state)
    assert (f["applications"], f["offers"], f["accepted"], f["offer_rate"], f["acceptance_rate"]) == (1, 1, 1, 1.0, 1.0)


def test_reapplying_an_event_changes_no_contribution() -> None:
    event = posted(positions=4)
    store = apply_all(domains()["recruitment"], [event])
    state = store["posting:scu-job-1"]
    again = rec.apply(Tx(store.get), state, event)
    assert diff(rec.contributions(state), rec.contributions(again)) == {}


# ---------------------------------------------------------------- job fairs


def test_fair_counts_distinct_students_and_only_registered_booths() -> None:
    """Bug: a check-in at a booth never registered added a booth on the topic but not in the read model."""
    fair = domains()["jobfair"]
    visits = [(SEEKER, None), (SEEKER, "b-1"), ("ps_" + "b" * 32, "b-2")]
    booth = j.BoothRegistered(source="cqu", occurred_at=T0, data=j.BoothRegisteredData(
        fair_id="cqu-fair-1", booth_id="b-1", employer_id="emp-1", employer_name="Chongqing Auto",
        employer_type=EmployerType.STATE_OWNED, industry=Industry.AUTOMOTIVE, positions_offered=3))
    checkins = [j.StudentCheckedIn(source="cqu", occurred_at=T0, data=j.StudentCheckedInData(
        fair_id="cqu-fair-1", seeker_id=s, booth_id=b)) for s, b in visits]
    state = apply_all(fair, [*checkins, booth])["fair:cqu-fair-1"]
    view = fair.view(state)
    assert view is not None and view[2]["distinct_checkins"] == 2 and view[2]["booths"] == 1


# ---------------------------------------------------------------- engine + rollup


def test_engine_accumulates_partials_per_partition_and_rollup_sums_them() -> None:
    later = T0 + timedelta(hours=1)
    batch = [(0, posted("scu-job-1", 3)), (1, posted("scu-job-2", 4)), (0, closed("scu-job-1", later))]
    result = engine.process(batch, domains(), lambda _key, _partition: None)
    seg = {pk: v for pk, v in result.partials.items() if pk[0] == "postings-by-segment" and "university=scu" in pk[1]}
    assert {pk[2]: v["open_positions"] for pk, v in seg.items()} == {0: 0, 1: 4}
    windows = [v["events"] for pk, v in result.partials.items() if pk[0] == "windows" and "granularity=day" in pk[1]]
    assert sum(windows) == 3
    state = None
    for (aggregate, dk, partition), values in seg.items():
        state = rollup.merge(state, aggregate, dk, f"p{partition}", values, "2026-11-26T10:00:00+00:00")
        state = rollup.merge(state, aggregate, dk, f"p{partition}", values, "2026-11-26T10:00:00+00:00")  # re-sent
    assert state is not None
    assert rollup.totals(state) == {"postings_total": 2, "open_postings": 1, "open_positions": 4}
    assert rollup.record(state)["key"]["university"] == "scu"


def test_replayed_events_are_counted_once_in_windows() -> None:
    """A worker that takes over a partition may re-read events its predecessor already applied."""
    batch = [(0, posted("scu-job-1", 3)), (0, updated("scu-job-1", 5, T0 + timedelta(minutes=5)))]
    first = engine.process(batch, domains(), lambda _key, _partition: None)
    states = {k: s for k, (_, s) in first.states.items()}
    partials = {engine.partial_key(pk): v for pk, v in first.partials.items()}
    table = {**states, **partials}  # the entity-state table (the applied ids are among the states)
    assert set(first.applied_ids) <= set(table)
    replay = engine.process(batch, domains(), lambda key, _partition: table.get(key))
    # nothing changes (no window count, no segment delta, the events are not applied again), but the current
    # partials are published again, in case the crash that caused the replay came before they were sent
    assert {engine.partial_key(pk): v for pk, v in replay.partials.items()} == partials
    assert replay.states == {} and replay.applied == 0
    day = [v["events"] for pk, v in first.partials.items() if pk[0] == "windows" and "granularity=day" in pk[1]]
    assert day == [2]


def _uuid7(ms: int, rand: int) -> uuid.UUID:
    """A UUIDv7 (RFC 9562): 48-bit unix milliseconds, version 7, variant 10, random bits."""
    value = (ms << 80) | (0x7 << 76) | ((rand >> 62) & 0xFFF) << 64 | (0b10 << 62) | (rand & (2**62 - 1))
    return uuid.UUID(int=value)


def test_windows_count_every_event_whatever_the_uuid_version() -> None:
    """Bug: two UUIDv7 ids minted in the same millisecond share their first 48 bits and were taken for
    one event, so the hourly/daily windows undercounted."""
    ms = int(T0.timestamp() * 1000)
    ids = [_uuid7(ms, 1), _uuid7(ms, 2**70 + 5), uuid.uuid1(), uuid.UUID(int=uuid.uuid4().int)]
    ids.append(uuid.UUID(int=(ids[0].int & ~(0xF << 76)) | (0x8 << 76)))  # a v8 id sharing v7's prefix bits
    assert ids[0].hex[:12] == ids[1].hex[:12] and ids[0] != ids[1]
    batch = [(0, updated("scu-job-1", 3 + i, T0 + timedelta(minutes=i)).model_copy(update={"event_id": eid}))
             for i, eid in enumerate(ids)]
    result = engine.process(batch, domains(), lambda _key, _partition: None)
    day = [v["events"] for pk, v in result.partials.items() if pk[0] == "windows" and "granularity=day" in pk[1]]
    assert day == [len(ids)]
    assert len(result.applied_ids) == len(ids)


def _offer_event(cls: type[Event], offer: str, seeker: str, at: datetime) -> Event:
    data = {"posting_id": "scu-job-1", "offer_id": offer, "seeker_id": seeker}
    if cls is r.OfferMade:
        data |= {"application_id": "a-" + offer, "salary_monthly": 9000}
    if cls is r.Hired:
        data |= {"start_date": date(2027, 7, 1)}
    return cls.model_validate({"source": "scu", "occurred_at": at, "data": data})


def test_one_rule_for_hires_and_changed_answers() -> None:
    """Bugs: one student hired through two offers counted 2 in PostgreSQL but 1 on the topic; an offer
    accepted then declined counted as both on the topic."""
    other = "ps_" + "c" * 32
    events = [
        _offer_event(r.OfferMade, "o-1", SEEKER, T0), _offer_event(r.OfferMade, "o-2", SEEKER, T0),
        _offer_event(r.Hired, "o-1", SEEKER, T0 + timedelta(hours=1)),
        _offer_event(r.Hired, "o-2", SEEKER, T0 + timedelta(hours=2)),
        _offer_event(r.OfferAccepted, "o-3", other, T0 + timedelta(hours=1)),  # answer implies the offer
        _offer_event(r.OfferDeclined, "o-3", other, T0 + timedelta(hours=2)),
        _offer_event(r.OfferAccepted, "o-4", other, T0 + timedelta(hours=3)),  # same instant: decline wins
        _offer_event(r.OfferDeclined, "o-4", other, T0 + timedelta(hours=3)),
    ]
    for order in (events, list(reversed(events))):
        f = rec.funnel(fold([posted(), *order]))
        assert (f["offers"], f["hired"], f["accepted"], f["declined"]) == (4, 1, 0, 2), order
