"""Encoding and strict decoding of events (JSON on the wire), with field-level errors."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, TypeVar

from pydantic import BaseModel, Field, TypeAdapter, ValidationError
from pydantic_core import from_json, to_json

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
_Model = TypeVar("_Model", bound=BaseModel)


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
    return _validated(raw)


def _validated(raw: bytes) -> Event:
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


_ERASED_TEXT = f'"{ERASED_PREFIX}'.encode()  # how a text starting with an anonymous token begins in JSON
_SEEKER_FIELDS = frozenset({"seeker_id", "seeker_ids"})  # where an erasure leaves anonymous tokens in an event


def decode_stored(obj: dict[str, Any] | str | bytes) -> Event:
    """An event the backbone kept (``stored``; or that mapping's JSON text, as the read model's ``event_log``
    gives it). After an erasure its seeker ids are anonymous tokens (``erased.<32 hex>``, events.privacy), which
    the contract refuses as pseudonyms: they are validated as stand-ins (``ps_<the same hex>``), wherever the
    token stands (a seeker's 1-1-3-1 record is keyed by them: its subject too), and put back afterwards, so the
    event names exactly what was stored. A token is what a seeker id holds; any other text, even one that begins
    like a token (an entity id may), stays as it is. Most entries hold no token at all: they are validated from
    their JSON as it is (a refold decodes every entry of its entity's log). The wire's size limit is not applied
    again: the event passed it when it arrived, and its stored spelling may be longer (jsonb's)."""
    raw = to_json(obj) if isinstance(obj, dict) else obj.encode() if isinstance(obj, str) else obj
    if _ERASED_TEXT not in raw:
        return _validated(raw)
    mapping = obj if isinstance(obj, dict) else from_json(raw)
    stand_ins = {token: "ps_" + token[len(ERASED_PREFIX):] for token in _seeker_tokens(mapping, False)}
    if not stand_ins:
        return _validated(raw)

    def stand_in(value: Any) -> Any:
        if isinstance(value, str):
            return stand_ins.get(value, value)
        if isinstance(value, list):
            return [stand_in(v) for v in value]
        if isinstance(value, dict):
            return {k: stand_in(v) for k, v in value.items()}
        return value

    event = _validated(to_json(stand_in(mapping)))
    return _put_back(event, {ps: token for token, ps in stand_ins.items()})


def _seeker_tokens(value: Any, seeker: bool) -> set[str]:
    """The anonymous tokens that seeker ids in ``value`` hold (at any depth)."""
    if seeker and isinstance(value, str):
        return {value} if value.startswith(ERASED_PREFIX) else set()
    if isinstance(value, list):
        return {t for v in value for t in _seeker_tokens(v, seeker)}
    if isinstance(value, dict):
        return {t for k, v in value.items() for t in _seeker_tokens(v, k in _SEEKER_FIELDS)}
    return set()


def _put_back(model: _Model, tokens: dict[str, str]) -> _Model:
    """``model`` with every stand-in ``decode_stored`` validated put back to its token ``tokens[stand-in]`` (in its
    own fields and in the models it holds)."""
    update: dict[str, Any] = {}
    for name in type(model).model_fields:
        value = getattr(model, name)
        new: Any
        if isinstance(value, BaseModel):
            new = _put_back(value, tokens)
        elif isinstance(value, str):
            new = tokens.get(value, value)
        elif isinstance(value, tuple | list):
            new = type(value)(tokens.get(v, v) if isinstance(v, str) else v for v in value)
        else:
            continue
        if new != value:
            update[name] = new
    return model.model_copy(update=update) if update else model
