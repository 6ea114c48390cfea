"""Publish order and noise: reordering, duplicates, spoofed and invalid records (what a sloppy university
system sends)."""


from __future__ import annotations

import json
import random
from collections.abc import Callable, Sequence
from datetime import date, timedelta
from typing import Any

from events import jobfair as jf
from events import recruitment as rc
from events.base import Event
from events.codec import decode
from events.errors import EventValidationError
from events.jobfair import (
    JobFairClosed,
    StudentCheckedIn,
)
from events.mentoring import MentoringSessionHeld
from events.recruitment import (
    EmployerFlagged,
    JobPosted,
    JobPostingClosed,
    JobPostingUpdated,
    OfferAccepted,
    OfferMade,
)
from events.reference import UNIVERSITIES
from events.services import (
    PolicyBriefingDelivered,
)
from events.simulator.world import LOCAL_TZ, Record, _event_id
from events.topics import ingest_topic

# --------------------------------------------------------------------------------------------------
# publish order and noise
# --------------------------------------------------------------------------------------------------


def entity_of(event: Event) -> tuple[str, str]:
    """The entity an event is about: (family, subject). Causal order holds per entity."""
    return event.family, str(event.subject)


def valid_record(event: Event) -> Record:
    """The record a university publishes for one of its own events."""
    return Record(ingest_topic(event.source), event.key, event.to_json(), "valid", event)


def _offer_id(event: Event) -> str | None:
    offer_id: str | None = getattr(event.data, "offer_id", None)
    return offer_id


def _forced_moves(events: Sequence[Event], later: dict[int, list[int]]) -> list[tuple[int, int]]:
    """The three textbook cases, when the day has them: update after close, check-in after the fair
    closed, OfferMade after its OfferAccepted. Returns (mover, anchor) index pairs."""
    pairs: list[tuple[int, int]] = []
    rules: list[tuple[type[Event], Callable[[Event, Event], bool]]] = [
        (JobPostingUpdated, lambda _m, a: isinstance(a, JobPostingClosed)),
        (StudentCheckedIn, lambda _m, a: isinstance(a, JobFairClosed)),
        (OfferMade, lambda m, a: isinstance(a, OfferAccepted) and _offer_id(a) == _offer_id(m)),
    ]
    for cls, fits in rules:
        for i, e in enumerate(events):
            if isinstance(e, cls):
                anchor = next((j for j in later.get(i, ()) if fits(e, events[j])), None)
                if anchor is not None:
                    pairs.append((i, anchor))
                    break
    return pairs


def reorder(rng: random.Random, events: Sequence[Event], rate: float) -> list[Event]:
    """Move about ``rate * len(events)`` events to just after a causally later event of the same entity."""
    count = round(len(events) * rate)
    if count <= 0:
        return list(events)
    by_entity: dict[tuple[str, str], list[int]] = {}
    for i, e in enumerate(events):
        by_entity.setdefault(entity_of(e), []).append(i)
    later = {idx[k]: idx[k + 1:] for idx in by_entity.values() for k in range(len(idx) - 1)}
    moves = dict(_forced_moves(events, later)[:count])
    reserved = set(moves) | set(moves.values())
    pool = [i for i in later if i not in reserved]
    movers = rng.sample(pool, min(len(pool), count - len(moves)))
    moving = set(movers) | set(moves)
    for i in movers:
        anchors = [j for j in later[i] if j not in moving]
        if anchors:
            moves[i] = anchors[-1] if rng.random() < 0.4 else rng.choice(anchors)
    attached: dict[int, list[int]] = {}
    for mover in sorted(moves):
        attached.setdefault(moves[mover], []).append(mover)
    out: list[Event] = []
    for i, e in enumerate(events):
        if i in moves:
            continue
        out.append(e)
        out.extend(events[m] for m in attached.get(i, ()))
    return out


def _spoof(rng: random.Random, event: Event) -> Record:
    """The same event re-sent (new event id) by another member on its own ingest topic."""
    fake = event.model_copy(update={"event_id": _event_id(rng)})
    victim_topic = ingest_topic(rng.choice([u for u in UNIVERSITIES if u != event.source]))
    return Record(victim_topic, fake.key, fake.to_json(), "spoofed", fake)


def _foreign(rng: random.Random, event: Event, day: date) -> Record | None:
    """Another member, on its own ingest topic and under its own name, closes or updates ``event``'s posting,
    closes its fair or inflates its mentor's sessions (the ownership attack; the ingest says ``not_owner``)."""
    attacker = rng.choice([u for u in UNIVERSITIES if u != event.source])
    at = event.occurred_at
    fake: Event
    if isinstance(event, rc.JobPosted):
        if rng.random() < 0.5:
            fake = rc.JobPostingClosed(source=attacker, occurred_at=at, data=rc.JobPostingClosedData(
                posting_id=event.data.posting_id, reason=rc.CloseReason.WITHDRAWN))
        else:
            fake = rc.JobPostingUpdated(source=attacker, occurred_at=at, data=rc.JobPostingUpdatedData(
                posting_id=event.data.posting_id, positions=10_000))
    elif isinstance(event, jf.JobFairScheduled):
        fake = jf.JobFairClosed(source=attacker, occurred_at=at, data=jf.JobFairClosedData(fair_id=event.data.fair_id))
    else:
        return None
    fake = fake.model_copy(update={"event_id": _event_id(rng)})
    return Record(ingest_topic(attacker), fake.key, fake.to_json(), "foreign", fake)


def insert_noise(rng: random.Random, base: list[Record], noise: list[tuple[int, Record]]) -> list[Record]:
    """Insert each (slot, record) of ``noise`` before ``base[slot]`` (slot == len(base): at the end)."""
    by_slot: dict[int, list[Record]] = {}
    for slot, record in noise:
        by_slot.setdefault(slot, []).append(record)
    out: list[Record] = []
    for slot in range(len(base) + 1):
        out.extend(by_slot.get(slot, ()))
        if slot < len(base):
            out.append(base[slot])
    return out


def later_slot(rng: random.Random, index: int, n: int) -> int:
    """A slot after ``base[index]``: mostly a quick retry (within 50 records), sometimes a late replay."""
    if rng.random() < 0.7:
        return rng.randint(index + 1, min(n, index + 50))
    return rng.randint(index + 1, n)


def noise(rng: random.Random, base: list[Record], *, day: date, duplicate_rate: float, invalid_rate: float,
          spoofed_rate: float, foreign_rate: float = 0.0) -> list[tuple[int, Record]]:
    """Duplicates, invalid, spoofed and foreign records, each with the slot it is published in."""
    n = len(base)
    out: list[tuple[int, Record]] = []
    for i in rng.sample(range(n), min(n, round(n * duplicate_rate))):
        out.append((later_slot(rng, i, n), Record(base[i].topic, base[i].key, base[i].value, "duplicate",
                                                   base[i].event)))
    for _ in range(round(n * invalid_rate)):
        template = base[rng.randrange(n)].event
        assert template is not None
        out.append((rng.randint(0, n), invalid_record(rng, template, day)))
    for _ in range(round(n * spoofed_rate)):
        i = rng.randrange(n)
        template = base[i].event
        assert template is not None
        out.append((later_slot(rng, i, n), _spoof(rng, template)))
    targets = [i for i, b in enumerate(base) if isinstance(b.event, rc.JobPosted | jf.JobFairScheduled)]
    for _ in range(round(n * foreign_rate) if targets else 0):
        i = rng.choice(targets)
        template = base[i].event
        assert template is not None
        if (record := _foreign(rng, template, day)) is not None:
            out.append((later_slot(rng, i, n), record))
    return out


# --------------------------------------------------------------------------------------------------
# invalid records: what a sloppy university system sends
# --------------------------------------------------------------------------------------------------

Mutation = tuple[bytes, bytes]  # (key, value)
Mutator = Callable[[random.Random, Event, dict[str, Any], date], Mutation | None]


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj, ensure_ascii=False).encode()


def _m_truncated(rng: random.Random, ev: Event, obj: dict[str, Any], day: date) -> Mutation | None:
    value = ev.to_json()
    return ev.key, value[: rng.randint(len(value) // 3, len(value) - 2)]


def _m_csv_line(rng: random.Random, ev: Event, obj: dict[str, Any], day: date) -> Mutation | None:
    return b"", ",".join((ev.type, ev.source, str(ev.subject), ev.occurred_at.isoformat())).encode()


def _m_batch_array(rng: random.Random, ev: Event, obj: dict[str, Any], day: date) -> Mutation | None:
    return ev.key, _dumps([obj])


def _m_gbk(rng: random.Random, ev: Event, obj: dict[str, Any], day: date) -> Mutation | None:
    if "title" not in obj["data"] and "employer_name" not in obj["data"]:
        return None
    obj["data"]["title" if "title" in obj["data"] else "employer_name"] = "软件开发工程师（成渝双城）"
    return ev.key, json.dumps(obj, ensure_ascii=False).encode("gbk")


def _m_epoch_time(rng: random.Random, ev: Event, obj: dict[str, Any], day: date) -> Mutation | None:
    obj["occurred_at"] = int(ev.occurred_at.timestamp())
    return ev.key, _dumps(obj)


def _m_naive_time(rng: random.Random, ev: Event, obj: dict[str, Any], day: date) -> Mutation | None:
    obj["occurred_at"] = ev.occurred_at.astimezone(LOCAL_TZ).replace(tzinfo=None).isoformat()
    return ev.key, _dumps(obj)


def _m_string_number(rng: random.Random, ev: Event, obj: dict[str, Any], day: date) -> Mutation | None:
    for name in ("positions", "salary_monthly", "positions_offered", "duration_minutes", "salary_min"):
        if obj["data"].get(name) is not None:
            obj["data"][name] = f"{obj['data'][name]}"
            return ev.key, _dumps(obj)
    obj["schema_version"] = "1"
    return ev.key, _dumps(obj)


_BAD_ENUMS = {"industry": "blockchain", "city": "beijing", "employer_type": "family_business",
              "expertise": "networking", "kind": "part_time", "reason": "cancelled", "degree": "phd",
              "severity": "banned", "topic": "soft_skills"}


def _m_bad_enum(rng: random.Random, ev: Event, obj: dict[str, Any], day: date) -> Mutation | None:
    for name, bad in _BAD_ENUMS.items():
        if name in obj["data"] and not isinstance(ev, PolicyBriefingDelivered | EmployerFlagged):
            obj["data"][name] = bad
            return ev.key, _dumps(obj)
    obj["source"] = rng.choice(("cdut", "cqupt", "SCU "))  # not a member (or sloppily spelled)
    return ev.key, _dumps(obj)


def _m_unknown_type(rng: random.Random, ev: Event, obj: dict[str, Any], day: date) -> Mutation | None:
    obj["type"] = rng.choice((f"{ev.family}.deleted", ev.type + ".v2", "recruitment.job_reposted"))
    return ev.key, _dumps(obj)


def _m_missing_field(rng: random.Random, ev: Event, obj: dict[str, Any], day: date) -> Mutation | None:
    where, name = rng.choice((("", "source"), ("", "occurred_at"), ("", "type"), ("data", ev.key_field)))
    if where and name not in obj[where]:  # a revision's key is its envelope's subject, not a field of its data
        return None  # (another mutation is tried)
    del (obj[where] if where else obj)[name]
    if where:
        del obj["subject"]
    return ev.key, _dumps(obj)


def _m_phone(rng: random.Random, ev: Event, obj: dict[str, Any], day: date) -> Mutation | None:
    phone = f"1{rng.choice('3589')}{rng.randint(0, 9)}-{rng.randint(0, 9999):04d}-{rng.randint(0, 9999):04d}"
    for name in ("title", "employer_name", "topic", "provider", "reason", "name"):
        if isinstance(obj["data"].get(name), str) and not isinstance(ev, MentoringSessionHeld):
            obj["data"][name] = f"{obj['data'][name]} (contact HR: {phone})"
            return ev.key, _dumps(obj)
    return None


def _m_raw_student_number(rng: random.Random, ev: Event, obj: dict[str, Any], day: date) -> Mutation | None:
    raw = f"{rng.choice((2022, 2023, 2024))}{rng.randint(1, 8):02d}{rng.randint(0, 99999):05d}"
    data = obj["data"]
    if "seeker_id" in data:
        data["seeker_id"] = raw
    elif "seeker_ids" in data:
        data["seeker_ids"][0] = raw
    else:
        return None
    if ev.key_field == "seeker_id":
        obj["subject"] = raw
        return raw.encode(), _dumps(obj)
    return ev.key, _dumps(obj)


def _m_student_name(rng: random.Random, ev: Event, obj: dict[str, Any], day: date) -> Mutation | None:
    if "seeker_id" not in obj["data"]:
        return None
    obj["data"]["student_name"] = rng.choice(("Zhang Wei", "Li Na", "Wang Fang", "Liu Yang"))
    return ev.key, _dumps(obj)


def _m_subject_mismatch(rng: random.Random, ev: Event, obj: dict[str, Any], day: date) -> Mutation | None:
    obj["subject"] = f"{obj['subject']}-x"[:80] if not str(obj["subject"]).startswith("ps") else "ps_" + "0" * 32
    if obj["subject"] == str(ev.subject):
        obj["subject"] = "ps_" + "1" * 32
    return ev.key, _dumps(obj)


def _m_posting_rules(rng: random.Random, ev: Event, obj: dict[str, Any], day: date) -> Mutation | None:
    if not isinstance(ev, JobPosted):
        return None
    data = obj["data"]
    if rng.random() < 0.5:
        data["salary_min"], data["salary_max"] = data["salary_max"] + 1000, data["salary_min"]
    else:
        data["deadline"] = (day - timedelta(days=3)).isoformat()
    return ev.key, _dumps(obj)


def _m_oversized(rng: random.Random, ev: Event, obj: dict[str, Any], day: date) -> Mutation | None:
    obj["data"]["attachment"] = "data:application/pdf;base64," + "QUJD" * 4500
    return ev.key, _dumps(obj)


MUTATORS: tuple[Mutator, ...] = (
    _m_truncated, _m_csv_line, _m_batch_array, _m_gbk, _m_epoch_time, _m_naive_time, _m_string_number,
    _m_bad_enum, _m_unknown_type, _m_missing_field, _m_phone, _m_raw_student_number, _m_student_name,
    _m_subject_mismatch, _m_posting_rules, _m_oversized,
)


def _fails_decode(value: bytes) -> bool:
    try:
        decode(value)
    except EventValidationError:
        return True
    return False


def invalid_record(rng: random.Random, template: Event, day: date) -> Record:
    """A broken record derived from ``template`` by one of MUTATORS (it is checked to fail decode)."""
    topic = ingest_topic(template.source)
    for mutator in rng.sample(MUTATORS, len(MUTATORS)):
        result = mutator(rng, template, json.loads(template.to_json()), day)
        if result is not None and _fails_decode(result[1]):
            return Record(topic, result[0], result[1], "invalid", None)
    raise AssertionError(f"no mutation of {template.type} fails decoding")  # pragma: no cover


