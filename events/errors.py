"""Root exception of the events package."""

from __future__ import annotations

from dataclasses import dataclass


class EventError(ValueError):
    """Anything wrong with an event."""


@dataclass(frozen=True)
class FieldProblem:
    field: str
    reason: str

    def __str__(self) -> str:
        return f"{self.field}: {self.reason}"


class EventValidationError(EventError):
    """An event that does not satisfy the contract; ``problems`` name each field and reason."""

    def __init__(self, problems: list[FieldProblem], event_type: str | None = None) -> None:
        self.problems = problems
        self.event_type = event_type
        super().__init__("; ".join(str(p) for p in problems) or "invalid event")

    @property
    def reason_code(self) -> str:
        """One of a small fixed set (REASON_CODES), for DLQ headers and metric labels."""
        first = self.problems[0] if self.problems else None
        if first is None:
            return "invalid"
        if first.field == "type":
            return "unknown_type"
        if first.field == "event" and "exceeds" in first.reason:
            return "oversized"
        if first.field == "event" and "JSON" in first.reason:
            return "malformed"
        return "invalid"


REASON_CODES = ("invalid", "unknown_type", "oversized", "malformed", "duplicate", "conflict", "spoofed_source",
                "not_owner", "future_timestamp", "unprocessable")
"""Why the ingest refused a record (the DLQ's ``x-alliance-reject-reason``):

- ``invalid``, ``unknown_type``, ``oversized``, ``malformed``: the record does not satisfy the contract;
- ``duplicate``: an exact re-send (same source university, same event id, same content) of an accepted event;
- ``conflict``: the source university re-used one of its accepted event ids for *different* content;
- ``spoofed_source``: the envelope names another university than the owner of the ingest topic;
- ``not_owner``: the event is about a posting, fair or mentor another university owns (events.ownership);
- ``future_timestamp``: occurred_at lies more than ``events.base.MAX_CLOCK_SKEW`` after the record's arrival;
- ``unprocessable``: a valid record the backbone could not apply (a bug, a value it cannot store); kept in the
  DLQ with the error for an operator, so that it never stops the records around it.
"""
