"""Corrections and retractions (events.corrections) on the worker's own pure batch path (streams.batch, dict
tables), against the independent oracle (infra.oracle), which simply drops retracted events and swaps
corrected ones before computing every figure:

- a day where universities retract or correct a random 5% of their events (some corrected, then retracted):
  every aggregate the worker publishes is the oracle's, the worker's entity states and members equal those
  of a worker that only ever saw the effective events (so no member key of a retracted event is left), and
  a replay of every record changes nothing;
- revisions that must be refused (``not_revisable``): another university's event, an unknown id, the wrong
  subject or type, a second retraction, a correction after a retraction, a revision before its original;
  an erasure interplays: a correction naming an erased seeker is ``erased_seeker``, and an entity whose
  log names an erased seeker still refolds (the anonymous token stays).
"""

from __future__ import annotations

import json
import random
import uuid
from datetime import timedelta
from typing import Any

import pytest

from events import wire
from events.base import MAX_EVENT_BYTES, Event
from events.codec import decode, decode_stored, encode, stored
from events.corrections import EventCorrected, EventRetracted
from events.errors import EventValidationError
from events.privacy import erasure_token, named_seekers, renamed
from events.reference import City
from events.simulator import alliance_day
from events.simulator.revisions import corrected_copy, correction, retraction
from events.topics import AGGREGATES, ingest_topic
from infra.oracle import accepted_events, expected_aggregates
from infra.verify import agg_key, value_diffs
from streams import batch as pure
from streams.domains.base import LOG_FIELD
from tests.pure_worker import Worker
from tests.unit.test_erasure import _names_anywhere, _oracle_matches, erasure_request


def _records(events: list[Event]) -> list[tuple[str, bytes, bytes]]:
    return [(ingest_topic(e.source), e.key, encode(e)) for e in events]


def _published(worker: Worker) -> dict[str, dict[str, Any]]:
    """{aggregate: {key: value}} as the newest records on the aggregated topics say (tombstones dropped)."""
    out: dict[str, dict[str, Any]] = {name: {} for name in AGGREGATES}
    for value in worker.agg.values():
        if value is not None:
            record = json.loads(value)
            out[record["aggregate"]][agg_key(record["key"])] = record["value"]
    return out


def _entities(worker: Worker) -> dict[str, Any]:
    """The entity states and member keys, without the logs (their entries, their counts in the states, their refold
    indexes), applied ids and partials (bookkeeping)."""
    return {k: ({f: v for f, v in value.items() if f not in ("updated_at", LOG_FIELD)} if isinstance(value, dict)
                else value)
            for k, value in worker.tables[pure.STATES].items()
            if not k.startswith(("applied:", "partial:", "seekers|", "erased|")) and "|event|" not in k
            and "|refold|" not in k and not k.endswith("|events")}


def _day(rate: float, seed: int = 5) -> list[Event]:
    return [r.event for r in alliance_day(seed=seed, scale=0.05, duplicate_rate=0.0, invalid_rate=0.0,
                                          spoofed_rate=0.0, foreign_rate=0.0, revision_rate=rate)
            if r.kind == "valid" and r.event is not None]


def test_a_day_with_5_percent_retracted_or_corrected_matches_the_oracle_everywhere() -> None:
    events = _day(0.05)
    revisions = [e for e in events if isinstance(e, EventRetracted | EventCorrected)]
    originals = len(events) - len(revisions)
    assert 0.04 * originals <= len({r.data.event_id for r in revisions}) <= 0.06 * originals
    assert {type(r) for r in revisions} == {EventRetracted, EventCorrected}
    worker = Worker()
    _revised_in_batches(worker, events, 97)
    # and a replay of the whole day (a worker re-reading it after a crash) changes nothing
    before = (dict(worker.tables[pure.STATES]), worker.totals())
    worker.replay()
    assert (worker.tables[pure.STATES], worker.totals()) == before


def _revised_in_batches(worker: Worker, events: list[Event], size: int, start: int = 0) -> None:
    """Send ``events[start:]`` in batches of ``size`` (as the agents see them): nothing is refused, every figure is
    the oracle's for ``events``, and the entity states are those of a worker that only ever saw the events left
    standing."""
    for first in range(start, len(events), size):
        worker.send(_records(events[first:first + size]))
        assert not worker.dlq, [dict(h)[wire.DLQ_DETAIL] for _, _, h in worker.dlq][:3]
    _the_oracles_figures(worker, events)
    clean = Worker()
    clean.send(_records(_effective(events)))
    assert _entities(worker) == _entities(clean)


def _the_oracles_figures(worker: Worker, events: list[Event]) -> None:
    """Every aggregate the worker publishes (rollups: the sums it publishes) is the oracle's for ``events``."""
    expected = expected_aggregates(accepted_events([_valid(e) for e in events]))
    published = _published(worker)
    published.update(worker.totals())
    for name in AGGREGATES:
        assert not value_diffs(published[name], expected[name]), (name, value_diffs(published[name],
                                                                                     expected[name])[:5])


def _valid(event: Event) -> Any:
    from events.simulator.noise import valid_record
    return valid_record(event)


def _effective(events: list[Event]) -> list[Event]:
    """The events left standing, by the plain rule (the test's own, beside the oracle's)."""
    current: dict[tuple[str, str], Event | None] = {}
    for e in events:
        if isinstance(e, EventRetracted):
            current[(e.source, str(e.data.event_id))] = None
        elif isinstance(e, EventCorrected):
            current[(e.source, str(e.data.event_id))] = e.data.corrected
        else:
            current[(e.source, str(e.event_id))] = e
    return [e for e in current.values() if e is not None]


def _one_posting() -> list[Event]:
    events = _day(0.0, seed=9)
    posted = next(e for e in events if e.type == "recruitment.job_posted"
                  and sum(1 for x in events if x.subject == e.subject) >= 4)
    return [e for e in events if e.subject == posted.subject]


def _rejects(worker: Worker) -> list[tuple[str, str]]:
    return [(dict(h)[wire.DLQ_REASON].decode(), dict(h)[wire.DLQ_UNIVERSITY].decode()) for _, _, h in worker.dlq]


def test_revisions_that_must_be_refused() -> None:
    events = _one_posting()
    posted, application = events[0], next(e for e in events if e.type == "recruitment.application_submitted")
    worker = Worker()
    early = retraction(application, event_id=str(uuid.uuid4()))
    worker.send(_records([early]))  # before its original: unknown on the partition
    assert _rejects(worker) == [("not_revisable", posted.source)]
    worker.send(_records(events))
    figures = (worker.totals(), _published(worker))
    wrong_subject = retraction(application, event_id=str(uuid.uuid4()))
    body = wrong_subject.model_dump(mode="json")
    other = next(e for e in _day(0.0, seed=9) if e.type == "recruitment.job_posted" and e.source == posted.source
                 and e.subject != posted.subject)
    body["subject"] = body["data"]["subject"] = other.subject
    unknown = retraction(application, event_id=str(uuid.uuid4())).model_dump(mode="json")
    unknown["data"]["event_id"] = str(uuid.uuid4())
    refused = [EventRetracted.model_validate(body), EventRetracted.model_validate(unknown)]
    wrong = retraction(application, event_id=str(uuid.uuid4())).model_dump(mode="json")
    wrong["data"]["type"] = "recruitment.offer_made"
    refused.append(EventRetracted.model_validate(wrong))
    worker.dlq.clear()
    worker.send(_records(refused))
    assert _rejects(worker) == [("not_revisable", posted.source)] * 3
    assert (worker.totals(), _published(worker)) == figures  # nothing moved
    # retracted once: a second retraction and a later correction are refused
    worker.dlq.clear()
    worker.send(_records([retraction(application, event_id=str(uuid.uuid4()))]))
    assert not worker.dlq
    after = (worker.totals(), _published(worker))
    fixed = correction(application, corrected_copy(random.Random(1), application, []), event_id=str(uuid.uuid4()))
    worker.send(_records([retraction(application, event_id=str(uuid.uuid4())), fixed]))
    assert _rejects(worker) == [("not_revisable", posted.source)] * 2
    assert (worker.totals(), _published(worker)) == after


def test_another_university_cannot_retract_or_correct_an_event_that_is_not_its_own() -> None:
    events = _one_posting()
    posted = events[0]
    stranger = next(u for u in ("scu", "cqu", "uestc") if u != posted.source)
    worker = Worker()
    worker.send(_records(events))
    figures = (worker.totals(), _published(worker))
    forged = retraction(posted, event_id=str(uuid.uuid4())).model_dump(mode="json")
    forged["source"] = stranger
    worker.send(_records([EventRetracted.model_validate(forged)]))  # about the owner's posting: refused at ingest
    assert _rejects(worker) == [("not_owner", stranger)]
    body = correction(posted, posted, event_id=str(uuid.uuid4())).model_dump(mode="json")
    body["source"] = stranger
    with pytest.raises(ValueError, match="corrects only its own events"):
        EventCorrected.model_validate(body)
    with pytest.raises(EventValidationError, match="corrects only its own events"):
        decode(json.dumps(body))
    assert (worker.totals(), _published(worker)) == figures


def test_retracting_a_repeated_check_in_keeps_the_student_and_a_corrected_posting_moves_every_figure() -> None:
    events = _day(0.0, seed=3)
    fair = next(e for e in events if e.type == "jobfair.scheduled")
    checkins = [e for e in events if e.type == "jobfair.student_checked_in" and e.subject == fair.subject]
    twice = next(c.data.seeker_id for c in checkins
                 if sum(1 for x in checkins if x.data.seeker_id == c.data.seeker_id) >= 2)
    theirs = [c for c in checkins if c.data.seeker_id == twice]
    posted = next(e for e in events if e.type == "recruitment.job_posted")
    bigger = posted.model_copy(update={"data": posted.data.model_copy(update={"positions": posted.data.positions + 7})})
    worker = Worker()
    worker.send(_records(events))
    before = _published(worker)["fairs"][str(fair.subject)]["distinct_checkins"]
    worker.send(_records([retraction(theirs[0], event_id=str(uuid.uuid4())),
                          correction(posted, bigger, event_id=str(uuid.uuid4()))]))
    assert not worker.dlq
    assert _published(worker)["fairs"][str(fair.subject)]["distinct_checkins"] == before  # still checked in
    worker.send(_records([retraction(c, event_id=str(uuid.uuid4())) for c in theirs[1:]]))
    assert _published(worker)["fairs"][str(fair.subject)]["distinct_checkins"] == before - 1
    retracted = {c.event_id for c in theirs}
    fixed = [bigger if e.event_id == posted.event_id else e for e in events if e.event_id not in retracted]
    expected = expected_aggregates(fixed)
    totals = worker.totals()
    assert totals["postings-by-segment"] == expected["postings-by-segment"]
    assert totals["windows"] == expected["windows"]
    assert expected["postings-by-segment"] != expected_aggregates(events)["postings-by-segment"]


def test_a_log_entry_renamed_by_an_erasure_still_decodes_as_what_was_stored() -> None:
    event = next(e for e in _day(0.0, seed=3) if e.type == "mentoring.session_held")
    body = stored(event)
    token = "erased." + "ab" * 16
    body["data"]["seeker_ids"] = [token, *body["data"]["seeker_ids"][1:]]
    again = decode_stored(body)
    assert again.data.seeker_ids[0] == token and stored(again) == body  # type: ignore[attr-defined]


def test_every_entry_naming_an_erased_seeker_decodes_as_what_was_stored() -> None:
    """Every event type that names a seeker, and a correction of each, renamed by an erasure as the worker and the
    read model rename (events.privacy.renamed): the decoded event is the renamed entry, field for field, the
    corrected event's seekers and a seeker-keyed subject included."""
    events = [e for e in _day(0.0, seed=3) if named_seekers(e.data)]
    kinds = {e.type: e for e in events}
    assert len(kinds) >= 10
    for event in kinds.values():
        seeker = named_seekers(event.data)[0]
        token = erasure_token(event.source, str(uuid.uuid4()))
        for kept in (event, correction(event, event, event_id=str(uuid.uuid4()))):
            body = renamed(stored(kept), seeker, token)
            assert token in json.dumps(body) and seeker not in json.dumps(body)
            again = decode_stored(body)
            assert stored(again) == body, kept.type


def test_an_entry_decodes_from_its_text_in_any_spelling_even_past_the_wire_limit() -> None:
    """The read model hands decode_stored its event_log's jsonb text (keys reordered, spaces after separators),
    with or without an anonymous token; a stored spelling longer than the wire's limit (the event passed it as
    it arrived) still decodes: a refold must never refuse an entry it applied before."""
    event = next(e for e in _day(0.0, seed=3) if e.type == "mentoring.session_held")
    token = erasure_token(event.source, str(uuid.uuid4()))
    for body in (stored(event), renamed(stored(event), event.data.seeker_ids[0], token)):  # type: ignore[attr-defined]
        jsonb = json.dumps(dict(sorted(body.items(), key=lambda kv: (len(kv[0]), kv[0]))))
        padded = json.dumps(body, indent=MAX_EVENT_BYTES // 8).encode()
        assert len(padded) > MAX_EVENT_BYTES
        for spelling in (jsonb, padded):
            assert stored(decode_stored(spelling)) == body
    with pytest.raises(EventValidationError):  # (the wire itself keeps its limit)
        decode(padded)


@pytest.mark.parametrize("erased", [False, True])
def test_an_entity_id_that_begins_like_a_token_decodes_as_stored(erased: bool) -> None:
    """An entity id may begin with "erased." (the id pattern allows it): it is not a seeker's token, so it is
    neither stood in for nor put back, with or without an erased seeker in the same entry."""
    event = next(e for e in _day(0.0, seed=3) if e.type == "recruitment.application_submitted")
    body = stored(event)
    body["subject"] = body["data"]["posting_id"] = "erased." + "cd" * 16
    assert decode(encode(decode_stored(body))) == decode_stored(body)  # (valid as it is: an entity id)
    if erased:
        body = renamed(body, event.data.seeker_id, erasure_token(event.source, str(uuid.uuid4())))  # type: ignore[attr-defined]
    again = decode_stored(body)
    assert stored(again) == body and again.subject == again.data.posting_id == body["subject"]  # type: ignore[attr-defined]


@pytest.mark.parametrize("text", ['the scanner "erased.', 'erased.' + "ab" * 16, "scanner fault"])
def test_an_entry_is_decoded_as_stored_whether_or_not_a_text_looks_like_an_anonymous_token(text: str) -> None:
    """decode_stored validates most entries straight from their JSON, and takes the stand-in path only when a
    text begins like an anonymous token: a text merely holding one (quoted, in the middle) or starting with one
    (a free-text field, never a seeker id) decodes to the event as stored either way."""
    event = next(e for e in _day(0.0, seed=3) if e.type == "recruitment.application_submitted")
    for revision in (retraction(event, event_id=str(uuid.uuid4()), reason=text),
                     correction(event, event, event_id=str(uuid.uuid4()), reason=text)):
        body = stored(revision)
        again = decode_stored(body)
        assert again == revision == decode(encode(revision)) and stored(again) == body


def test_revisions_after_an_erasure_refold_with_the_anonymous_token_and_refuse_the_erased_seeker() -> None:
    events = _day(0.0, seed=3)
    apps = [e for e in events if e.type == "recruitment.application_submitted"]
    posting = next(p for p in {a.subject for a in apps}
                   if len({a.data.seeker_id for a in apps if a.subject == p}) >= 3)
    mine = [a for a in apps if a.subject == posting]
    erased, kept = mine[0], mine[1]
    worker = Worker()
    worker.send(_records(events))
    request = erasure_request(erased.data.seeker_id)
    fixed = kept.model_copy(update={"data": kept.data.model_copy(update={"seeker_id": erased.data.seeker_id})})
    worker.send(_records([request]))
    worker.dlq.clear()
    later = [retraction(kept, event_id=str(uuid.uuid4())),  # refolds a log that holds the token
             correction(mine[2], fixed.model_copy(update={"event_id": mine[2].event_id,
                                                           "occurred_at": mine[2].occurred_at}),
                        event_id=str(uuid.uuid4()))]  # names the erased seeker: refused
    worker.send(_records(later))
    assert _rejects(worker) == [("erased_seeker", kept.source)]
    assert not [k for k in worker.tables[pure.STATES] if erased.data.seeker_id in k]
    assert not [v for v in worker.tables[pure.STATES].values() if erased.data.seeker_id in json.dumps(v)]
    expected = expected_aggregates([*events, request, later[0]])
    funnel = _published(worker)["posting-funnel"][posting]
    assert {k: funnel[k] for k in expected["posting-funnel"][posting]} == expected["posting-funnel"][posting]
    assert worker.totals()["windows"] == expected["windows"]


@pytest.mark.parametrize("etype", ["jobfair.student_checked_in", "mentoring.mentor_assigned",
                                   "recruitment.offer_made", "recruitment.application_submitted"])
def test_a_seeker_a_correction_brought_in_is_erased_from_every_key_the_refold_wrote(etype: str) -> None:
    """A correction moves an event to another student: the refold writes the new student's member keys (a
    check-in, an assignment) and values (an offer's seeker) from the corrected event. Their erasure must find
    those too (the refold lists them in the student's index, as an event's own writes are)."""
    events = _day(0.0, seed=3)
    original = next(e for e in events if e.type == etype)
    other = original.data.seeker_id[:-6] + "abcdef"  # type: ignore[attr-defined]
    fixed = original.model_copy(update={"data": original.data.model_copy(update={"seeker_id": other})})
    worker = Worker()
    worker.send(_records(events))
    revised = correction(original, fixed, event_id=str(uuid.uuid4()))
    worker.send(_records([revised]))
    assert not worker.dlq and _names_anywhere(worker, other)
    request = erasure_request(other)
    worker.send(_records([request]))
    assert not worker.dlq
    assert _names_anywhere(worker, other) == []
    _oracle_matches(worker, [*events, revised, request])


def test_an_offer_whose_earliest_event_is_retracted_is_erased_with_the_seeker_it_then_names() -> None:
    """An offer's seeker is the one its earliest event names. A university that sent the acceptance under
    another student, and then retracts the offer, leaves the offer naming that student: written by the refold,
    not by the acceptance (whose write named the first student), and still found by that student's erasure."""
    events = _day(0.0, seed=3)
    made = next(e for e in events if e.type == "recruitment.offer_made")
    template = next(e for e in events if e.type == "recruitment.offer_accepted")
    second = made.data.seeker_id[:-6] + "bbbbbb"  # type: ignore[attr-defined]
    accepted = template.model_copy(update={
        "event_id": uuid.uuid4(), "subject": made.subject, "source": made.source,
        "occurred_at": made.occurred_at + timedelta(minutes=5),
        "data": template.data.model_copy(update={"offer_id": made.data.offer_id,  # type: ignore[attr-defined]
                                                  "seeker_id": second})})
    worker = Worker()
    worker.send(_records([*events, accepted]))
    offer = f"posting:{made.subject}|offer|{made.data.offer_id}"  # type: ignore[attr-defined]
    assert worker.tables[pure.STATES][offer]["seeker"] == made.data.seeker_id  # type: ignore[attr-defined]
    revoked = retraction(made, event_id=str(uuid.uuid4()))
    worker.send(_records([revoked]))
    assert worker.tables[pure.STATES][offer]["seeker"] == second
    request = erasure_request(second)
    worker.send(_records([request]))
    assert not worker.dlq
    assert _names_anywhere(worker, second) == []
    _oracle_matches(worker, [*events, accepted, revoked, request])
    assert worker.tables[pure.STATES][offer]["seeker"].startswith("erased.")


class _LogReads(Worker):
    """A worker that counts the log entries its tables agent reads (``<entity>|event|<n>``)."""

    entries = 0

    def read_states(self, key: str, partition: int) -> Any:
        self.entries += "|event|" in key
        return super().read_states(key, partition)


def _fair_with_checkins(n: int) -> tuple[list[Event], list[Event]]:
    """A fair's scheduling and ``n`` check-ins, every tenth student checked in twice."""
    events = _day(0.0, seed=3)
    fair = next(e for e in events if e.type == "jobfair.scheduled")
    template = next(e for e in events if e.type == "jobfair.student_checked_in" and e.subject == fair.subject)
    checkins = [template.model_copy(update={"event_id": uuid.uuid4(), "data": template.data.model_copy(
        update={"seeker_id": f"ps.cqu.dev.{i - i % 10 * (i % 10 == 1):032x}"})}) for i in range(n)]
    return [fair], checkins


@pytest.mark.parametrize("layout", ["counted", "before 2026-12-07"])
def test_a_revision_of_a_member_event_costs_one_event_whatever_the_entity_history(layout: str) -> None:
    """Retracting a check-in, one of a student's two check-ins, and correcting a check-in to another student, on a
    fair with 600 check-ins: each revision reads its original's log entry and nothing else of the log (its member
    key counts the events adding it, the fair's state its standing events). The figures, states and member counts
    are those of a worker that saw only the events left standing. Tables of the earlier layout (members counted
    once) refold the fair once, which counts them, and take the next revisions back alone."""
    fair, checkins = _fair_with_checkins(600)
    worker = _LogReads()
    worker.send(_records(fair + checkins))
    if layout != "counted":
        assert worker.members_counted_once()
    twice = [c for c in checkins if c.data.seeker_id == checkins[11].data.seeker_id]  # type: ignore[attr-defined]
    assert len(twice) == 2
    other = checkins[55].model_copy(update={"data": checkins[55].data.model_copy(  # type: ignore[attr-defined]
        update={"seeker_id": "ps.cqu.dev." + "e" * 32})})
    rounds = [[retraction(checkins[33], event_id=str(uuid.uuid4())), retraction(twice[0], event_id=str(uuid.uuid4()))],
              [correction(checkins[55], other, event_id=str(uuid.uuid4()))],
              [retraction(twice[1], event_id=str(uuid.uuid4()))]]
    reads = []
    for revisions in rounds:
        worker.entries = 0
        worker.send(_records(revisions))
        assert not worker.dlq
        reads.append(worker.entries)
    if layout == "counted":
        assert reads == [2, 1, 1]
    else:  # the first batch refolds (every entry read), then the fair counts
        assert reads[0] >= len(checkins) and reads[1:] == [1, 1]
    gone = {checkins[33].event_id, *(t.event_id for t in twice)}
    clean = Worker()
    clean.send(_records(fair + [other if c is checkins[55] else c for c in checkins if c.event_id not in gone]))
    assert _entities(worker) == _entities(clean)
    assert _published(worker)["fairs"] == _published(clean)["fairs"]
    assert worker.totals() == clean.totals()


@pytest.mark.parametrize("erase_first", [True, False])
@pytest.mark.parametrize("times", [1, 2])
def test_a_check_in_taken_back_in_the_batch_that_erases_its_student_leaves_what_the_erasure_alone_would(
        erase_first: bool, times: int) -> None:
    """A retraction taken back alone (its member key counted) and the erasure of the student it names, in one batch
    and in either order, for a student checked in at the fair once (the member goes, the fair counts one less) or
    twice (it stays, renamed): nothing names the student, and the tables and figures are those of a worker that
    never saw the check-in and then erased the student."""
    events = _day(0.0, seed=3)
    checkin = next(e for e in events if e.type == "jobfair.student_checked_in")  # (every student re-enters: twice)
    if times == 1:  # a student who came once
        checkin = checkin.model_copy(update={"event_id": uuid.uuid4(), "data": checkin.data.model_copy(
            update={"seeker_id": "ps.cqu.dev." + "c" * 32})})
        events = [*events, checkin]
    seeker = checkin.data.seeker_id  # type: ignore[attr-defined]
    request, revoked = erasure_request(seeker), retraction(checkin, event_id=str(uuid.uuid4()))
    worker = Worker()
    worker.send(_records(events))
    worker.send(_records([request, revoked] if erase_first else [revoked, request]))
    assert not worker.dlq and _names_anywhere(worker, seeker) == []
    clean = Worker()
    clean.send(_records([e for e in events if e.event_id != checkin.event_id]))
    clean.send(_records([request]))
    assert _entities(worker) == _entities(clean)
    assert _published(worker)["fairs"] == _published(clean)["fairs"] and worker.totals() == clean.totals()


def test_refused_revisions_among_taken_back_ones_and_new_events_lose_none_of_the_good_ones() -> None:
    """One batch mixing a new check-in, a retraction taken back alone, a retraction of an unknown event, another
    university's retraction of the fair's check-in and a correction taken back alone: the unknown one goes to the DLQ
    as ``not_revisable`` (tables agent), the foreign one as ``not_owner`` (ingest: the fair is not its sender's), and
    the rest is what a worker that saw only the good events would hold."""
    fair, checkins = _fair_with_checkins(50)
    worker = Worker()
    worker.send(_records(fair + checkins[:40]))
    unknown = retraction(checkins[0], event_id=str(uuid.uuid4())).model_dump(mode="json")
    unknown["data"]["event_id"] = str(uuid.uuid4())
    foreign = retraction(checkins[3], event_id=str(uuid.uuid4())).model_dump(mode="json")
    foreign["source"] = "swu" if checkins[3].source != "swu" else "scu"
    moved = checkins[5].model_copy(update={"data": checkins[5].data.model_copy(  # type: ignore[attr-defined]
        update={"seeker_id": "ps.cqu.dev." + "d" * 32})})
    batch: list[Event] = [checkins[40], retraction(checkins[2], event_id=str(uuid.uuid4())),
                          EventRetracted.model_validate(unknown), EventRetracted.model_validate(foreign),
                          correction(checkins[5], moved, event_id=str(uuid.uuid4())), *checkins[41:]]
    worker.send(_records(batch))
    assert sorted(r for r, _ in _rejects(worker)) == ["not_owner", "not_revisable"]
    clean = Worker()
    clean.send(_records(fair + [moved if c is checkins[5] else c for c in checkins if c is not checkins[2]]))
    assert _entities(worker) == _entities(clean)
    assert _published(worker)["fairs"] == _published(clean)["fairs"] and worker.totals() == clean.totals()


def test_a_bulk_retraction_in_one_batch_refolds_once_and_equals_a_worker_that_never_saw_the_events() -> None:
    """All check-ins one faulty scanner recorded, taken back in one batch, with a new check-in and corrections
    of the same fair among them: the fair refolds before the new check-in and once at the end of the batch."""
    events = _day(0.0, seed=3)
    fair = next(e for e in events if e.type == "jobfair.scheduled")
    checkins = [e for e in events if e.type == "jobfair.student_checked_in" and e.subject == fair.subject]
    gone, fixed = checkins[::3], checkins[1:40:3]
    late = checkins[-1].model_copy(update={"event_id": uuid.uuid4(), "data": checkins[-1].data.model_copy(
        update={"seeker_id": "ps.cqu.dev." + "f" * 32})})
    rng = random.Random(3)
    corrected = {e.event_id: corrected_copy(rng, e, ["ps.cqu.dev." + "e" * 32]) for e in fixed}
    bulk: list[Event] = [retraction(e, event_id=str(uuid.uuid4())) for e in gone[: len(gone) // 2]]
    bulk += [late, *(correction(e, corrected[e.event_id], event_id=str(uuid.uuid4())) for e in fixed)]
    bulk += [retraction(e, event_id=str(uuid.uuid4())) for e in gone[len(gone) // 2:]]
    worker = Worker()
    worker.send(_records(events))
    worker.send(_records(bulk))  # one batch
    assert not worker.dlq
    retracted = {e.event_id for e in gone}
    standing = [corrected.get(e.event_id, e) for e in events if e.event_id not in retracted] + [late]
    clean = Worker()
    clean.send(_records(standing))
    assert _entities(worker) == _entities(clean)
    assert _published(worker)["fairs"] == _published(clean)["fairs"]
    assert worker.totals() == clean.totals()


def test_the_tools_check_every_line_before_sending(tmp_path: Any, capsys: Any) -> None:
    """``retract`` / ``correct`` --dry-run: a wrong line refuses the whole file (exit 1), naming the line."""
    from events.tools.cli import main

    events = _one_posting()
    posted, application = events[0], next(e for e in events if e.type == "recruitment.application_submitted")
    good = tmp_path / "good.jsonl"
    good.write_text("".join(json.dumps(e.model_dump(mode="json")) + "\n" for e in (posted, application)))
    assert main(["retract", "-u", posted.source, "--reason", "twice", "--dry-run", str(good)]) == 0
    assert "2 retraction(s) valid; dry run" in capsys.readouterr().out
    assert main(["correct", "-u", posted.source, "--reason", "typo", "--dry-run", str(good)]) == 0
    stranger = next(u for u in ("scu", "cqu", "uestc") if u != posted.source)
    assert main(["retract", "-u", stranger, "--reason", "x", "--dry-run", str(good)]) == 1
    err = capsys.readouterr().err
    assert "line 1:" in err and "may not change it" in err and "nothing was sent" in err
    assert main(["correct", "-u", stranger, "--reason", "x", "--dry-run", str(good)]) == 1
    assert "corrects only its own events" in capsys.readouterr().err
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps(posted.model_dump(mode="json")) + "\n{not json\n"
                   + json.dumps({**application.model_dump(mode="json"), "type": "services.seeker_erasure_requested"})
                   + "\n")
    assert main(["retract", "-u", posted.source, "--reason", "x", "--dry-run", str(bad)]) == 1
    err = capsys.readouterr().err
    assert "line 2: not a JSON object" in err and "line 3:" in err and "2 of 3 line(s) refused" in err


def test_an_entity_whose_every_event_was_retracted_keeps_its_log_and_comes_back_with_its_next_event() -> None:
    """The log's count lives in the entity's state; with every event retracted the state goes (its record is a
    tombstone) and the count is kept on a key of its own, so the entity's next event is logged after the old
    entries (a revision of it, and of the old ones, finds what it names), and the count moves back."""
    events = _one_posting()
    key = f"posting:{events[0].subject}"
    worker = Worker()
    worker.send(_records(events))
    states = worker.tables[pure.STATES]
    others = sum(e.type != "recruitment.application_submitted" for e in events)  # indexed for refolds
    assert states[key][LOG_FIELD] == [len(events), True, len(events), others] and f"{key}|events" not in states
    assert str(events[0].subject) in _published(worker)["posting-funnel"]
    worker.send(_records([retraction(e, event_id=str(uuid.uuid4())) for e in events]))
    assert not worker.dlq and key not in states and states[f"{key}|events"] == [len(events), True, 0, others]
    comeback = events[1].model_copy(update={"event_id": uuid.uuid4()})  # another application to the posting
    worker.send(_records([comeback]))
    assert not worker.dlq and f"{key}|events" not in states
    assert states[key][LOG_FIELD] == [len(events) + 1, True, 1, others]
    assert states[f"applied:{comeback.source}/{comeback.event_id}"] == {"log": len(events)}
    # a second retraction of an old event is refused (its entry is empty), the new event can be retracted
    worker.send(_records([retraction(events[1], event_id=str(uuid.uuid4()))]))
    assert _rejects(worker) == [("not_revisable", events[1].source)]
    worker.dlq.clear()
    worker.send(_records([retraction(comeback, event_id=str(uuid.uuid4()))]))
    assert not worker.dlq and key not in states and states[f"{key}|events"] == [len(events) + 1, True, 0, others]
    assert [k for k in _entities(worker) if k.startswith(key)] == []  # no state, no member key
    assert str(events[0].subject) not in _published(worker)["posting-funnel"]  # its record: a tombstone


def test_logs_counted_apart_by_an_earlier_version_are_revised_and_grow_into_their_states() -> None:
    """Half a day under the earlier layout (each log's count on a key of its own), the rest with revisions:
    the figures are the oracle's, the entities those of a worker that saw only the events left standing, and
    a count key is gone wherever the entity's state holds the count."""
    events = _day(0.05, seed=11)
    half = len(events) // 2
    worker = Worker()
    worker.send(_records(events[:half]))
    apart = worker.count_logs_apart()
    assert apart
    _revised_in_batches(worker, events, 97, start=half)
    states = worker.tables[pure.STATES]
    kept = [k for k in apart if k in states]
    assert len(kept) < len(apart)  # the entities that had events since moved their counts
    for count_key in kept:  # the others: untouched since, or every event retracted
        state = states.get(count_key.removesuffix("|events"))
        assert state is None or LOG_FIELD not in state, count_key


def test_a_student_a_refold_and_a_new_event_of_one_batch_both_name_is_erased_from_every_key_of_both() -> None:
    """A correction moves an offer to another student, and the same batch then makes that student a new offer on the
    same posting. The posting's pending refold runs before the new offer applies and lists the moved offer in the
    student's erasure index; the new offer's listing must add to that index, not write over it with what it read
    before the refold (then the erasure would leave the moved offer naming the student)."""
    events = _day(0.0, seed=3)
    made = next(e for e in events if e.type == "recruitment.offer_made")
    other = made.data.seeker_id[:-6] + "abcdef"  # type: ignore[attr-defined]
    moved = made.model_copy(update={"data": made.data.model_copy(update={"seeker_id": other})})
    another = made.model_copy(update={"event_id": uuid.uuid4(), "data": made.data.model_copy(
        update={"seeker_id": other, "offer_id": made.data.offer_id + "-b"})})  # type: ignore[attr-defined]
    worker = Worker()
    worker.send(_records(events))
    revised = correction(made, moved, event_id=str(uuid.uuid4()))
    worker.send(_records([revised, another]))  # one batch
    posting = f"posting:{made.subject}|offer|"
    assert not worker.dlq
    assert {k.rsplit("|", 1)[1] for k, v in worker.tables[pure.STATES].items()
            if k.startswith(posting) and v["seeker"] == other} == {made.data.offer_id,  # type: ignore[attr-defined]
                                                                  another.data.offer_id}  # type: ignore[attr-defined]
    request = erasure_request(other)
    worker.send(_records([request]))
    assert not worker.dlq
    assert _names_anywhere(worker, other) == []
    _oracle_matches(worker, [*events, revised, another, request])


def _fair_with_history(n: int) -> tuple[list[Event], list[Event]]:
    """A fair's events that are not members (its scheduling, a rescheduling to another city an hour later, its
    closing) and ``n`` check-ins (``_fair_with_checkins``)."""
    fair, checkins = _fair_with_checkins(n)
    scheduled = fair[0]
    city = scheduled.data.city  # type: ignore[attr-defined]
    moved = scheduled.model_copy(update={
        "event_id": uuid.uuid4(), "occurred_at": scheduled.occurred_at + timedelta(hours=1),
        "data": scheduled.data.model_copy(update={"name": "Moved fair",
                                                  "city": next(c for c in City if c != city)})})
    events = _day(0.0, seed=3)
    template = next(e for e in events if e.type == "jobfair.closed")
    closed = template.model_copy(update={
        "event_id": uuid.uuid4(), "subject": scheduled.subject, "source": scheduled.source,
        "data": template.data.model_copy(update={"fair_id": scheduled.subject})})
    return [scheduled, moved, closed], checkins


@pytest.mark.parametrize("layout", ["indexed", "counted, not indexed", "not counted"])
def test_a_revision_of_an_event_that_is_not_a_member_reads_the_entitys_other_events_alone(layout: str) -> None:
    """A fair with 600 check-ins and three events that are not members (scheduled, rescheduled, closed): retracting
    the closing, correcting the rescheduling, then retracting the rescheduling and a check-in in one batch. Each
    revision of a non-member reads the fair's refold index and the log entries it names (its events that are not
    members), not the check-ins; the states, member counts, figures and records are those of a worker that saw only
    the events left standing. Tables of an earlier layout refold the whole log once, which writes the index."""
    others, checkins = _fair_with_history(600)
    scheduled, moved, closed = others
    worker = _LogReads()
    worker.send(_records(others + checkins))
    if layout == "counted, not indexed":
        assert worker.refolds_unindexed() == 3
    elif layout == "not counted":
        assert worker.refolds_unindexed() == 3 and worker.members_counted_once()
    renamed = moved.model_copy(update={"data": moved.data.model_copy(update={"name": "Renamed fair"})})
    rounds = [[retraction(closed, event_id=str(uuid.uuid4()))],
              [correction(moved, renamed, event_id=str(uuid.uuid4()))],
              [retraction(renamed, event_id=str(uuid.uuid4())), retraction(checkins[33], event_id=str(uuid.uuid4()))]]
    reads = []
    for revisions in rounds:
        worker.entries = 0
        worker.send(_records(revisions))
        assert not worker.dlq, _rejects(worker)
        reads.append(worker.entries)
    # each: the original's entry, then the entries the index names (3, retracted ones included); the check-in: 1
    if layout == "indexed":
        assert reads == [1 + 3, 1 + 3, 1 + 3 + 1]
    else:  # the whole refold wrote the index from the events standing then (the closing retracted: 2)
        assert reads[0] >= len(checkins) and reads[1:] == [1 + 2, 1 + 2 + 1]
    clean = Worker()
    clean.send(_records([scheduled] + [c for c in checkins if c is not checkins[33]]))
    assert _entities(worker) == _entities(clean)
    assert _published(worker)["fairs"] == _published(clean)["fairs"]
    assert worker.totals() == clean.totals()
    fair = worker.tables[pure.STATES][f"fair:{scheduled.subject}"]
    assert fair["name"] == scheduled.data.name and fair["checkins"] == clean.tables[pure.STATES][  # type: ignore[attr-defined]
        f"fair:{scheduled.subject}"]["checkins"]


def test_a_member_key_lost_from_the_table_is_rebuilt_by_a_whole_refold_behind_a_pending_partial_one() -> None:
    """A check-in whose member key is missing (a damaged table) cannot be taken back alone; its retraction, in the
    batch after a retraction of the fair's closing (a partial refold, pending), refolds that first and then the
    whole fair from its log: the result is a worker's that saw only the events left standing."""
    others, checkins = _fair_with_history(60)
    worker = Worker()
    worker.send(_records(others + checkins))
    lost = f"fair:{others[0].subject}|seeker|{checkins[7].data.seeker_id}"  # type: ignore[attr-defined]
    del worker.tables[pure.STATES][lost]
    worker.send(_records([retraction(others[2], event_id=str(uuid.uuid4())),
                          retraction(checkins[7], event_id=str(uuid.uuid4()))]))
    assert not worker.dlq, _rejects(worker)
    clean = Worker()
    clean.send(_records(others[:2] + [c for c in checkins if c is not checkins[7]]))
    assert _entities(worker) == _entities(clean)
    assert _published(worker)["fairs"] == _published(clean)["fairs"] and worker.totals() == clean.totals()


@pytest.mark.parametrize("seed", [21, 22, 23])
def test_a_day_revised_heavily_in_small_batches_matches_the_oracle_and_a_worker_that_saw_what_stands(
        seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """A fifth of a day's events retracted or corrected, in batches of 29 (runs, take-backs and new events of one
    entity mixed in a batch): every figure is the oracle's, the entities a clean worker's; partial refolds (of the
    events that are not members) and take-backs both ran."""
    from streams import engine

    kinds = {"partial": 0, "whole": 0}
    real = engine._partial

    def counted(*args: Any) -> bool:
        partial = real(*args)
        kinds["partial" if partial else "whole"] += 1
        return partial

    monkeypatch.setattr(engine, "_partial", counted)
    events = _day(0.2, seed=seed)
    _revised_in_batches(Worker(), events, 29)
    assert kinds["partial"] > 10 and kinds["whole"] >= 1, kinds


@pytest.mark.parametrize("session_first", [True, False])
def test_a_partial_refold_and_a_take_back_of_one_mentor_in_one_batch_move_every_figure_once(
        session_first: bool) -> None:
    """A mentor's session retracted (a partial refold: sessions are not members) and one of the mentor's assignments
    retracted (taken back alone) in one batch, in either order: the refold starts from the state as the take-back
    left it, so the pool's figures (sessions, minutes, seekers assigned) move once each, as for a worker that saw
    only the events left standing."""
    events = _day(0.0, seed=3)
    mentor = next(e.subject for e in events if e.type == "mentoring.mentor_registered"
                  and sum(x.subject == e.subject and x.type == "mentoring.session_held" for x in events) >= 2
                  and sum(x.subject == e.subject and x.type == "mentoring.mentor_assigned" for x in events) >= 2)
    session = next(e for e in events if e.subject == mentor and e.type == "mentoring.session_held")
    assigned = next(e for e in events if e.subject == mentor and e.type == "mentoring.mentor_assigned")
    worker = Worker()
    worker.send(_records(events))
    revisions = [retraction(session, event_id=str(uuid.uuid4())), retraction(assigned, event_id=str(uuid.uuid4()))]
    worker.send(_records(revisions if session_first else revisions[::-1]))
    assert not worker.dlq, _rejects(worker)
    clean = Worker()
    clean.send(_records([e for e in events if e is not session and e is not assigned]))
    assert _entities(worker) == _entities(clean)
    assert worker.totals() == clean.totals()
    _oracle_matches(worker, [*events, *revisions])


def test_refused_and_replayed_revisions_around_a_partial_refold_lose_none_of_the_good_events() -> None:
    """One batch around a partial refold (the fair's closing retracted): a retraction of an unknown event, another
    university's retraction of the fair's scheduling, a check-in taken back, a new check-in, the rescheduling
    corrected, and the closing's retraction sent again. The unknown one is ``not_revisable`` (tables agent), the
    foreign one ``not_owner`` and the re-sent one ``duplicate`` (ingest); the rest is what a worker that saw only the
    good events would hold, and the record published for the fair is the same."""
    others, checkins = _fair_with_history(50)
    scheduled, moved, closed = others
    worker = Worker()
    worker.send(_records(others + checkins[:40]))
    unknown = retraction(closed, event_id=str(uuid.uuid4())).model_dump(mode="json")
    unknown["data"]["event_id"] = str(uuid.uuid4())
    foreign = retraction(scheduled, event_id=str(uuid.uuid4())).model_dump(mode="json")
    foreign["source"] = "swu" if scheduled.source != "swu" else "scu"
    renamed = moved.model_copy(update={"data": moved.data.model_copy(update={"name": "Renamed fair"})})
    unclosed = retraction(closed, event_id=str(uuid.uuid4()))
    batch: list[Event] = [unclosed, EventRetracted.model_validate(unknown), EventRetracted.model_validate(foreign),
                          retraction(checkins[2], event_id=str(uuid.uuid4())), checkins[40],
                          correction(moved, renamed, event_id=str(uuid.uuid4())), unclosed, *checkins[41:]]
    worker.send(_records(batch))
    assert sorted(r for r, _ in _rejects(worker)) == ["duplicate", "not_owner", "not_revisable"]
    clean = Worker()
    clean.send(_records([scheduled, renamed] + [c for c in checkins if c is not checkins[2]]))
    assert _entities(worker) == _entities(clean)
    assert _published(worker)["fairs"] == _published(clean)["fairs"] and worker.totals() == clean.totals()
