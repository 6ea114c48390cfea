"""Recruitment: posting state, funnel per posting, open postings/positions by segment.

Merge rules (order-insensitive; the read model applies the same ones, see docs/read-model.md "One set of
rules"): a closed posting stays closed, whatever arrives later; each updatable field keeps the value with the
newest occurred_at (on a tie, the greater value); applications are a set of ids, so a repeated event counts
once; an offer is known from any event naming it (made, answered or hired on), and its job seeker is the one
the earliest of those events names; an offer's answer is its newest answer (on a tie, a decline wins over an
acceptance), so an offer counts as accepted or as declined, never both; ``hired`` counts distinct job
seekers hired for the posting (one student hired through two offers is one hire).
"""

from __future__ import annotations

from typing import Any

from events import recruitment as r
from events.base import Event
from streams.contributions import Contributions, State, dimkey, ratio, with_all
from streams.domains.base import Domain

UPDATABLE = ("title", "positions", "salary_min", "salary_max", "deadline")
SEGMENT = ("industry", "city", "employer_type")


def state_key(event: Event) -> str:
    return f"employer:{event.subject}" if isinstance(event, r.EmployerFlagged) else f"posting:{event.subject}"


def _new_posting(posting_id: str) -> State:
    return {
        "kind": "posting", "posting_id": posting_id, "posted": False, "closed": False, "close_reason": None,
        "fields": {}, "applications": [],
        "offers": {},   # offer_id -> [seeker_id, occurred_at of the earliest event naming the offer]
        "answers": {},  # offer_id -> [answer, occurred_at]: the newest answer
        "hired": [],    # offer ids with a Hired event
        "updated_at": None,
    }


def _set_field(state: State, name: str, value: Any, ts: str) -> None:
    current = state["fields"].get(name)
    if current is None or (current[1], current[0]) < (ts, value):
        state["fields"][name] = [value, ts]


def _offer(state: State, offer_id: str, seeker_id: str, ts: str) -> None:
    current = state["offers"].get(offer_id)
    if current is None or (ts, seeker_id) < (current[1], current[0]):
        state["offers"] = {**state["offers"], offer_id: [seeker_id, ts]}


def _answer(state: State, offer_id: str, answer: str, ts: str) -> None:
    current = state["answers"].get(offer_id)
    if current is None or (current[1], current[0]) < (ts, answer):  # "declined" > "accepted"
        state["answers"] = {**state["answers"], offer_id: [answer, ts]}


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
    elif isinstance(event, r.OfferMade | r.OfferAccepted | r.OfferDeclined | r.Hired):
        _offer(s, event.data.offer_id, event.data.seeker_id, ts)
        if isinstance(event, r.OfferAccepted | r.OfferDeclined):
            _answer(s, event.data.offer_id, "accepted" if isinstance(event, r.OfferAccepted) else "declined", ts)
        elif isinstance(event, r.Hired):
            _add(s, "hired", event.data.offer_id)
    s["updated_at"] = max(ts, s["updated_at"] or ts)
    return s


def _copy(state: State) -> State:
    s = dict(state)
    s["fields"] = dict(state.get("fields", {}))  # _set_field writes into it; offers/answers are replaced
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
    offers: dict[str, list[str]] = state["offers"]
    answers = [a for a, _ in state["answers"].values()]
    accepted = answers.count("accepted")
    applications = len(state["applications"])
    return {
        "applications": applications, "offers": len(offers), "accepted": accepted,
        "declined": answers.count("declined"), "hired": len({offers[o][0] for o in state["hired"]}),
        "offer_rate": ratio(len(offers), applications), "acceptance_rate": ratio(accepted, len(offers)),
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
