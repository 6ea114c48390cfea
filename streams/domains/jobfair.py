"""Job fairs: live stats per fair (booths, distinct students checked in, on-site offers).

Order-insensitive: booths, seekers and offers are sets, so a student checking in twice (or a re-sent
check-in) counts once; a check-in published after the fair closed still counts (it happened during it).
A booth counts once it is registered (BoothRegistered): a check-in naming a booth that was never registered
counts the student, not a booth (the read model follows the same rule). Booths, students and offers are
member keys of their own (streams.domains.base); the fair's state keeps their counts.
"""

from __future__ import annotations

from typing import Any

from events import jobfair as j
from events.base import Event
from streams.contributions import Contributions, State
from streams.domains.base import Domain, Member, Tx, add_member, newest

MEMBERS: dict[type[Event], Member] = {
    j.BoothRegistered: Member("booth", "booths", "booth_id"),
    j.StudentCheckedIn: Member("seeker", "checkins", "seeker_id"),
    j.OnSiteOfferMade: Member("offer", "onsite_offers", "offer_id"),
}


def state_key(event: Event) -> str:
    return f"fair:{event.subject}"


def _new(fair_id: str) -> State:
    return {"fair_id": fair_id, "scheduled": False, "closed": False, "booths": 0, "checkins": 0,
            "onsite_offers": 0, "updated_at": None}


def apply(tx: Tx, state: State | None, event: Event) -> State:
    key = state_key(event)
    s: State = dict(state) if state else _new(str(event.subject))
    ts = event.occurred_at.isoformat()
    if isinstance(event, j.JobFairScheduled):
        s["scheduled"] = True
        fair = event.data
        if newest(s, "scheduled_at", ts):  # scheduled twice: the newest JobFairScheduled (the read model's rule)
            s.update(name=fair.name, host_university=fair.host_university, city=fair.city.value,
                     starts_at=fair.starts_at.isoformat(), ends_at=fair.ends_at.isoformat())
    elif (member := MEMBERS.get(type(event))) is not None:
        add_member(tx, s, key, member, event)
    elif isinstance(event, j.JobFairClosed):
        s["closed"] = True
    s["updated_at"] = max(ts, s["updated_at"] or ts)
    return s


def contributions(state: State) -> Contributions:
    return {}


def view(state: State) -> tuple[str, str, dict[str, Any]] | None:
    value = {
        "status": "closed" if state["closed"] else ("open" if state["scheduled"] else "pending"),
        "name": state.get("name"), "host_university": state.get("host_university"), "city": state.get("city"),
        "booths": state["booths"], "distinct_checkins": state["checkins"], "onsite_offers": state["onsite_offers"],
    }
    return "fairs", state["fair_id"], value


DOMAIN = Domain("jobfair", state_key, apply, contributions, view,
                contribution_fields=(), members=MEMBERS, fresh=lambda s: _new(s["fair_id"]))
