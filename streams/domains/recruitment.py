"""Recruitment: posting state, funnel per posting, open postings/positions by segment.

Merge rules (order-insensitive; the read model applies the same ones, see docs/read-model.md "One set of
rules"): a posting posted twice keeps the segment of its newest JobPosted (domains.base.newest); a closed
posting stays closed, whatever arrives later; each updatable field keeps the value with the
newest occurred_at (on a tie, the greater value); applications are a set of ids, so a repeated event counts
once; an offer is known from any event naming it (made, answered or hired on), and its job seeker is the one
the earliest of those events names; an offer's answer is its newest answer (on a tie, a decline wins over an
acceptance), so an offer counts as accepted or as declined, never both; ``hired`` counts distinct job
seekers hired for the posting (one student hired through two offers is one hire). Employers are shared
(events.ownership): an employer's state keeps each university's newest flag apart (``by_university``), so
no member's flag stands for another's.

The posting's state keeps counts; applications, offers (with their seeker, answer and hire) and the hired
job seekers are member keys of their own (streams.domains.base), so a posting with 100,000 applications
stays a small record.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from events import recruitment as r
from events.base import Event
from events.privacy import minted_by
from events.reference import OUTSIDE_CIRCLE, PROVINCE, UNIVERSITIES, City
from streams.contributions import Contributions, State, dimkey, ratio, with_all
from streams.domains.base import Domain, Member, Tx, add_member, member_key, newest
from streams.windows import month_of

UPDATABLE = ("title", "positions", "salary_min", "salary_max", "deadline")
UNKNOWN = "unknown"  # a seeker of the first pseudonym form (no university), a hire without a degree (v1)
SEGMENT = ("industry", "city", "employer_type")
MEMBERS: dict[type[Event], Member] = {r.ApplicationSubmitted: Member("application", "applications", "application_id")}


def state_key(event: Event) -> str:
    return f"employer:{event.subject}" if isinstance(event, r.EmployerFlagged) else f"posting:{event.subject}"


def _new_posting(posting_id: str) -> State:
    return {
        "kind": "posting", "posting_id": posting_id, "posted": False, "closed": False, "close_reason": None,
        "fields": {}, "applications": 0, "offers": 0, "accepted": 0, "declined": 0,
        "hired": 0,  # distinct job seekers with a hired offer
        "updated_at": None,
    }


def _new_employer(employer_id: str) -> State:
    return {"kind": "employer", "employer_id": employer_id, "flags": 0}


def _fresh(state: State) -> State:
    return _new_posting(state["posting_id"]) if state["kind"] == "posting" else _new_employer(state["employer_id"])


def _set_field(state: State, name: str, value: Any, ts: str) -> None:
    current = state["fields"].get(name)
    if current is None or (current[1], current[0]) < (ts, value):
        state["fields"][name] = [value, ts]


def _hire(tx: Tx, s: State, key: str, seeker: str, delta: int) -> None:
    """Count one more (or one less) hired offer for ``seeker``; ``hired`` counts seekers with at least one."""
    member = member_key(key, "hired", seeker)
    before = tx.get(member) or 0
    tx.put(member, before + delta)
    s["hired"] += (before == 0 and delta > 0) - (before + delta == 0 and delta < 0)


def hire_place(data: r.HiredData) -> str:
    """``work_city|degree`` of a Hired (v2 fields; empty in version 1): one text, so that the newest Hired's
    tie-break is one comparison here, in the read model and in the oracle."""
    return f"{data.work_city or ''}|{data.degree or ''}"


TALENT_METRICS = ("hires", "accepted_offers")


def flow_keys(offer: dict[str, Any]) -> list[str]:
    """The talent flows an offer counts under, before the posting's own facts: ``<metric>|<the seeker's
    university (from the pseudonym)>|<work city>|<degree>|<month>``. A hire (metric ``hires``): where the
    graduate will work (Hired v2; empty: the posting's city), their degree (v2), the month of the newest
    Hired. An accepted offer (``accepted_offers``: its newest answer is an acceptance): the posting's city,
    degree unknown, the month of that answer (Asia/Shanghai)."""
    minted = minted_by(offer["seeker"]) if offer["seeker"] else None
    university = minted[0] if minted else UNKNOWN
    keys = []
    if offer["hired"] and offer.get("hired_ts") is not None:
        keys.append("|".join(("hires", university, offer["hire_place"], month_of(offer["hired_ts"]))))
    if offer["answer"] == "accepted":
        keys.append("|".join(("accepted_offers", university, "", "", month_of(offer["answer_ts"]))))
    return keys


def _offer_event(tx: Tx, s: State, key: str, event: r.OfferMade | r.OfferAccepted | r.OfferDeclined | r.Hired,
                 ts: str) -> None:
    """An offer is a member record: its job seeker (of the earliest event naming it, ties: the smaller id),
    its answer (the newest, ties: "declined"), whether anyone was hired on it and, from the newest Hired
    (ties: the greater ``work_city|degree`` text), when and where to work (talent flow)."""
    member = member_key(key, "offer", event.data.offer_id)
    current = tx.get(member)
    offer: dict[str, Any] = dict(current) if current else {
        "seeker": None, "ts": None, "answer": None, "answer_ts": None, "hired": False}
    s["offers"] += current is None
    before = (offer["seeker"], offer["answer"], offer["hired"])
    if offer["ts"] is None or (ts, event.data.seeker_id) < (offer["ts"], offer["seeker"]):
        offer["ts"], offer["seeker"] = ts, event.data.seeker_id
    if isinstance(event, r.OfferAccepted | r.OfferDeclined):
        answer = "accepted" if isinstance(event, r.OfferAccepted) else "declined"
        if offer["answer_ts"] is None or (offer["answer_ts"], offer["answer"]) < (ts, answer):  # "declined" wins a tie
            offer["answer_ts"], offer["answer"] = ts, answer
    elif isinstance(event, r.Hired):
        offer["hired"] = True
        hire = (ts, hire_place(event.data))
        if offer.get("hired_ts") is None or (offer["hired_ts"], offer["hire_place"]) < hire:
            offer["hired_ts"], offer["hire_place"] = hire
    seeker, answer, hired = offer["seeker"], offer["answer"], offer["hired"]
    if answer != before[1]:
        if before[1] is not None:
            s[before[1]] -= 1
        s[answer] += 1
    if before[2] and (not hired or seeker != before[0]):
        _hire(tx, s, key, before[0], -1)
    if hired and (not before[2] or seeker != before[0]):
        _hire(tx, s, key, seeker, +1)
    old_flows, new_flows = offer.get("flows") or [], flow_keys(offer)
    if old_flows != new_flows:  # an offer counts under one flow per metric at a time
        flows = s["flows"] = dict(s.get("flows") or {})
        for old in old_flows:
            flows[old] -= 1
            if not flows[old]:
                del flows[old]
        for new in new_flows:
            flows[new] = flows.get(new, 0) + 1
        offer["flows"] = new_flows
    tx.put(member, offer)


def apply(tx: Tx, state: State | None, event: Event) -> State:
    ts = event.occurred_at.isoformat()
    key = state_key(event)
    if isinstance(event, r.EmployerFlagged):  # a shared entity: each university's flag is its own
        s: State = dict(state) if state else _new_employer(str(event.subject))
        s["flags"] += tx.add(key, "flag", f"{event.source}/{event.event_id}")
        by_university = dict(s.get("by_university") or {})
        current = by_university.get(event.source)  # [severity, occurred_at] of its newest flag
        severity = event.data.severity.value
        if current is None or (current[1], current[0]) < (ts, severity):
            by_university[event.source] = [severity, ts]
        s["by_university"] = by_university
        s["updated_at"] = max(ts, s.get("updated_at") or ts)
        return s
    s = _copy(state) if state else _new_posting(str(event.subject))
    if isinstance(event, r.JobPosted):
        s["posted"] = True
        s["university"] = event.source
        posting = event.data
        if newest(s, "posted_at", ts):  # posted twice: the newest JobPosted's segment (the read model's posted_at)
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
        add_member(tx, s, key, MEMBERS[r.ApplicationSubmitted], event)
    elif isinstance(event, r.OfferMade | r.OfferAccepted | r.OfferDeclined | r.Hired):
        _offer_event(tx, s, key, event, ts)
    s["updated_at"] = max(ts, s["updated_at"] or ts)
    return s


def _copy(state: State) -> State:
    s = dict(state)
    s["fields"] = dict(state.get("fields", {}))  # _set_field writes into it
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
    out: Contributions = {("postings-by-segment", dimkey(d)): values for d in with_all(dims, "university")}
    for flow, n in (state.get("flows") or {}).items():  # talent flow: once the posting (its city) is known
        metric, _, rest = flow.partition("|")
        for dk in _talent_flow_keys(rest, state["city"], state["industry"]):
            values = out.setdefault(("talent-flow", dk), dict.fromkeys(TALENT_METRICS, 0))
            values[metric] += n
    return out


@lru_cache(maxsize=16_384)  # (flow, city, industry): a posting's flows repeat across its events and batches
def _talent_flow_keys(flow: str, posting_city: str, industry: str) -> tuple[str, ...]:
    """The dimension keys a flow of a posting counts under: its own, and alliance-wide (every university)."""
    return tuple(dimkey(d) for d in with_all(talent_flow_dims(flow, posting_city, industry), "university"))


def talent_flow_dims(flow: str, posting_city: str, industry: str) -> dict[str, str]:
    """The talent-flow dimensions of offers counted under ``flow`` (flow_keys, without the metric) on a posting
    in ``posting_city``:
    the seeker's university and its province (origin), where they work (destination: a province of the
    circle, or outside_circle), industry, degree, month."""
    university, work_city, degree, month = flow.split("|")
    where = work_city or posting_city
    destination = OUTSIDE_CIRCLE if where == OUTSIDE_CIRCLE else PROVINCE[City(where)]
    origin = PROVINCE[UNIVERSITIES[university].city] if university in UNIVERSITIES else UNKNOWN
    return {"university": university, "origin": origin, "destination": destination, "industry": industry,
            "degree": degree or UNKNOWN, "month": month}


def funnel(state: State) -> dict[str, Any]:
    applications, offers, accepted = state["applications"], state["offers"], state["accepted"]
    return {
        "applications": applications, "offers": offers, "accepted": accepted, "declined": state["declined"],
        "hired": state["hired"], "offer_rate": ratio(offers, applications), "acceptance_rate": ratio(accepted, offers),
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


DOMAIN = Domain("recruitment", state_key, apply, contributions, view,
                contribution_fields=("kind", "posted", "closed", "fields", "university", "flows", *SEGMENT),
                members=MEMBERS, fresh=_fresh)
