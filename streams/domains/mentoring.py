"""The "Double Hundred" mentor pool: mentors by university and expertise, assignments, sessions held.

A session or assignment that arrives before its mentor's registration is kept and counted once the
registration arrives (the pool needs the mentor's university and expertise).
"""

from __future__ import annotations

from typing import Any

from events import mentoring as m
from events.base import Event
from streams.contributions import Contributions, State, dimkey, with_all
from streams.domains.base import Domain, Member, Tx, add_member, member_key, newest

MEMBERS: dict[type[Event], Member] = {m.MentorAssigned: Member("seeker", "seekers", "seeker_id")}


def state_key(event: Event) -> str:
    return f"mentor:{event.subject}"


def _new(mentor_id: str) -> State:
    return {"mentor_id": mentor_id, "registered": False, "sessions": 0, "seekers": 0, "minutes": 0, "updated_at": None}


def apply(tx: Tx, state: State | None, event: Event) -> State:
    key = state_key(event)
    s: State = dict(state) if state else _new(str(event.subject))
    ts = event.occurred_at.isoformat()
    if isinstance(event, m.MentorRegistered):
        s["registered"] = True
        if newest(s, "registered_at", ts):  # registered twice: the newest profile (the read model's rule)
            s.update(university=event.data.university, expertise=event.data.expertise.value,
                     industry=event.data.industry.value)
    elif isinstance(event, m.MentorAssigned):
        add_member(tx, s, key, MEMBERS[m.MentorAssigned], event)
    elif isinstance(event, m.MentoringSessionHeld):  # a session's duration: its newest report (as in the read model)
        session = member_key(key, "session", event.data.session_id)
        current = tx.get(session)
        report = [event.data.duration_minutes, ts]
        if current is None:
            s["sessions"] += 1
            s["minutes"] += report[0]
            tx.put(session, report)
        elif (current[1], current[0]) < (ts, report[0]):
            s["minutes"] += report[0] - current[0]
            tx.put(session, report)
    s["updated_at"] = max(ts, s["updated_at"] or ts)
    return s


def contributions(state: State) -> Contributions:
    if not state["registered"]:
        return {}
    values = {"mentors": 1, "sessions": state["sessions"], "seekers_assigned": state["seekers"],
              "session_minutes": state["minutes"]}
    dims = {"university": state["university"], "expertise": state["expertise"]}
    return {("mentors", dimkey(d)): values for d in with_all(dims, "university")}


def view(state: State) -> tuple[str, str, dict[str, Any]] | None:
    return None


DOMAIN = Domain("mentoring", state_key, apply, contributions, view,
                contribution_fields=("registered", "sessions", "seekers", "minutes", "university", "expertise"),
                members=MEMBERS, fresh=lambda s: _new(s["mentor_id"]))
