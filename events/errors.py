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


# Fields a university system may add by mistake that name a person (refused as extra fields, and treated as
# personal data: their DLQ copy keeps no value).
PERSONAL_FIELDS = frozenset({"name", "student_name", "real_name", "full_name", "id_number", "id_card",
                             "identity_card", "phone", "mobile", "email", "e_mail", "student_number",
                             "student_no", "student_id"})


def _personal(problem: FieldProblem) -> bool:
    """A problem that means the record holds personal data: a pattern in free text (events.base), a job
    seeker id that is not a pseudonym (a raw student number), or an extra field naming a person."""
    last = problem.field.rsplit(".", 2)
    name = last[-2] if last[-1].isdigit() and len(last) > 1 else last[-1]
    if "personal data must not leave" in problem.reason:  # events.base.PERSONAL_DATA
        return True
    if name in ("seeker_id", "seeker_ids", "subject") and "pattern" in problem.reason:
        return True
    return "Extra inputs" in problem.reason and name in PERSONAL_FIELDS


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
        if any(_personal(p) for p in self.problems):
            return "personal_data"
        if first.field == "type":
            return "unknown_type"
        if first.field == "event" and "exceeds" in first.reason:
            return "oversized"
        if first.field == "event" and "JSON" in first.reason:
            return "malformed"
        return "invalid"


REASON_CODES = ("invalid", "personal_data", "unknown_type", "oversized", "malformed", "duplicate", "conflict",
                "spoofed_source", "not_owner", "future_timestamp", "unprocessable", "erased_seeker", "not_revisable")
"""Why the ingest refused a record (the DLQ's ``x-alliance-reject-reason``):

- ``invalid``, ``unknown_type``, ``oversized``, ``malformed``: the record does not satisfy the contract;
- ``personal_data``: a free-text field holds a phone number, ID card number, e-mail address or student
  number, a job seeker id is not a pseudonym (a raw student number), or an extra field names a person; its
  DLQ copy keeps only headers (sizes, SHA-256), never the key or the value;
- ``duplicate``: an exact re-send (same source university, same event id, same content) of an accepted event;
- ``conflict``: the source university re-used one of its accepted event ids for *different* content;
- ``spoofed_source``: the envelope names another university than the owner of the ingest topic;
- ``not_owner``: the event is about a posting, fair or mentor another university owns (events.ownership);
- ``future_timestamp``: occurred_at lies more than ``events.base.MAX_CLOCK_SKEW`` after the record's arrival;
- ``unprocessable``: a valid record the backbone could not apply (a bug, a value it cannot store); kept in the
  DLQ with the error for an operator, so that it never stops the records around it;
- ``erased_seeker``: the event names a job seeker whose university had them erased before the event reached
  the worker (``services.seeker_erasure_requested``); like ``personal_data``, its DLQ copy keeps only headers;
- ``not_revisable``: a retraction or correction (events.corrections) whose original is not the university's,
  is unknown on its partition (not arrived yet, or a wrong subject or type), or was retracted already.
"""
