"""Pure stream handlers: ingest classification, domain merge rules, the batch engine, the rollup."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from events import jobfair as j
from events import recruitment as r
from events.base import Event
from events.reference import City, Degree, EmployerType, Industry
from streams import engine, rollup
from streams.domains import domains
from streams.domains import recruitment as rec
from streams.ingest import Accepted, Rejected, classify
from streams.state import diff

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


def fold(events: list[Event]) -> dict[str, object]:
    state = None
    for e in events:
        state = rec.apply(state, e)
    assert state is not None
    return state


# ---------------------------------------------------------------- ingest


def test_classify_accepts_valid_and_rejects_duplicate_spoofed_and_bad() -> None:
    e = posted()
    seen: set[str] = set()
    first = classify(e.to_json(), "scu", seen.__contains__)
    assert isinstance(first, Accepted) and first.event == e
    seen.add(str(e.event_id))
    dup = classify(e.to_json(), "scu", seen.__contains__)
    assert isinstance(dup, Rejected) and dup.reason == "duplicate" and dup.event_id == str(e.event_id)
    spoof = classify(posted(pid="x-1").to_json(), "cqu", seen.__contains__)
    assert isinstance(spoof, Rejected) and spoof.reason == "spoofed_source" and spoof.university == "cqu"
    bad = classify(b'{"type": "recruitment.job_posted"', "scu", seen.__contains__)
    assert isinstance(bad, Rejected) and bad.reason == "malformed"
    retyped = e.to_json().replace(b'"positions":3', b'"positions":"3"')
    wrong = classify(retyped, "scu", set().__contains__)
    assert isinstance(wrong, Rejected) and wrong.reason == "invalid" and "data.positions" in wrong.detail
    assert isinstance(classify(None, "scu", seen.__contains__), Rejected)


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
    state = fold([posted(positions=4)])
    again = rec.apply(state, posted(positions=4))
    assert diff(rec.contributions(state), rec.contributions(again)) == {}


# ---------------------------------------------------------------- job fairs


def test_fair_counts_distinct_students() -> None:
    fair = domains()["jobfair"]
    visits = [(SEEKER, None), (SEEKER, "b-1"), ("ps_" + "b" * 32, "b-2")]
    checkins = [j.StudentCheckedIn(source="cqu", occurred_at=T0, data=j.StudentCheckedInData(
        fair_id="cqu-fair-1", seeker_id=s, booth_id=b)) for s, b in visits]
    state = None
    for e in checkins:
        state = fair.apply(state, e)
    assert state is not None
    view = fair.view(state)
    assert view is not None and view[2]["distinct_checkins"] == 2 and view[2]["booths"] == 2


# ---------------------------------------------------------------- engine + rollup


def test_engine_accumulates_partials_per_partition_and_rollup_sums_them() -> None:
    later = T0 + timedelta(hours=1)
    batch = [(0, posted("scu-job-1", 3)), (1, posted("scu-job-2", 4)), (0, closed("scu-job-1", later))]
    result = engine.process(batch, domains(), lambda _: None, lambda _: None)
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
    first = engine.process(batch, domains(), lambda _: None, lambda _: None)
    states = {k: s for k, (_, s) in first.states.items()}
    partials = {engine.partial_key(pk): v for pk, v in first.partials.items()}
    replay = engine.process(batch, domains(), states.get, partials.get)
    # nothing changes (no window count, no segment delta), but the current partials are published again,
    # in case the crash that caused the replay came before they were sent
    assert {engine.partial_key(pk): v for pk, v in replay.partials.items()} == partials
    assert {k: s for k, (_, s) in replay.states.items()} == states
    day = [v["events"] for pk, v in first.partials.items() if pk[0] == "windows" and "granularity=day" in pk[1]]
    assert day == [2]
