"""The event contract: round trips, strict validation with named fields, pseudonymisation."""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable
from typing import Any

import pytest

from events.base import MAX_EVENT_BYTES
from events.codec import ALL_EVENTS, EVENT_TYPES, decode, encode, family_of, from_dict
from events.errors import EventValidationError
from events.privacy import minted_by, pseudonymise
from events.simulator.world import NOT_SIMULATED
from tests.data.samples import SAMPLE_UNIVERSITIES, one_of_each_type, semester

EXAMPLES = one_of_each_type()
Mutation = Callable[[dict[str, Any]], None]


def fields_of(record: dict[str, Any]) -> set[str]:
    with pytest.raises(EventValidationError) as info:
        from_dict(record)
    return {p.field for p in info.value.problems}


def example(event_type: str) -> dict[str, Any]:
    return copy.deepcopy(EXAMPLES[event_type])


def test_the_samples_cover_every_event_type_and_family() -> None:
    assert set(EXAMPLES) == set(EVENT_TYPES)
    assert len(ALL_EVENTS) == 24
    assert {family_of(t) for t in EVENT_TYPES} == {"recruitment", "jobfair", "mentoring", "services", "corrections"}


@pytest.mark.parametrize("event_type", sorted(EVENT_TYPES))
def test_every_event_type_round_trips(event_type: str) -> None:
    event = from_dict(example(event_type))
    raw = encode(event)
    again = decode(raw)
    assert again == event
    assert encode(again) == raw
    assert type(again) is EVENT_TYPES[event_type]
    assert again.family == family_of(event_type)
    assert again.key == str(getattr(again.data, again.key_field)).encode()  # subject filled from the payload


def test_every_sample_of_every_university_is_valid() -> None:
    for university in SAMPLE_UNIVERSITIES:
        events = [from_dict(e) for e in semester(university)]
        assert {e.source for e in events} == {university}
        assert {e.type for e in events} == set(EVENT_TYPES) - NOT_SIMULATED  # (an erasure: one_of_each_type)


def _set(path: str, value: Any) -> Mutation:
    def mutate(record: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node = record
        for p in parents:
            node = node[p]
        node[last] = value
    return mutate


def _delete(path: str) -> Mutation:
    def mutate(record: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node = record
        for p in parents:
            node = node[p]
        del node[last]
    return mutate


POSTED = "recruitment.job_posted"
FAIR = "jobfair.scheduled"
APPLIED = "recruitment.application_submitted"
SESSION = "mentoring.session_held"
PHONE_TEXTS = ["请联系 13812345678", "电话：+86 138-1234-5678", "call 86 15912345678 now"]

INVALID: list[tuple[str, str, Mutation, set[str]]] = [
    ("unknown payload field", POSTED, _set("data.salary_currency", "CNY"), {"data.salary_currency"}),
    ("unknown envelope field", POSTED, _set("priority", "high"), {"priority"}),
    ("string for int", POSTED, _set("data.positions", "3"), {"data.positions"}),
    ("float for int", POSTED, _set("data.salary_min", 9000.5), {"data.salary_min"}),
    ("bad industry", POSTED, _set("data.industry", "mining"), {"data.industry"}),
    ("bad city", POSTED, _set("data.city", "beijing"), {"data.city"}),
    ("bad degree", APPLIED, _set("data.degree", "phd"), {"data.degree"}),
    ("bad employer type", POSTED, _set("data.employer_type", "family_business"), {"data.employer_type"}),
    ("deadline before posting", POSTED, _set("data.deadline", "2024-12-31"), {"data.deadline"}),
    ("salary range reversed", POSTED, _set("data.salary_max", 10), {"data.salary_min"}),
    ("fair ends before it starts", FAIR, _set("data.ends_at", "2025-01-01T08:00:00+08:00"), {"data.ends_at"}),
    ("year 1900", POSTED, _set("occurred_at", "1900-03-01T09:00:00+08:00"), {"occurred_at"}),
    ("february 30", POSTED, _set("data.deadline", "2026-02-30"), {"data.deadline"}),
    ("naive timestamp", POSTED, _set("occurred_at", "2025-03-01T09:00:00"), {"occurred_at"}),
    ("oversized title", POSTED, _set("data.title", "x" * 201), {"data.title"}),
    ("oversized description", POSTED, _set("data.description", "描" * 2001), {"data.description"}),
    ("empty title", POSTED, _set("data.title", "   "), {"data.title"}),
    ("raw student number", APPLIED, _set("data.seeker_id", "2021141460123"), {"data.seeker_id"}),
    ("raw student number in a list", SESSION, _set("data.seeker_ids", ["2021141460123"]), {"data.seeker_ids.0"}),
    ("subject mismatch", POSTED, _set("subject", "scu-post-9999"), {"subject"}),
    ("unknown type", POSTED, _set("type", "recruitment.job_teleported"), {"type"}),
    ("missing type", POSTED, _delete("type"), {"type"}),
    ("unknown university", POSTED, _set("source", "pku"), {"source"}),
    ("unknown host university", FAIR, _set("data.host_university", "pku"), {"data.host_university"}),
    ("missing required field", POSTED, _delete("data.title"), {"data.title"}),
    ("future schema version", POSTED, _set("schema_version", 2), {"schema_version"}),
    ("bad entity id", POSTED, _set("data.posting_id", "Has Spaces"), {"data.posting_id"}),
] + [(f"phone number {i}", POSTED, _set("data.description", t), {"data.description"})
     for i, t in enumerate(PHONE_TEXTS)]


@pytest.mark.parametrize(("case", "event_type", "mutate", "fields"), INVALID, ids=[c[0] for c in INVALID])
def test_strict_validation_names_the_field(case: str, event_type: str, mutate: Mutation, fields: set[str]) -> None:
    record = example(event_type)
    mutate(record)
    assert fields_of(record) == fields
    # the same through the wire path (bytes) as through a mapping
    with pytest.raises(EventValidationError) as info:
        decode(json.dumps(record).encode())
    assert {p.field for p in info.value.problems} == fields


def test_every_problem_of_an_event_is_reported_not_only_the_first() -> None:
    record = example(POSTED)
    for path, value in [("data.industry", "mining"), ("data.city", "beijing"), ("data.positions", "3"),
                        ("data.extra", 1), ("occurred_at", "1900-01-01T00:00:00Z")]:
        _set(path, value)(record)
    assert fields_of(record) == {"data.industry", "data.city", "data.positions", "data.extra", "occurred_at"}


def test_payload_over_16_kib_is_rejected_in_utf8_bytes() -> None:
    record = example(POSTED)
    record["data"]["notes"] = "很" * 6000  # 6000 characters, 18000 bytes
    raw = json.dumps(record, ensure_ascii=False)
    assert len(raw) < MAX_EVENT_BYTES < len(raw.encode())
    for form in (raw, raw.encode()):
        with pytest.raises(EventValidationError) as info:
            decode(form)
        assert [p.field for p in info.value.problems] == ["event"]
        assert info.value.reason_code == "oversized"
    assert fields_of(record) == {"event"}


def test_reason_codes() -> None:
    with pytest.raises(EventValidationError) as info:
        decode(b'{"type": "recruitment.job_posted", ')
    assert info.value.reason_code == "malformed"
    record = example(POSTED)
    record["type"] = "nope"
    with pytest.raises(EventValidationError) as info:
        from_dict(record)
    assert info.value.reason_code == "unknown_type"


def test_timestamps_are_normalised_to_utc() -> None:
    event = from_dict(example(POSTED))
    assert event.occurred_at.utcoffset() is not None and event.occurred_at.utcoffset().total_seconds() == 0
    assert json.loads(encode(event))["occurred_at"].endswith("Z")


def test_models_are_frozen() -> None:
    event = from_dict(example(POSTED))
    with pytest.raises(Exception, match="frozen"):
        event.source = "cqu"  # type: ignore[misc]


KEY = "alliance-test-key-0123456789"


def test_a_pseudonym_must_name_a_member_university() -> None:
    record = example("services.seeker_erasure_requested")
    record["data"]["seeker_id"] = "ps.evil.k1." + "a" * 32  # nobody could ever ask to erase it
    record["subject"] = record["data"]["seeker_id"]
    with pytest.raises(EventValidationError) as info:
        from_dict(record)
    assert info.value.reason_code == "invalid" and "no member university" in str(info.value)
    record["data"]["seeker_id"] = record["subject"] = "ps.cqu.k1." + "a" * 32
    assert from_dict(record).data.seeker_id.startswith("ps.cqu.")  # type: ignore[attr-defined]


def test_pseudonyms_are_deterministic_keyed_and_distinct_per_university() -> None:
    p = pseudonymise("scu", "2021141460123", KEY)
    assert re.fullmatch(r"ps\.scu\.dev\.[0-9a-f]{32}", p)
    assert minted_by(p) == ("scu", "dev") and minted_by("ps_" + "a" * 32) is None
    assert pseudonymise("scu", "2021141460123", KEY, "k2026") == "ps.scu.k2026." + p.rsplit(".", 1)[1]
    with pytest.raises(ValueError, match="key id"):
        pseudonymise("scu", "2021141460123", KEY, "K-1")
    assert pseudonymise("scu", "2021141460123", KEY) == p
    assert pseudonymise("scu", " 2021141460123 ", KEY.encode()) == p  # bytes key, stripped number
    assert pseudonymise("scu", "2021141460123", KEY + "x") != p
    assert pseudonymise("cqu", "2021141460123", KEY) != p
    assert pseudonymise("scu", "2021141460124", KEY) != p
    assert "2021141460123" not in p


@pytest.mark.parametrize(("university", "number", "key"), [
    ("scu", "", KEY), ("scu", "   ", KEY), ("pku", "2021", KEY), ("scu", "2021", "short"),
])
def test_pseudonymise_refuses_bad_input(university: str, number: str, key: str) -> None:
    with pytest.raises(ValueError):
        pseudonymise(university, number, key)


def test_a_pseudonym_is_a_valid_seeker_id() -> None:
    record = example(APPLIED)
    record["data"]["seeker_id"] = pseudonymise("scu", "2021141460123", KEY)
    assert from_dict(record).data.seeker_id == record["data"]["seeker_id"]  # type: ignore[attr-defined]


@pytest.mark.parametrize("char", ["\u0000", "\u0007", "\u001b", "\u007f"])
def test_control_characters_in_text_are_refused_by_the_contract(char: str) -> None:
    """Bug: a title with U+0000 was counted by the worker but refused by PostgreSQL, so the topics and the
    read model disagreed. The contract now refuses it, on the wire and from a mapping alike."""
    record = example("recruitment.job_posted")
    record["data"]["title"] = f"Analyst{char}"
    with pytest.raises(EventValidationError) as info:
        decode(json.dumps(record).encode())
    assert [p.field for p in info.value.problems] == ["data.title"]
    assert f"U+{ord(char):04X}" in str(info.value) and info.value.reason_code == "invalid"
    assert fields_of(record) == {"data.title"}
    record["data"]["title"] = "Analyst\tgrade\u00a0two"  # tab and other printable characters are fine
    from_dict(record)


def test_a_lone_surrogate_is_malformed_not_a_crash() -> None:
    record = example("recruitment.job_posted")
    record["data"]["title"] = "\ud800"  # what json.loads makes of "\\ud800"
    with pytest.raises(EventValidationError) as info:
        from_dict(record)
    assert info.value.reason_code == "malformed"
    raw = json.dumps(example("recruitment.job_posted")).replace('"title": "', '"title": "\\ud800', 1)
    with pytest.raises(EventValidationError) as info:
        decode(raw.encode())
    assert info.value.reason_code == "malformed"
