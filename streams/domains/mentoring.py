"""The "Double Hundred" mentor pool: mentors by university and expertise, assignments, sessions held.

A session or assignment that arrives before its mentor's registration is kept and counted once the
registration arrives (the pool needs the mentor's university and expertise).
"""

from __future__ import annotations

from bisect import insort
from typing import Any

from events import mentoring as m
from events.base import Event
from streams.contributions import Contributions, State, dimkey, with_all
from streams.domains.base import Domain


def state_key(event: Event) -> str:
    return f"mentor:{event.subject}"


def _add(state: State, name: str, item: str) -> None:
    if item not in state[name]:
        items = list(state[name])
        insort(items, item)
        state[name] = items


def apply(state: State | None, event: Event) -> State:
    s = dict(state) if state else {"mentor_id": event.subject, "registered": False, "sessions": {},
                                   "seekers": [], "updated_at": None}
    ts = event.occurred_at.isoformat()
    if isinstance(event, m.MentorRegistered):
        s.update(registered=True, university=event.data.university, expertise=event.data.expertise.value,
                 industry=event.data.industry.value)
    elif isinstance(event, m.MentorAssigned):
        _add(s, "seekers", event.data.seeker_id)
    elif isinstance(event, m.MentoringSessionHeld):  # a session's duration: its newest report (as in the read model)
        current = s["sessions"].get(event.data.session_id)
        if current is None or (current[1], current[0]) < (ts, event.data.duration_minutes):
            s["sessions"] = {**s["sessions"], event.data.session_id: [event.data.duration_minutes, ts]}
    s["updated_at"] = max(ts, s["updated_at"] or ts)
    return s


def contributions(state: State) -> Contributions:
    if not state["registered"]:
        return {}
    sessions: dict[str, list[Any]] = state["sessions"]
    values = {"mentors": 1, "sessions": len(sessions), "seekers_assigned": len(state["seekers"]),
              "session_minutes": sum(minutes for minutes, _ in sessions.values())}
    dims = {"university": state["university"], "expertise": state["expertise"]}
    return {("mentors", dimkey(d)): values for d in with_all(dims, "university")}


def view(state: State) -> tuple[str, str, dict[str, Any]] | None:
    return None


DOMAIN = Domain("mentoring", state_key, apply, contributions, view)
