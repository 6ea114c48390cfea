"""The 1-1-3-1 service guarantee: 1 policy briefing, 1 career counselling, 3 job recommendations
(distinct postings) and 1 training or internship offer for every job seeker."""

from __future__ import annotations

from typing import Any

from events import services as sv
from events.base import Event
from streams.contributions import Contributions, State
from streams.domains.base import Domain, Member, Tx, add_member

GUARANTEE = {"briefings": 1, "counsellings": 1, "recommended_postings": 3, "programs": 1}


MEMBERS: dict[type[Event], Member] = {  # each item a set of its own, counted under the set's name
    sv.PolicyBriefingDelivered: Member("briefings", "briefings", "briefing_id"),
    sv.CareerCounsellingHeld: Member("counsellings", "counsellings", "counselling_id"),
    sv.JobRecommended: Member("recommended_postings", "recommended_postings", "posting_id"),
    sv.TrainingOrInternshipOffered: Member("programs", "programs", "program_id"),
}


def state_key(event: Event) -> str:
    return f"seeker:{event.subject}"


def apply(tx: Tx, state: State | None, event: Event) -> State:
    s: State = dict(state) if state else {"seeker_id": event.subject, **{k: 0 for k in GUARANTEE}, "updated_at": None}
    add_member(tx, s, state_key(event), MEMBERS[type(event)], event)
    ts = event.occurred_at.isoformat()
    s["updated_at"] = max(ts, s["updated_at"] or ts)
    return s


def progress(state: State) -> dict[str, Any]:
    counts = {k: state[k] for k in GUARANTEE}
    met = {k: counts[k] >= need for k, need in GUARANTEE.items()}
    return {**counts, "fully_served": all(met.values()), "steps_met": sum(met.values())}


def contributions(state: State) -> Contributions:
    p = progress(state)
    return {("service-guarantee", "scope=alliance"): {
        "seekers": 1, "fully_served": int(p["fully_served"]),
        "briefed": int(p["briefings"] >= 1), "counselled": int(p["counsellings"] >= 1),
        "recommended_3": int(p["recommended_postings"] >= 3), "trained": int(p["programs"] >= 1),
    }}


def view(state: State) -> tuple[str, str, dict[str, Any]] | None:
    return "seeker-guarantee", f"seeker:{state['seeker_id']}", progress(state)


DOMAIN = Domain("services", state_key, apply, contributions, view,
                contribution_fields=tuple(GUARANTEE), members=MEMBERS)
