"""Ingest: validate, dedupe by event_id, check the publisher, route rejects (pure part)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from events.base import Event
from events.codec import decode
from events.errors import EventValidationError


@dataclass(frozen=True)
class Accepted:
    event: Event


@dataclass(frozen=True)
class Rejected:
    reason: str  # one of events.errors.REASON_CODES
    detail: str
    university: str
    event_id: str | None = None


def classify(raw: bytes | None, university: str, seen: Callable[[str], bool]) -> Accepted | Rejected:
    """Decide what happens to one raw record from ``university``'s ingest topic.

    ``seen(event_id)`` answers the dedupe question."""
    if raw is None:
        return Rejected("malformed", "empty record value", university)
    try:
        event = decode(raw)
    except EventValidationError as exc:
        return Rejected(exc.reason_code, str(exc)[:900], university)
    event_id = str(event.event_id)
    if event.source != university:
        detail = f"source {event.source!r} published to {university}'s ingest topic"
        return Rejected("spoofed_source", detail, university, event_id)
    if seen(event_id):
        return Rejected("duplicate", f"event_id {event_id} already ingested", university, event_id)
    return Accepted(event)
