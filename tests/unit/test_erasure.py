"""Erasing a job seeker (PIPL) on the worker's own pure batch path (streams.batch, dict tables), checked
against the independent oracle (infra.oracle):

- after the erasure no table key or value names the seeker (their check-ins, offers, hires, assignments and
  1-1-3-1 state are renamed to an anonymous token), their own 1-1-3-1 record is a tombstone on the
  aggregated topic, and every figure (alliance totals, per-fair, per-posting, windows) is what it was;
- an event naming the seeker that arrives afterwards is refused (``erased_seeker``) with a redacted DLQ copy,
  and changes nothing; a re-sent or replayed erasure changes nothing; only the seeker's own university may
  ask.
"""

from __future__ import annotations

import json
import random
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from core.partitioning import key_partition
from events import wire
from events.base import Event
from events.codec import encode, from_dict, plain
from events.corrections import EventRetracted, EventRetractedData
from events.privacy import minted_by, named_seekers, seeker_digest
from events.simulator import alliance_day
from events.topics import DLQ_TOPIC, EVENT_PARTITIONS, ingest_topic
from infra.oracle import expected_aggregates
from streams import batch as pure
from streams import erasure
from streams.domains.base import LOG_FIELD
from streams.store import value_bytes
from tests.data.samples import most_active_seekers
from tests.pure_worker import NOW, Worker


def _day(seed: int) -> list[Event]:
    return [r.event for r in alliance_day(seed=seed, scale=0.05, duplicate_rate=0.0, invalid_rate=0.0,
                                          spoofed_rate=0.0, foreign_rate=0.0) if r.kind == "valid" and r.event]


def _records(events: Iterable[Event]) -> list[tuple[str, bytes, bytes]]:
    return [(ingest_topic(e.source), e.key, encode(e)) for e in events]


def _event(source: str, etype: str, data: dict[str, Any], at: datetime = NOW) -> Event:
    return from_dict({"event_id": str(uuid.uuid4()), "type": etype, "source": source,
                      "occurred_at": (at - timedelta(minutes=5)).isoformat(), "schema_version": 1, "data": data})


def erasure_request(seeker: str, source: str | None = None) -> Event:
    owner = minted_by(seeker)
    assert owner is not None
    return _event(source or owner[0], "services.seeker_erasure_requested", {"seeker_id": seeker})


def _figures(worker: Worker) -> tuple[dict[str, Any], dict[tuple[str, bytes], Any]]:
    """Alliance totals, and the newest per-entity record of every aggregated topic (values, not times)."""
    per_entity = {k: (json.loads(v)["value"] if v is not None else None) for k, v in worker.agg.items()}
    return worker.totals(), per_entity


def _oracle_matches(worker: Worker, applied: list[Event]) -> None:
    expected = expected_aggregates(applied)
    totals = worker.totals()
    assert totals["windows"] == {k: {"events": v["events"]} for k, v in expected["windows"].items()}
    guarantee = expected["service-guarantee"]["scope=alliance"]
    assert totals["service-guarantee"]["scope=alliance"]["seekers"] == guarantee["seekers"]
    assert totals["postings-by-segment"] == expected["postings-by-segment"]
    seekers = {k.decode(): json.loads(v)["value"] for (t, k), v in worker.agg.items()
               if t == "alliance.agg.seeker-guarantee" and v is not None}
    assert seekers.keys() == expected["seeker-guarantee"].keys()
    fairs = {k.decode(): json.loads(v)["value"] for (t, k), v in worker.agg.items() if t == "alliance.agg.fairs"}
    assert {f: {n: v[n] for n in ("booths", "distinct_checkins", "onsite_offers")} for f, v in fairs.items()} == \
        {f: {n: v[n] for n in ("booths", "distinct_checkins", "onsite_offers")} for f, v in expected["fairs"].items()}
    funnels = {k.decode(): json.loads(v)["value"] for (t, k), v in worker.agg.items()
               if t == "alliance.agg.posting-funnel"}
    for pid, value in expected["posting-funnel"].items():
        assert {n: funnels[pid][n] for n in value} == value, pid


def _names_anywhere(worker: Worker, seeker: str) -> list[str]:
    found = []
    for name, table in worker.tables.items():
        for key, value in table.items():
            if seeker in key or seeker in json.dumps(value):
                found.append(f"{name}: {key}")
    found += [f"agg {t} {k!r}" for (t, k), v in worker.agg.items()
              if v is not None and (seeker.encode() in k or seeker.encode() in v)]
    return found


def test_an_erasure_removes_the_seeker_everywhere_and_changes_no_figure() -> None:
    day = _day(seed=9)
    worker = Worker()
    worker.send(_records(day))
    erased = most_active_seekers(day, 6)
    assert all(_names_anywhere(worker, s) for s in erased)
    before = _figures(worker)
    requests = [erasure_request(s) for s in erased]
    ingested, _ = worker.send(_records(requests))
    assert sum(ingested.ingested.values()) == len(requests) and not worker.dlq
    assert len(ingested.routed) == len(requests) * 4 * 6  # every partition of every family topic
    for seeker in erased:
        assert _names_anywhere(worker, seeker) == [], seeker
        assert worker.agg[("alliance.agg.seeker-guarantee", f"seeker:{seeker}".encode())] is None  # tombstone
    totals, per_entity = _figures(worker)
    assert totals == before[0]  # every alliance figure, windows too (an erasure is not counted as an event)
    assert {k: v for k, v in per_entity.items() if v is not None} == \
        {k: v for k, v in before[1].items() if k[1].decode().removeprefix("seeker:") not in erased}
    _oracle_matches(worker, day + requests)
    # the anonymous token carries the seeker's counts: one token per request, never the pseudonym's digest
    tokens = {erasure.token(r) for r in requests}
    states = worker.tables[pure.STATES]
    assert {k for k in states if k.startswith("seeker:erased.") and "|" not in k} == {f"seeker:{t}" for t in tokens}
    assert not any(seeker_digest(s) in t for s in erased for t in tokens)

    # a re-sent request (same id: a duplicate) and a new request for the same seeker change nothing
    snapshot = dict(states)
    worker.send(_records([requests[0], erasure_request(erased[0])]))
    assert states == snapshot and _figures(worker) == (totals, per_entity)
    assert [dict(h)[wire.DLQ_REASON] for _, _, h in worker.dlq] == [b"duplicate"]


def test_events_after_the_erasure_are_refused_and_redacted_and_replays_change_nothing() -> None:
    day = _day(seed=11)
    worker = Worker()
    day_canonical = worker.send(_records(day))[0].records
    erased = most_active_seekers(day, 3)
    requests = [erasure_request(s) for s in erased]
    erasure_copies = worker.send(_records(requests))[0].routed
    figures = _figures(worker)
    fair = next(e for e in day if e.type == "jobfair.scheduled")
    posting = next(e for e in day if e.type == "recruitment.job_posted")
    mentor = next(e for e in day if e.type == "mentoring.mentor_registered")
    other = next(s for s in most_active_seekers(day, 40) if s not in erased)
    late = []
    for i, seeker in enumerate(erased):
        late += [
            _event(fair.source, "jobfair.student_checked_in", {"fair_id": fair.data.fair_id, "seeker_id": seeker}),
            _event(posting.source, "recruitment.application_submitted", {
                "posting_id": posting.data.posting_id, "application_id": f"late-{i}", "seeker_id": seeker,
                "degree": "bachelor"}),
            _event(mentor.source, "mentoring.session_held", {  # names an erased seeker beside another one
                "mentor_id": mentor.data.mentor_id, "session_id": f"late-s{i}", "topic": "interview_skills",
                "seeker_ids": [other, seeker], "duration_minutes": 30}),
            _event("scu", "services.policy_briefing_delivered", {"seeker_id": seeker, "briefing_id": f"late-b{i}",
                                                                 "topic": "policy"}),
        ]
    ingested, _ = worker.send(_records(late))
    assert sum(ingested.ingested.values()) == len(late)  # valid at the ingest: the tables stage knows
    reasons = [dict(h)[wire.DLQ_REASON] for _, _, h in worker.dlq]
    assert reasons == [b"erased_seeker"] * len(late)
    for key, value, headers in worker.dlq:  # redacted: sizes and digests only, the university to tell
        assert key is None and value is None
        h = dict(headers)
        assert h[wire.DLQ_UNIVERSITY].decode() in {e.source for e in late} and "x-alliance-value-sha256" in h
        assert not any(s.encode() in v for s in erased for v in h.values())
    assert _figures(worker) == figures
    _oracle_matches(worker, day + requests + late)
    # a replay of the tables stage (a worker re-reading uncommitted records after a crash): the erasure
    # copies and the day's events naming the seekers, applied before the erasure, change nothing and send
    # nothing to the DLQ; the late events, never applied, are refused again
    replay = [pure.Raw(t, p, 10_000_000 + i, None, k, v) for i, (t, p, k, v, _) in enumerate(
        [*erasure_copies, *((t, key_partition(k or b"", EVENT_PARTITIONS), k, v, h) for t, k, v, h in day_canonical
                            if any(s.encode() in v for s in erased))])]
    assert len(replay) > len(erasure_copies)
    states, dlq = dict(worker.tables[pure.STATES]), len(worker.dlq)
    again = pure.tables(replay, worker.domains, worker.read_states, NOW.isoformat(), str, DLQ_TOPIC)
    assert again.applied == 0 and not again.rejected and not again.records
    worker._put(again)
    assert worker.tables[pure.STATES] == states and len(worker.dlq) == dlq


def test_only_the_seekers_university_may_ask_and_the_order_inside_a_day_is_respected() -> None:
    day = _day(seed=13)
    erased = most_active_seekers(day, 4)
    owner = minted_by(erased[0])[0]  # type: ignore[index]
    stranger = next(u for u in ("scu", "cqu") if u != owner)
    worker = Worker()
    worker.send(_records(day))
    worker.send(_records([erasure_request(erased[0], source=stranger)]))
    assert [dict(h)[wire.DLQ_REASON] for _, _, h in worker.dlq] == [b"not_owner"]
    assert _names_anywhere(worker, erased[0])
    # mid-day: the first half applied, the erasure, then the rest of the day (refused where it names them)
    rng = random.Random(3)
    cut = rng.randrange(len(day) // 3, 2 * len(day) // 3)
    worker = Worker()
    requests = [erasure_request(s) for s in erased]
    worker.send(_records(day[:cut]))
    worker.send(_records(requests))
    _, tabled = worker.send(_records(day[cut:]))
    refused = [e for e in day[cut:] if set(named_seekers(e.data)) & set(erased)]
    assert refused and len(worker.dlq) == len(refused)
    for seeker in erased:
        assert _names_anywhere(worker, seeker) == []
    _oracle_matches(worker, day[:cut] + requests + day[cut:])
    assert tabled.applied == len(day) - cut - len(refused)
    assert datetime.now(UTC) >= NOW


def named_seekers_of(events: Iterable[Event]) -> list[str]:
    return sorted({s for e in events for s in named_seekers(e.data)})


def _indexes(worker: Worker, seeker: str) -> dict[str, list[str]]:
    return {k: v for k, v in worker.tables[pure.STATES].items() if k.startswith(f"seekers|{seeker}|")}


def test_a_seekers_index_grows_with_the_entities_naming_them_not_with_their_events() -> None:
    day = _day(seed=17)
    worker = Worker()
    worker.send(_records(day))
    checkins = {e.data.seeker_id: e for e in day if e.type == "jobfair.student_checked_in"}
    seeker = next(s for s in most_active_seekers(day, 50) if s in checkins)
    indexes = _indexes(worker, seeker)
    listed = [k for keys in indexes.values() for k in keys]
    assert listed and not any("|event|" in k for k in listed)  # logs are listed by their count key
    logs = [k for k in listed if k.endswith("|events")]
    states = worker.tables[pure.STATES]
    naming = [k for k, v in states.items() if "|event|" in k and seeker in json.dumps(v)]
    assert len(naming) > len(logs) > 0  # the seeker's events outnumber the logs they are in
    assert {k.rsplit("|event|", 1)[0] + "|events" for k in naming} == set(logs)
    # more events of the seeker that write no new key naming them (check-ins again at a fair they were at):
    # the index is not written again
    checkin = checkins[seeker]
    for _ in range(5):
        _, tabled = worker.send(_records([_event(checkin.source, checkin.type, checkin.data.model_dump())]))
        assert tabled.applied == 1 and not [p for p in tabled.puts if p[2].startswith("seekers|")]
    assert _indexes(worker, seeker) == indexes
    worker.send(_records([erasure_request(seeker)]))
    assert _names_anywhere(worker, seeker) == []


def _earlier_layout(worker: Worker, seekers: Iterable[str]) -> None:
    """Rewrite the tables as earlier versions kept them: each log's count on a key of its own (not in the entity's
    state), and the index of each of ``seekers`` listing every log entry naming them (not the log)."""
    states = worker.tables[pure.STATES]
    worker.count_logs_apart()
    for seeker in seekers:
        for ik, keys in _indexes(worker, seeker).items():
            old = [k for k in keys if not k.endswith("|events") or seeker in k]
            for count_key in (k for k in keys if k.endswith("|events")):
                entity = count_key.removesuffix("|events")
                old += [e for e in (f"{entity}|event|{j}" for j in range(states[count_key][0]))
                        if seeker in json.dumps(states.get(e))]
            states[ik] = sorted(set(old))


def test_tables_kept_by_an_earlier_version_still_erase_everything() -> None:
    """Logs counted on keys of their own and indexes listing every entry (earlier layouts): erasing still
    renames everything, also after more events moved some of those counts into their entities' states."""
    day = _day(seed=19)
    half = len(day) // 2
    worker = Worker()
    worker.send(_records(day[:half]))
    erased = most_active_seekers(day[:half], 3)
    _earlier_layout(worker, erased)
    states = worker.tables[pure.STATES]
    counted_apart = {k for k in states if k.endswith("|events")}
    assert counted_apart and not [v for v in states.values() if isinstance(v, dict) and LOG_FIELD in v]
    worker.send(_records(day[half:]))
    moved = {k for k in counted_apart if k not in states}  # the entity's next event moved its count
    assert moved and counted_apart - moved
    for count_key in moved:
        assert states[count_key.removesuffix("|events")][LOG_FIELD][0] >= 2
    before = _figures(worker)
    requests = [erasure_request(s) for s in erased]
    worker.send(_records(requests))
    for seeker in erased:
        assert _names_anywhere(worker, seeker) == [], seeker
    assert _figures(worker)[0] == before[0]
    _oracle_matches(worker, day + requests)


def test_the_erasure_marker_is_looked_up_only_for_a_seeker_without_an_index() -> None:
    """An index exists only for a seeker not erased on its (family, partition): an event of an indexed seeker
    reads no marker; a seeker new there, and a seeker erased there, are looked up (and the erased one refused,
    its index never written again)."""
    day = _day(seed=23)
    worker = Worker()
    worker.send(_records(day))
    read: list[str] = []
    plain = worker.read_states
    worker.read_states = lambda key, partition: (read.append(key), plain(key, partition))[1]  # type: ignore[method-assign]
    checkins = {e.data.seeker_id: e for e in day if e.type == "jobfair.student_checked_in"}
    seeker = next(s for s in most_active_seekers(day, 50) if s in checkins)
    again = checkins[seeker]
    assert _indexes(worker, seeker)
    _, tabled = worker.send(_records([_event(again.source, again.type, again.data.model_dump())]))
    assert tabled.applied == 1 and not [k for k in read if k.startswith("erased|")]
    # a seeker of the same university who never checked in at that fair's partition: looked up
    partition = next(raw.partition for raw in worker.canonical if raw.key == again.key)
    indexed_there = {k.split("|")[1] for k in worker.tables[pure.STATES]
                     if k.startswith("seekers|") and k.endswith(f"|jobfair|{partition}")}
    newcomer = next(s for s in named_seekers_of(day) if s not in indexed_there and minted_by(s) == minted_by(seeker))
    read.clear()
    _, tabled = worker.send(_records([_event(again.source, again.type,
                                             {**again.data.model_dump(), "seeker_id": newcomer})]))
    assert tabled.applied == 1 and f"erased|{seeker_digest(newcomer)}|jobfair|{partition}" in read
    worker.send(_records([erasure_request(seeker)]))
    read.clear()
    _, tabled = worker.send(_records([_event(again.source, again.type, again.data.model_dump())]))
    digest = seeker_digest(seeker)
    assert tabled.applied == 0 and [k for k in read if k.startswith(f"erased|{digest}|")]
    assert _indexes(worker, seeker) == {}


def _holds(value: Any, seeker: str) -> bool:
    """The plain rule: some text among the value's keys and values (at any depth) contains the seeker."""
    if isinstance(value, str):
        return seeker in value
    if isinstance(value, dict):
        return any(_holds(k, seeker) or _holds(v, seeker) for k, v in value.items())
    if isinstance(value, list | tuple):
        return any(_holds(v, seeker) for v in value)
    return False


def test_a_value_is_found_to_name_a_seeker_exactly_when_one_of_its_texts_holds_them() -> None:
    """The index's test on a written value (``erasure._names``, on the value's JSON) against a walk through
    it: for pseudonyms and for texts JSON escapes (quotes, backslashes, control and non-ASCII characters)."""
    rng = random.Random(29)
    seekers = ["ps.scu.dev." + "ab" * 16, 'we"ird\\one', "zh-学生-\u0007", "x"]
    alphabet = [*seekers, "ps.scu.dev.", "ab" * 16, '"', "\\", "学生", "\u0007", "we", "ird", "one", "-", " "]

    def text() -> str:
        return "".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 5)))

    def value(depth: int = 0) -> Any:
        kind = rng.randrange(5 if depth < 3 else 2)
        if kind == 0:
            return text()
        if kind == 1:
            return rng.choice([rng.randrange(100), None, True, 2.5])
        if kind == 2:
            return {text(): value(depth + 1) for _ in range(rng.randrange(3))}
        if kind == 3:
            return [value(depth + 1) for _ in range(rng.randrange(3))]
        return tuple(value(depth + 1) for _ in range(rng.randrange(3)))

    checked = named = extra = 0
    for _ in range(3000):
        v = value()
        if isinstance(v, str):
            continue  # (a plain text names the seeker only when it is the seeker: tested below)
        for seeker in seekers:
            truth, found = _holds(v, seeker), erasure._names(v, seeker)
            assert found or not truth, (v, seeker)  # never missed
            checked, named, extra = checked + 1, named + truth, extra + (found and not truth)
    assert checked > 1000 and named > 100
    assert extra <= checked // 100  # a match across two texts: rare (and harmless: one key indexed too many)
    assert erasure._names(seekers[0], seekers[0]) and not erasure._names(seekers[0] + "x", seekers[0])


def _recommendations(seeker: str, n: int, start: int = 0) -> list[Event]:
    owner = minted_by(seeker)
    assert owner is not None
    return [_event(owner[0], "services.job_recommended",
                   {"seeker_id": seeker, "recommendation_id": f"rec-{i}", "posting_id": f"{owner[0]}-job-{i}"})
            for i in range(start, start + n)]


def _applied(table: dict[str, Any], puts: Iterable[tuple[str, int, str, Any]]) -> dict[str, Any]:
    out = dict(table)
    for _, _, key, value in puts:
        if value is None:
            out.pop(key, None)
        else:
            out[key] = plain(value)
    return out


@pytest.mark.parametrize("layout", ["current", "earlier", "retracted", "paged"])
def test_an_erasure_copy_run_again_from_any_prefix_of_its_writes_ends_as_the_whole(
        layout: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """An erasure too large for one changelog record batch is made durable in parts (streams.batch.resumable_parts):
    a crash may leave any prefix of its writes, and the replay of the copy must complete it. For every copy of a
    request and every prefix of its writes, the copy run again on the table that prefix left ends in exactly the
    table the whole erasure leaves (its own 1-1-3-1 state and log renamed first, the marker last), in the current
    layout, in the earlier one (logs counted apart, indexes listing entries), with every event of the seeker's
    own 1-1-3-1 entity retracted (no state; the log's count on a key of its own), and with the seeker's index on
    several pages (streams.erasure.Listing; pages of 4 keys here)."""
    if layout == "paged":
        monkeypatch.setattr(erasure, "PAGE_KEYS", 4)
    day = _day(seed=31)
    worker = Worker()
    worker.send(_records(day))
    seeker = most_active_seekers(day, 1)[0]
    recommended = _recommendations(seeker, 25)
    worker.send(_records(recommended))  # a long log of the seeker's own entity
    if layout == "earlier":
        _earlier_layout(worker, [seeker])
    if layout == "paged":  # (the further pages' keys end in their number)
        assert len([k for k in _indexes(worker, seeker) if k.count("|") == 4]) > 4
    if layout == "retracted":
        own = [e for e in day + recommended if e.type.startswith("services.") and e.key == seeker.encode()]
        worker.send(_records([EventRetracted(source=e.source, occurred_at=NOW - timedelta(minutes=1),
                                             data=EventRetractedData(event_id=e.event_id, type=e.type,
                                                                     subject=seeker, reason="entered twice"))
                              for e in own]))
        assert f"seeker:{seeker}" not in worker.tables[pure.STATES] and not worker.dlq
        assert worker.tables[pure.STATES][f"seeker:{seeker}|events"][0] == len(own)
    ingested = pure.ingest([pure.Raw(ingest_topic(minted_by(seeker)[0]), 0, 10**6, None,  # type: ignore[index]
                                     *_records([erasure_request(seeker)])[0][1:])],
                           worker.university_of, worker.tables[pure.SEEN].get, NOW, str, DLQ_TOPIC)
    copies = worker._consumed(ingested, "alliance.events.", EVENT_PARTITIONS)
    assert len(copies) == 4 * EVENT_PARTITIONS
    base = dict(worker.tables[pure.STATES])

    def run(table: dict[str, Any], copy: pure.Raw) -> pure.TablesWrites:
        return pure.tables([copy], worker.domains, lambda key, partition: table.get(key), NOW.isoformat(), str,
                           DLQ_TOPIC)

    resumed = 0
    for copy in copies:
        whole = run(base, copy)
        assert whole.resumable and not whole.rejected
        final = _applied(base, whole.puts)
        for k in range(len(whole.puts) + 1):
            left = _applied(base, whole.puts[:k])
            assert _applied(left, run(left, copy).puts) == final, (copy.topic, copy.partition, k)
            resumed += 1
    # (the seeker's own entity alone: 25 members and a log of 25 renamed; retracted: its log's count and the rest)
    assert resumed > (150 if layout != "retracted" else 50)
    everything = _applied(base, [p for copy in copies for p in run(base, copy).puts])
    assert not [k for k, v in everything.items() if seeker in k or seeker in json.dumps(v)]


def _index_bytes(puts: Iterable[tuple[str, int, str, Any]], seeker: str) -> int:
    return sum(len(value_bytes(value)) for _, _, key, value in puts
               if key.startswith(f"seekers|{seeker}|") and value is not None)


@pytest.mark.parametrize("history", ["paged", "one list first"])
def test_a_seeker_flooded_with_events_has_an_index_written_in_bounded_pages_and_is_still_erased(
        history: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A seeker whose events keep adding keys naming them on one partition (job recommendations to one student: a
    member key of their own 1-1-3-1 entity each): each event adds its keys to the last page of the index (pages
    of streams.erasure.PAGE_KEYS), so what it writes to the index stays bounded however long the seeker's history
    (before, the whole index was written again: quadratic, ~700 MB for 4,000 events one per batch, and past
    ~10,000 keys each further event was refused). The erasure still renames every key and deletes every page,
    and every figure is the oracle's. ``one list first``: the seeker's first keys were listed by an earlier version
    (one list, here longer than a page), which is cut into pages once, when the first further page begins."""
    day = _day(seed=37)
    worker = Worker()
    worker.send(_records(day))
    seeker = most_active_seekers(day, 1)[0]
    earlier = _recommendations(seeker, 2 * erasure.PAGE_KEYS) if history == "one list first" else []
    if earlier:
        page_keys = erasure.PAGE_KEYS
        monkeypatch.setattr(erasure, "PAGE_KEYS", 10**9)
        worker.send(_records(earlier))
        monkeypatch.setattr(erasure, "PAGE_KEYS", page_keys)
        assert [len(v) for v in _indexes(worker, seeker).values() if len(v) > page_keys]  # (one long list)
    flood = _recommendations(seeker, 5 * erasure.PAGE_KEYS, start=len(earlier))
    written = []
    for event in flood:  # one per batch: the worst case (a batch writes each key once)
        _, tabled = worker.send(_records([event]))
        assert tabled.applied == 1 and not worker.dlq
        written.append(_index_bytes(tabled.puts, seeker))
    longest = max(len(k) for k in worker.tables[pure.STATES] if seeker in k)
    page = len(value_bytes([" " * longest] * erasure.PAGE_KEYS)) + 64  # (a first page also counts the pages)
    if earlier:  # (the earlier list is cut into pages once: when the first further page begins)
        written.remove(max(written))
    assert max(written) <= 2 * page, (max(written), page)  # (at most a last page and the first, which counts them)
    assert sum(written[-erasure.PAGE_KEYS:]) <= 1.5 * sum(written[-2 * erasure.PAGE_KEYS:-erasure.PAGE_KEYS])
    pages = _indexes(worker, seeker)
    assert len(pages) >= 4  # (the index key and at least 3 further pages, on the seeker's own partition)
    listed = [k for v in pages.values() for k in (v["keys"] if isinstance(v, dict) else v)]
    assert len(listed) == len(set(listed)) >= len(earlier + flood)
    request = erasure_request(seeker)
    worker.send(_records([request]))
    assert _names_anywhere(worker, seeker) == [] and _indexes(worker, seeker) == {}
    _oracle_matches(worker, day + earlier + flood + [request])
    _, tabled = worker.send(_records(_recommendations(seeker, 1)))
    assert tabled.applied == 0 and worker.dlq  # (refused: erased_seeker)
