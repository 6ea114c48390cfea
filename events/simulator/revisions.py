"""Universities fixing their mistakes: retractions and corrections of their own events (events.corrections).

``revise_day`` picks a share of a day's events and publishes, after each, a retraction or a corrected
version (a few are corrected and then retracted); a correction changes what a real mistake would: the time
(entered an hour late), a count (positions, minutes, booth positions), the severity of a flag, the job seeker
(the wrong student picked), the place of work of a hire.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from events.base import Event
from events.codec import from_dict
from events.corrections import REVISABLE_TYPES, EventCorrected, EventRetracted
from events.errors import EventValidationError

REASONS = ("entered twice by mistake", "wrong record selected", "data entry error", "late correction by staff")


def _new_id(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def retraction(event: Event, *, event_id: str, minutes_later: int = 5, reason: str = REASONS[0]) -> EventRetracted:
    """``event``'s university takes it back."""
    return EventRetracted.model_validate({
        "event_id": event_id, "source": event.source, "subject": event.subject,
        "occurred_at": event.occurred_at + timedelta(minutes=minutes_later),
        "data": {"event_id": str(event.event_id), "type": event.type, "subject": event.subject, "reason": reason}})


def correction(event: Event, corrected: Event, *, event_id: str, minutes_later: int = 5,
               reason: str = REASONS[2]) -> EventCorrected:
    """``event``'s university replaces it with ``corrected`` (same id, type, subject and source)."""
    return EventCorrected.model_validate({
        "event_id": event_id, "source": event.source, "subject": event.subject,
        "occurred_at": event.occurred_at + timedelta(minutes=minutes_later),
        "data": {"corrected": corrected.model_dump(mode="json"), "reason": reason}})


def corrected_copy(rng: random.Random, event: Event, seekers: Sequence[str]) -> Event:
    """A plausible corrected version of ``event``: one field a data-entry mistake would get wrong, else the
    time (an earlier hour: the event was entered late)."""
    body: dict[str, Any] = event.model_dump(mode="json")
    data = body["data"]
    changes: list[tuple[str, Any]] = []
    if isinstance(data.get("positions"), int):
        changes.append(("positions", data["positions"] + rng.randint(1, 3)))
    if isinstance(data.get("positions_offered"), int):
        changes.append(("positions_offered", data["positions_offered"] + 1))
    if isinstance(data.get("duration_minutes"), int):
        changes.append(("duration_minutes", max(10, data["duration_minutes"] - 15)))
    if "severity" in data:
        changes.append(("severity", rng.choice(["warning", "suspended"])))
    if "seeker_id" in data and event.family != "services" and seekers:  # (a services event's subject)
        changes.append(("seeker_id", rng.choice(seekers)))
    if data.get("work_city") is not None:
        changes.append(("work_city", "outside_circle" if data["work_city"] != "outside_circle" else "chongqing"))
    if changes and rng.random() < 0.8:
        name, value = rng.choice(changes)
        data[name] = value
    else:
        body["occurred_at"] = (event.occurred_at - timedelta(minutes=rng.randint(20, 120))).isoformat()
    try:
        return from_dict(body)
    except EventValidationError:  # the changed field broke a rule across fields: correct the time only
        body = event.model_dump(mode="json")
        body["occurred_at"] = (event.occurred_at - timedelta(minutes=30)).isoformat()
        return from_dict(body)


def revise_day(rng: random.Random, events: Sequence[Event], rate: float) -> list[tuple[int, Event]]:
    """Revisions of about ``rate * len(events)`` of ``events``: (index of the original, revision), in the
    order to publish them (each after its original; a correction that is retracted again, in that order).
    Half retractions, half corrections; one in ten corrections is retracted afterwards."""
    if not 0.0 <= rate <= 1.0:
        raise ValueError("rate must be within 0..1")
    candidates = [i for i, e in enumerate(events) if e.type in REVISABLE_TYPES]
    chosen = sorted(rng.sample(candidates, min(len(candidates), round(len(events) * rate))))
    seekers = sorted({s for e in events for s in [getattr(e.data, "seeker_id", None)] if isinstance(s, str)})
    out: list[tuple[int, Event]] = []
    for i in chosen:
        original = events[i]
        if rng.random() < 0.5:
            out.append((i, retraction(original, event_id=_new_id(rng), minutes_later=rng.randint(1, 90),
                                      reason=rng.choice(REASONS))))
            continue
        fixed = correction(original, corrected_copy(rng, original, seekers), event_id=_new_id(rng),
                           minutes_later=rng.randint(1, 90), reason=rng.choice(REASONS))
        out.append((i, fixed))
        if rng.random() < 0.1:
            out.append((i, retraction(original, event_id=_new_id(rng), minutes_later=95,
                                      reason="retracted after all")))
    return out
