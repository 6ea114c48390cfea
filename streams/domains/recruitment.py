"""Recruitment: posting state, funnel per posting, open postings/positions by segment.

Merge rules (order-insensitive): a closed posting stays closed, whatever arrives later; each updatable
field keeps the value with the newest occurred_at; applications, offers and answers are sets of ids, so a
repeated event counts once; an answer (accept/decline) implies its offer was made.
"""

from __future__ import annotations

from typing import Any

from events import recruitment as r
from events.base import Event
from streams.domains import Domain
from streams.state import Contributions, State, dimkey, ratio, with_all

UPDATABLE = ("title", "positions", "salary_min", "salary_max", "deadline")
SEGMENT = ("industry", "city", "employer_type")


def state_key(event: Event) -> str:
    return f"employer:{event.subject}" if isinstance(event, r.EmployerFlagged) else f"posting:{event.subject}"


def _new_posting(posting_id: str) -> State:
    return {
        "kind": "posting", "posting_id": posting_id, "posted": False, "closed": False, "close_reason": None,
        "fields": {}, "applications": [], "offers": [], "accepted": [], "declined": [], "hired": [],
        "updated_at": None,
    }


def _set_field(state: State, name: str, value: Any, ts: str) -> None:
    current = state["fields"].get(name)
    if current is None or current[1] <= ts:
        state["fields"][name] = [value, ts]


def _add(state: State, name: str, item: str) -> None:
    if item not in state[name]:
        state[name] = sorted([*state[name], item])


def apply(state: State | None, event: Event) -> State:
    ts = event.occurred_at.isoformat()
    if isinstance(event, r.EmployerFlagged):
        s = dict(state) if state else {"kind": "employer", "employer_id": event.subject, "flags": {}}
        s["flags"] = {**s["flags"], str(event.event_id): [event.data.severity.value, ts]}
        s["updated_at"] = max(ts, s.get("updated_at") or ts)
        return s
    s = _copy(state) if state else _new_posting(str(event.subject))
    if isinstance(event, r.JobPosted):
        s["posted"] = True
        s["university"] = event.source
        posting = event.data
        s.update(kind_of_job=posting.kind.value, industry=posting.industry.value, city=posting.city.value,
                 employer_type=posting.employer_type.value, employer_id=posting.employer_id)
        for f in UPDATABLE:
            value = getattr(posting, f)
            _set_field(s, f, value.isoformat() if f == "deadline" else value, ts)
    elif isinstance(event, r.JobPostingUpdated):
        for f in UPDATABLE:
            value = getattr(event.data, f)
            if value is not None:
                _set_field(s, f, value.isoformat() if f == "deadline" else value, ts)
    elif isinstance(event, r.JobPostingClosed):
        s["closed"] = True
        s["close_reason"] = event.data.reason.value
    elif isinstance(event, r.ApplicationSubmitted):
        _add(s, "applications", event.data.application_id)
    elif isinstance(event, r.OfferMade):
        _add(s, "offers", event.data.offer_id)
    elif isinstance(event, r.OfferAccepted):
        _add(s, "accepted", event.data.offer_id)
    elif isinstance(event, r.OfferDeclined):
        _add(s, "declined", event.data.offer_id)
    elif isinstance(event, r.Hired):
        _add(s, "hired", event.data.seeker_id)
    s["updated_at"] = max(ts, s["updated_at"] or ts)
    return s


def _copy(state: State) -> State:
    s = dict(state)
    s["fields"] = dict(state.get("fields", {}))
    return s


def is_open(state: State) -> bool:
    return bool(state.get("posted")) and not state.get("closed")


def contributions(state: State) -> Contributions:
    if state.get("kind") != "posting" or not state.get("posted"):
        return {}
    open_ = is_open(state)
    positions = state["fields"]["positions"][0] if open_ else 0
    values = {"postings_total": 1, "open_postings": int(open_), "open_positions": positions}
    dims = {k: state[k] for k in SEGMENT} | {"university": state["university"]}
    return {("postings-by-segment", dimkey(d)): values for d in with_all(dims, "university")}


def funnel(state: State) -> dict[str, Any]:
    offers = set(state["offers"]) | set(state["accepted"]) | set(state["declined"])
    applications = len(state["applications"])
    return {
        "applications": applications, "offers": len(offers), "accepted": len(state["accepted"]),
        "declined": len(state["declined"]), "hired": len(state["hired"]),
        "offer_rate": ratio(len(offers), applications), "acceptance_rate": ratio(len(state["accepted"]), len(offers)),
    }


def view(state: State) -> tuple[str, str, dict[str, Any]] | None:
    if state.get("kind") != "posting":
        return None
    value = funnel(state) | {
        "status": "closed" if state["closed"] else ("open" if state["posted"] else "pending"),
        "university": state.get("university"),
        "positions": state["fields"].get("positions", [None])[0],
    }
    return "posting-funnel", state["posting_id"], value


DOMAIN = Domain("recruitment", state_key, apply, contributions, view)
