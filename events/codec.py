"""Encoding and strict decoding of events (JSON on the wire), with field-level errors."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import Field, TypeAdapter, ValidationError
from pydantic_core import from_json

from events import corrections, jobfair, mentoring, recruitment, services
from events.base import MAX_EVENT_BYTES, Event
from events.errors import EventValidationError, FieldProblem
from events.privacy import ERASED_PREFIX

ALL_EVENTS: tuple[type[Event], ...] = (recruitment.EVENTS + jobfair.EVENTS + mentoring.EVENTS + services.EVENTS
                                       + corrections.EVENTS)
EVENT_TYPES: dict[str, type[Event]] = {cls.model_fields["type"].default: cls for cls in ALL_EVENTS}

AnyEvent = Annotated[
    corrections.Revisable | services.SeekerErasureRequested | corrections.EventRetracted
    | corrections.EventCorrected,
    Field(discriminator="type"),
]
_ADAPTER: TypeAdapter[Any] = TypeAdapter(AnyEvent)
assert len(EVENT_TYPES) == len(ALL_EVENTS), "duplicate event type names"


def family_of(event_type: str) -> str:
    cls = EVENT_TYPES.get(event_type)
    if cls is None:
        raise EventValidationError([FieldProblem("type", f"unknown event type {event_type!r}")], event_type)
    return cls.family


def _named_field(field: str, msg: str, value: Any) -> str:
    """A cross-field check raised at model level names its field first ("data.deadline is before ...",
    "salary_min must not exceed ..."): report that field rather than the enclosing model."""
    word = msg.removeprefix("Value error, ").split(" ", 1)[0]
    node = value
    for part in word.split("."):
        if not (isinstance(node, dict) and part in node):
            return field
        node = node[part]
    return word if field == "event" else f"{field}.{word}"


def _problems(exc: ValidationError) -> list[FieldProblem]:
    problems = []
    for err in exc.errors(include_url=False):
        loc = [str(p) for p in err["loc"]]
        if loc and loc[0] in EVENT_TYPES:  # the discriminator's branch name is not a field
            loc = loc[1:]
        field = ".".join(loc) or "event"
        msg = err["msg"]
        if err["type"] == "union_tag_invalid":
            field, msg = "type", f"unknown event type {err.get('input', {}).get('type')!r}" \
                if isinstance(err.get("input"), dict) else "unknown event type"
        elif err["type"] == "union_tag_not_found":
            field, msg = "type", "missing event type"
        elif err["type"] == "value_error":
            field = _named_field(field, msg, err.get("input"))
        problems.append(FieldProblem(field, msg))
    # pydantic adds "should have at least N items after validation" to a list whose items failed: noise
    failed_items = {p.field.rsplit(".", 1)[0] for p in problems if p.field.rsplit(".", 1)[-1].isdigit()}
    return [p for p in problems if not (p.field in failed_items and "after validation" in p.reason)]


def decode(raw: bytes | str) -> Event:
    """Strictly decode one event; raises EventValidationError naming each bad field."""
    if isinstance(raw, str):
        try:
            raw = raw.encode()  # the limit is in UTF-8 bytes
        except UnicodeEncodeError as exc:  # a lone surrogate ("\\ud800" parsed by a lenient JSON reader)
            char = f"U+{ord(exc.object[exc.start]):04X}"
            raise EventValidationError([FieldProblem(
                "event", f"malformed JSON text: {exc.reason} ({char}) at character {exc.start}")]) from None
    size = len(raw)
    if size > MAX_EVENT_BYTES:
        raise EventValidationError([FieldProblem("event", f"{size} bytes exceeds {MAX_EVENT_BYTES}")])
    try:
        event: Event = _ADAPTER.validate_json(raw, strict=True)
    except ValidationError as exc:
        raise EventValidationError(_problems(exc)) from None
    return event


def from_dict(obj: dict[str, Any]) -> Event:
    """Validate a mapping (e.g. one parsed CSV/JSONL line) with JSON semantics."""
    import json

    try:
        raw = json.dumps(obj, default=str, ensure_ascii=False)  # sized as on the wire
    except (TypeError, ValueError, RecursionError) as exc:
        raise EventValidationError([FieldProblem("event", f"not serialisable: {exc}")]) from None
    return decode(raw)


def encode(event: Event) -> bytes:
    return event.to_json()


def stored(event: Event) -> dict[str, Any]:
    """How the backbone keeps an event it applied (the worker's and the read model's event logs): its JSON
    form as a mapping, so that an erasure renames the seeker in it like in any other value."""
    return event.model_dump(mode="json")


@dataclass(frozen=True, slots=True)
class StoredJson:
    """``stored(event)`` given as JSON bytes that decode strictly to the event: its canonical record (``encode``,
    which is ``stored``'s JSON byte for byte: tested). The worker keeps an applied event's log entry from the
    record it read instead of building the mapping (5 µs per event) and serialising it again (1.4 µs). A table
    write takes the bytes as they are (streams.store.value_bytes); whatever reads the entry back gets the
    mapping (:meth:`value`)."""

    json: bytes

    def value(self) -> dict[str, Any]:
        parsed: dict[str, Any] = from_json(self.json)
        return parsed


def plain(value: Any) -> Any:
    """A table value as readers take it: the mapping of a :class:`StoredJson`, anything else as it is."""
    return value.value() if type(value) is StoredJson else value


def decode_stored(obj: dict[str, Any]) -> Event:
    """An event the backbone kept (``stored``). After an erasure its seeker ids are anonymous tokens
    (``erased.<32 hex>``, events.privacy), which the contract refuses as pseudonyms: they are validated as
    stand-ins (``ps_<the same hex>``) and put back afterwards, so the event names exactly what was stored."""
    tokens: dict[str, str] = {}

    def stand_in(value: Any) -> Any:
        if isinstance(value, str) and value.startswith(ERASED_PREFIX):
            tokens["ps_" + value[len(ERASED_PREFIX):]] = value
            return "ps_" + value[len(ERASED_PREFIX):]
        if isinstance(value, list):
            return [stand_in(v) for v in value]
        if isinstance(value, dict):
            return {k: stand_in(v) for k, v in value.items()}
        return value

    event = from_dict(stand_in(obj))
    if not tokens:
        return event

    def back(value: Any) -> Any:
        if isinstance(value, str):
            return tokens.get(value, value)
        if isinstance(value, list | tuple):
            return type(value)(back(v) for v in value)
        return value

    data = event.data
    fields = {name: back(getattr(data, name)) for name in ("seeker_id", "seeker_ids") if hasattr(data, name)}
    return event.model_copy(update={"subject": back(event.subject),
                                    "data": data.model_copy(update=fields) if fields else data})
