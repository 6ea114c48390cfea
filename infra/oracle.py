"""An independent model of what the stream processors must publish, computed from the published records with
plain Python: it imports the contract only, never streams/ or consumers/ (tests/unit/test_architecture.py
checks that). The end-to-end tests and ``python -m infra chaos`` compare every aggregate with it."""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import datetime, timedelta, timezone
from typing import Any

from events.base import Event
from events.privacy import named_seekers
from events.reference import PROVINCE, UNIVERSITIES, City

CST = timezone(timedelta(hours=8))


def accepted_events(records: list[Any]) -> list[Event]:
    """Records the ingest stage must accept: valid, first time seen, published by their own university."""
    seen: set[tuple[str, str]] = set()  # ids are scoped by their source university
    out = []
    for r in records:
        if r.kind != "valid":
            continue
        assert r.event is not None
        key = (r.event.source, str(r.event.event_id))
        if key in seen:
            continue
        seen.add(key)
        out.append(r.event)
    return out


def expected_rejects(records: list[Any]) -> Counter[str]:
    by_reason: Counter[str] = Counter()
    for r in records:
        if r.kind == "duplicate":
            by_reason["duplicate"] += 1
        elif r.kind == "spoofed":
            by_reason["spoofed_source"] += 1
        elif r.kind == "foreign":
            by_reason["not_owner"] += 1
        elif r.kind == "invalid":
            by_reason["rejected_invalid"] += 1
    return by_reason


def _k(**dims: str) -> str:
    return "|".join(f"{k}={dims[k]}" for k in sorted(dims))


ERASURE = "services.seeker_erasure_requested"
RETRACTED, CORRECTED = "corrections.event_retracted", "corrections.event_corrected"


def expected_aggregates(events: list[Any]) -> dict[str, dict[str, dict[str, Any]]]:
    """{aggregate: {key: value}} as the latest record per key on alliance.agg.<aggregate> must say.

    ``events`` in the order the worker applied them: an erasure request removes its seeker's own records
    and changes no figure; an event after it that names the seeker is refused (``erased_seeker``). A
    retraction removes its university's event (same type and subject, not retracted yet), a correction
    replaces it; then every figure is computed from what is left."""
    out: dict[str, dict[str, dict[str, Any]]] = {}
    erased: set[str] = set()
    kept: dict[tuple[str, str], Any] = {}  # (source, event id) -> the event's current version (None: retracted)
    for e in events:
        if e.type == ERASURE:
            erased.add(e.data.seeker_id)
        elif e.type in (RETRACTED, CORRECTED):  # a university's own event, already applied, not retracted
            current = kept.get((e.source, str(e.data.event_id)))
            if current is None or current.type != e.data.type or str(current.subject) != str(e.subject):
                continue
            new = e.data.corrected if e.type == CORRECTED else None
            named = set(named_seekers(new.data)) if new is not None else set()
            if (named | ({str(e.subject)} if current.family == "services" else set())) & erased:
                continue
            kept[(e.source, str(e.data.event_id))] = new
        elif not set(named_seekers(e.data)) & erased:
            kept[(e.source, str(e.event_id))] = e
    events = [e for e in kept.values() if e is not None]

    # --- postings
    posted = _newest(events, "recruitment.job_posted", "posting_id")
    closed = {e.data.posting_id for e in events if e.type == "recruitment.job_posting_closed"}
    positions: dict[str, tuple[str, int]] = {}
    for e in events:
        if e.type in ("recruitment.job_posted", "recruitment.job_posting_updated") and e.data.positions is not None:
            ts = e.occurred_at.isoformat()
            cur = positions.get(e.data.posting_id)
            if cur is None or cur < (ts, e.data.positions):  # newest wins; a tie: the greater value
                positions[e.data.posting_id] = (ts, e.data.positions)
    seg: dict[str, dict[str, float]] = defaultdict(lambda: {"postings_total": 0, "open_postings": 0,
                                                              "open_positions": 0})
    for pid, e in posted.items():
        d = e.data
        for uni in (e.source, "*"):
            key = _k(industry=d.industry.value, city=d.city.value, employer_type=d.employer_type.value,
                     university=uni)
            seg[key]["postings_total"] += 1
            if pid not in closed:
                seg[key]["open_postings"] += 1
                seg[key]["open_positions"] += positions[pid][1]
    out["postings-by-segment"] = dict(seg)

    # --- funnel per posting (every posting with any recruitment event). The rules (docs/read-model.md): an
    # offer is known from any event naming it; its seeker is the one of the earliest such event (ties: the
    # smaller id); its answer is the newest answer (ties: "declined"); hired = distinct seekers of hired offers
    apps: dict[str, set[str]] = defaultdict(set)
    offer_seeker: dict[str, dict[str, tuple[str, str]]] = defaultdict(dict)
    answer: dict[str, dict[str, tuple[str, str]]] = defaultdict(dict)
    hired_offers: dict[str, set[str]] = defaultdict(set)
    touched: set[str] = set()
    for e in events:
        if e.family != "recruitment" or e.type == "recruitment.employer_flagged":
            continue
        d, pid, ts = e.data, e.data.posting_id, e.occurred_at
        touched.add(pid)
        if e.type == "recruitment.application_submitted":
            apps[pid].add(d.application_id)
        elif e.type in ("recruitment.offer_made", "recruitment.offer_accepted", "recruitment.offer_declined",
                        "recruitment.hired"):
            cand = (ts.isoformat(), d.seeker_id)
            known = offer_seeker[pid].get(d.offer_id)
            offer_seeker[pid][d.offer_id] = cand if known is None else min(known, cand)
            if e.type in ("recruitment.offer_accepted", "recruitment.offer_declined"):
                given = (ts.isoformat(), "accepted" if e.type.endswith("accepted") else "declined")
                prev = answer[pid].get(d.offer_id)
                answer[pid][d.offer_id] = given if prev is None else max(prev, given)
            elif e.type == "recruitment.hired":
                hired_offers[pid].add(d.offer_id)
    out["posting-funnel"] = {}
    for pid in touched:
        answers = [a for _, a in answer[pid].values()]
        out["posting-funnel"][pid] = {
            "applications": len(apps[pid]), "offers": len(offer_seeker[pid]), "accepted": answers.count("accepted"),
            "declined": answers.count("declined"),
            "hired": len({offer_seeker[pid][o][1] for o in hired_offers[pid]}),
            "status": "closed" if pid in closed else ("open" if pid in posted else "pending"),
        }

    # --- fairs
    fairs: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    fair_closed, fair_scheduled = set(), set()
    for e in events:
        if e.family != "jobfair":
            continue
        f, d = fairs[e.data.fair_id], e.data
        if e.type == "jobfair.booth_registered":
            f["booths"].add(d.booth_id)
        elif e.type == "jobfair.student_checked_in":  # a booth counts only once registered
            f["seekers"].add(d.seeker_id)
        elif e.type == "jobfair.onsite_offer_made":
            f["offers"].add(d.offer_id)
        elif e.type == "jobfair.closed":
            fair_closed.add(d.fair_id)
        elif e.type == "jobfair.scheduled":
            fair_scheduled.add(d.fair_id)
    out["fairs"] = {
        fid: {"booths": len(f["booths"]), "distinct_checkins": len(f["seekers"]), "onsite_offers": len(f["offers"]),
              "status": "closed" if fid in fair_closed else ("open" if fid in fair_scheduled else "pending")}
        for fid, f in fairs.items()
    }

    # --- mentors
    reg = {mid: e.data for mid, e in _newest(events, "mentoring.mentor_registered", "mentor_id").items()}
    reports: dict[str, dict[str, tuple[str, int]]] = defaultdict(dict)  # newest report of a session wins
    assigned: dict[str, set[str]] = defaultdict(set)
    for e in events:
        if e.type == "mentoring.session_held":
            report = (e.occurred_at.isoformat(), e.data.duration_minutes)
            prev_report = reports[e.data.mentor_id].get(e.data.session_id)
            reports[e.data.mentor_id][e.data.session_id] = report if prev_report is None else max(prev_report, report)
        elif e.type == "mentoring.mentor_assigned":
            assigned[e.data.mentor_id].add(e.data.seeker_id)
    sessions: dict[str, dict[str, int]] = defaultdict(dict)
    for mid, by_session in reports.items():
        sessions[mid] = {sid: minutes for sid, (_, minutes) in by_session.items()}
    mentors: dict[str, dict[str, float]] = defaultdict(lambda: {"mentors": 0, "sessions": 0, "seekers_assigned": 0,
                                                                  "session_minutes": 0})
    for mid, d in reg.items():
        for uni in (d.university, "*"):
            v = mentors[_k(university=uni, expertise=d.expertise.value)]
            v["mentors"] += 1
            v["sessions"] += len(sessions[mid])
            v["seekers_assigned"] += len(assigned[mid])
            v["session_minutes"] += sum(sessions[mid].values())
    out["mentors"] = dict(mentors)

    # --- talent flow: each hired offer, by the seeker's university (from the pseudonym) and its province, where
    # the graduate works (the newest Hired's v2 work_city, ties: the greater "work_city|degree"; else the
    # posting's city), industry, degree, month of that Hired (Asia/Shanghai); counted once the posting is known
    newest_hire: dict[tuple[str, str], tuple[str, str]] = {}
    hire_time: dict[tuple[str, str], Any] = {}
    for e in events:
        if e.type == "recruitment.hired":
            d = e.data
            hire = (e.occurred_at.isoformat(),
                    f"{d.work_city or ''}|{d.degree or ''}")
            k = (d.posting_id, d.offer_id)
            if k not in newest_hire or newest_hire[k] < hire:
                newest_hire[k], hire_time[k] = hire, e.occurred_at
    def count_flow(counter: Counter[str], pid: str, oid: str, work: str, degree: str, at: datetime) -> None:
        """One offer of posting ``pid`` under its talent-flow key (the alliance's ``*`` too)."""
        job = posted[pid].data
        seeker = offer_seeker[pid][oid][1]
        uni = seeker.split(".")[1] if seeker.startswith("ps.") else "unknown"
        origin = PROVINCE[UNIVERSITIES[uni].city] if uni in UNIVERSITIES else "unknown"
        where = work or job.city.value
        destination = "outside_circle" if where == "outside_circle" else PROVINCE[City(where)]
        for u in (uni, "*"):
            counter[_k(university=u, origin=origin, destination=destination, industry=job.industry.value,
                       degree=degree or "unknown", month=at.astimezone(CST).strftime("%Y-%m"))] += 1

    flows: Counter[str] = Counter()
    for (pid, oid), (_, place) in newest_hire.items():
        if pid in posted:
            work, degree = place.split("|")
            count_flow(flows, pid, oid, work, degree, hire_time[(pid, oid)])
    accepted: Counter[str] = Counter()  # offers whose newest answer is an acceptance, at the posting's city
    for pid, offers in answer.items():
        for oid, (answered_at, verdict) in offers.items():
            if pid in posted and verdict == "accepted":
                count_flow(accepted, pid, oid, "", "", datetime.fromisoformat(answered_at))
    out["talent-flow"] = {k: {"hires": flows[k], "accepted_offers": accepted[k]}
                          for k in flows.keys() | accepted.keys()}

    # --- service guarantee
    prog: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    attr = {"services.policy_briefing_delivered": ("briefings", "briefing_id"),
            "services.career_counselling_held": ("counsellings", "counselling_id"),
            "services.job_recommended": ("recommended_postings", "posting_id"),
            "services.training_or_internship_offered": ("programs", "program_id")}
    for e in events:
        if e.family == "services":
            name, field = attr[e.type]
            prog[e.data.seeker_id][name].add(getattr(e.data, field))
    sg: dict[str, dict[str, float]] = {}
    fully = 0
    for sid, p in prog.items():
        full = (len(p["briefings"]) >= 1 and len(p["counsellings"]) >= 1 and len(p["recommended_postings"]) >= 3
                and len(p["programs"]) >= 1)
        fully += full
        sg[f"seeker:{sid}"] = {"briefings": len(p["briefings"]), "counsellings": len(p["counsellings"]),
                               "recommended_postings": len(p["recommended_postings"]),
                               "programs": len(p["programs"]), "fully_served": full}
    for sid in erased:  # tombstoned; the alliance-wide counts keep them
        sg.pop(f"seeker:{sid}", None)
    out["seeker-guarantee"] = sg
    out["service-guarantee"] = {"scope=alliance": {"seekers": len(prog), "fully_served": fully}}

    # --- windows
    win: Counter[str] = Counter()
    for e in events:
        local = e.occurred_at.astimezone(CST)
        win[_k(family=e.family, university=e.source, granularity="hour", bucket=local.strftime("%Y-%m-%dT%H"))] += 1
        win[_k(family=e.family, university=e.source, granularity="day", bucket=local.strftime("%Y-%m-%d"))] += 1
    out["windows"] = {k: {"events": n} for k, n in win.items()}
    return out


def _newest(events: list[Any], type_: str, id_field: str) -> dict[str, Any]:
    """The newest event of ``type_`` per entity (an entity created twice: the newest creation's fields stand;
    at the same instant the earlier in ``events``)."""
    out: dict[str, Any] = {}
    for e in events:
        if e.type == type_:
            entity = getattr(e.data, id_field)
            if entity not in out or e.occurred_at > out[entity].occurred_at:
                out[entity] = e
    return out
