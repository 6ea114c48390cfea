"""Generators of the four event families: recruitment, job fairs, mentoring and the 1-1-3-1 services."""


from __future__ import annotations

import random
from bisect import bisect_left
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any

from events.base import Event
from events.jobfair import (
    BoothRegistered,
    JobFairClosed,
    JobFairScheduled,
    OnSiteOfferMade,
    StudentCheckedIn,
)
from events.mentoring import Expertise, MentorAssigned, MentoringSessionHeld, MentorRegistered
from events.recruitment import (
    ApplicationSubmitted,
    CloseReason,
    EmployerFlagged,
    FlagSeverity,
    Hired,
    JobPosted,
    JobPostingClosed,
    JobPostingUpdated,
    OfferAccepted,
    OfferDeclined,
    OfferMade,
    PostingKind,
)
from events.reference import OUTSIDE_CIRCLE, UNIVERSITIES, City, Degree, Industry, WorkLocation
from events.services import (
    CareerCounsellingHeld,
    JobRecommended,
    PolicyBriefingDelivered,
    TrainingOrInternshipOffered,
)
from events.simulator.world import (
    _EXPERTISE_SKEW,
    BASE_FLAGS,
    BASE_MENTORS,
    BASE_POSTINGS,
    BASE_SERVED_SEEKERS,
    BRIEFING_TOPICS,
    DEGREE_FACTOR,
    DISTRICTS,
    EMPLOYER_TYPE_WEIGHTS,
    ET,
    FLAG_REASONS,
    IND,
    INDUSTRY_WEIGHTS,
    MENTOR_TITLES,
    SALARY_BANDS,
    SALARY_CEILING,
    SALARY_FLOOR,
    TITLES,
    TRAINING_PROVIDERS,
    Employer,
    FairPlan,
    Student,
    _later,
    _round500,
    _scaled,
    _share,
    _uniform,
    _weighted,
    local_time,
    new_event,
    pick_employer,
    pick_student,
)

# --------------------------------------------------------------------------------------------------
# recruitment
# --------------------------------------------------------------------------------------------------


@dataclass
class Posting:
    """One posting's generated history (mutable while the day is generated)."""

    posting_id: str
    university: str
    employer: Employer
    posted: JobPosted
    positions: int
    events: list[Event] = field(default_factory=list)
    hires: int = 0
    closed_at: datetime | None = None

    @property
    def posted_at(self) -> datetime:
        return self.posted.occurred_at

    @property
    def last_at(self) -> datetime:
        return max(e.occurred_at for e in self.events)


@dataclass(frozen=True)
class Ctx:
    """What every generator needs: the random source, the day and the actors."""

    rng: random.Random
    day: date
    scale: float
    students: dict[str, list[Student]]
    employers: dict[Industry, list[Employer]]

    def at(self, hour: int, minute: int = 0) -> datetime:
        return local_time(self.day, time(hour, minute))

    def between(self, lo: tuple[int, int], hi: tuple[int, int]) -> datetime:
        return _uniform(self.rng, self.at(*lo), self.at(*hi))

    @property
    def tag(self) -> str:
        """The day in the ids of what happens on it (``20261201``): a posting, an application, an offer, a fair,
        a mentoring session, a counselling session and a recommendation of one day are not those of another,
        so simulated days published one after the other are days of history, not the same day again with
        other data (a posting re-posted in another industry, an application counted once for two days)."""
        return self.day.strftime("%Y%m%d")


def salary_range(rng: random.Random, industry: Industry, degree: Degree, kind: PostingKind) -> tuple[int, int]:
    """A sensible monthly salary range in CNY, within 4,000 .. 30,000."""
    if kind is PostingKind.INTERNSHIP:
        low = rng.choice((4000, 4500, 5000))
        return low, low + rng.choice((500, 1000, 1500))
    band_lo, band_hi = SALARY_BANDS[industry]
    low = _round500(rng.uniform(band_lo, band_hi) * DEGREE_FACTOR[degree])
    low = min(max(low, SALARY_FLOOR), 24000)
    high = min(SALARY_CEILING, low + max(500, _round500(low * rng.uniform(0.2, 0.6))))
    return low, high


def _positions(rng: random.Random, industry: Industry) -> int:
    bulk = industry in (IND.MANUFACTURING, IND.AUTOMOTIVE, IND.CONSTRUCTION, IND.RETAIL)
    roll = rng.random()
    if roll < 0.25:
        return 1
    if roll < 0.55:
        return rng.randint(2, 3)
    if roll < 0.85:
        return rng.randint(4, 10)
    return rng.randint(11, 80 if bulk else 30)


def make_posting(ctx: Ctx, university: str, seq: int) -> Posting:
    """A JobPosted event at ``university`` (08:00 .. 16:30), with an industry skew for the university."""
    rng = ctx.rng
    industry = _weighted(rng, INDUSTRY_WEIGHTS[university])
    employer = pick_employer(rng, ctx.employers[industry], UNIVERSITIES[university].city)
    kind = PostingKind.INTERNSHIP if rng.random() < 0.15 else PostingKind.FULL_TIME
    degree = _weighted(rng, {Degree.BACHELOR: 60, Degree.MASTER: 30, Degree.DOCTORATE: 4, Degree.ASSOCIATE: 6})
    salary_min, salary_max = salary_range(rng, industry, degree, kind)
    title = rng.choice(TITLES[industry]) + (" Intern" if kind is PostingKind.INTERNSHIP else "")
    positions = _positions(rng, industry)
    # the first postings of each university appear right at the start of the working day
    posted_at = ctx.between((8, 0), (8, 30)) if seq < 2 else ctx.between((8, 0), (16, 30))
    expiring = rng.random() < 0.08
    deadline = ctx.day if expiring else ctx.day + timedelta(days=rng.randint(7, 60))
    posting_id = f"{university}-job-{ctx.tag}-{seq:05d}"
    description = None
    if rng.random() < 0.5:
        description = (f"{title} at {employer.name} in {employer.city.value.title()}. {positions} position(s); "
                       f"{degree.value} degree or above; {salary_min}-{salary_max} CNY per month.")
    posted = new_event(JobPosted, rng, university, posted_at, {
        "posting_id": posting_id, "employer_id": employer.employer_id, "employer_name": employer.name,
        "employer_type": employer.type, "industry": industry, "city": employer.city,
        "district": rng.choice(DISTRICTS[employer.city]) if employer.city in DISTRICTS else None,
        "title": title, "description": description, "kind": kind, "positions": positions,
        "degree_min": degree, "salary_min": salary_min, "salary_max": salary_max, "deadline": deadline})
    return Posting(posting_id, university, employer, posted, positions, [posted])


def _recruitment_event(cls: type[Event], ctx: Ctx, p: Posting, at: datetime, schema_version: int = 1,
                       **data: Any) -> Event:
    event = new_event(cls, ctx.rng, p.university, at, {"posting_id": p.posting_id, **data}, schema_version)
    p.events.append(event)
    return event


def add_applications(ctx: Ctx, p: Posting, app_counter: list[int]) -> None:
    """Applications by students (mostly of the posting's university), offers, answers and hires."""
    rng = ctx.rng
    popularity = {IND.IT_SOFTWARE: 1.6, IND.FINANCE: 1.4, IND.PUBLIC_SECTOR: 1.5, IND.ELECTRONICS: 1.3}
    mean = 5.0 * popularity.get(p.posted.data.industry, 1.0) * (0.6 if p.positions == 1 else 1.0)
    n_apps = min(60, int(rng.expovariate(1.0 / mean)))
    offer_p = 0.35 if p.positions <= 2 else 0.15
    applicants: set[str] = set()
    for _ in range(n_apps):
        student = pick_student(rng, ctx.students, p.university, 0.75)
        if student.seeker_id in applicants:
            continue
        applicants.add(student.seeker_id)
        app_counter[0] += 1
        application_id = f"{p.university}-app-{ctx.tag}-{app_counter[0]:06d}"
        applied = _later(rng, p.posted_at, ctx.at(18, 0))
        _recruitment_event(ApplicationSubmitted, ctx, p, applied, application_id=application_id,
                           seeker_id=student.seeker_id, degree=student.degree)
        if rng.random() < offer_p:
            _offer_chain(ctx, p, application_id, student, applied)


def _offer_chain(ctx: Ctx, p: Posting, application_id: str, student: Student, applied: datetime) -> None:
    """OfferMade, maybe answered (accept 78% / decline), Hired after most acceptances."""
    rng = ctx.rng
    offer_id = application_id.replace("-app-", "-offer-")
    salary = _round500(rng.uniform(p.posted.data.salary_min, p.posted.data.salary_max))
    offered = _later(rng, applied, ctx.at(18, 45), min_gap_s=300)
    _recruitment_event(OfferMade, ctx, p, offered, offer_id=offer_id, application_id=application_id,
                       seeker_id=student.seeker_id, salary_monthly=salary)
    if rng.random() >= 0.8:
        return  # still thinking about it at the end of the day
    answered = _later(rng, offered, ctx.at(19, 15))
    if rng.random() >= 0.78:
        _recruitment_event(OfferDeclined, ctx, p, answered, offer_id=offer_id, seeker_id=student.seeker_id)
        return
    _recruitment_event(OfferAccepted, ctx, p, answered, offer_id=offer_id, seeker_id=student.seeker_id)
    if rng.random() < 0.85:
        if p.posted.data.kind is PostingKind.INTERNSHIP:
            start = ctx.day + timedelta(days=rng.randint(7, 21))
        else:
            start = date(ctx.day.year + 1, 7, 1) + timedelta(days=rng.randint(0, 30))
        # two universities in three publish Hired version 2 (where the graduate will work, their degree) beside
        # version 1; drawn from the offer's own random source, so the rest of the day stays as it was
        v2 = random.Random(offer_id)
        extra = {"work_city": _work_city(v2, p), "degree": student.degree} if v2.random() < 0.67 else {}
        _recruitment_event(Hired, ctx, p, _later(rng, answered, ctx.at(19, 30)), 2 if extra else 1,
                           offer_id=offer_id, seeker_id=student.seeker_id, start_date=start, **extra)
        p.hires += 1


def _work_city(rng: random.Random, p: Posting) -> WorkLocation:
    """Mostly where the posting is; sometimes a branch elsewhere in the circle, or outside it (Shenzhen...)."""
    roll = rng.random()
    if roll < 0.8:
        return p.posted.data.city
    if roll < 0.92:
        return rng.choice(list(City))
    return OUTSIDE_CIRCLE


def add_updates(ctx: Ctx, p: Posting) -> None:
    """0-2 JobPostingUpdated events: more/fewer positions, a raise, a later deadline or a title fix."""
    rng = ctx.rng
    n = 0 if rng.random() >= 0.2 else (2 if rng.random() < 0.1 else 1)
    at = p.posted_at
    data = p.posted.data
    for _ in range(n):
        at = _later(rng, at, ctx.at(18, 30))
        change = rng.choice(("positions", "salary", "deadline", "title"))
        if change == "deadline" and data.deadline == ctx.day:
            change = "positions"  # an expiring posting keeps its deadline
        if change == "positions":
            p.positions = max(1, p.positions + rng.choice((-2, -1, 1, 2, 5)))
            _recruitment_event(JobPostingUpdated, ctx, p, at, positions=p.positions)
        elif change == "salary":
            bump = rng.choice((500, 1000, 2000))
            _recruitment_event(JobPostingUpdated, ctx, p, at, salary_min=min(data.salary_min + bump, 29000),
                               salary_max=min(data.salary_max + bump, SALARY_CEILING))
        elif change == "deadline":
            _recruitment_event(JobPostingUpdated, ctx, p, at,
                               deadline=data.deadline + timedelta(days=rng.choice((7, 14, 30))))
        else:
            _recruitment_event(JobPostingUpdated, ctx, p, at, title=f"{data.title} (Chengdu-Chongqing)")


def close_posting(ctx: Ctx, p: Posting, withdrawn_after: datetime | None) -> None:
    """Close the posting after everything else that happened to it, if the day closes it at all."""
    rng = ctx.rng
    if withdrawn_after is not None:
        reason: CloseReason | None = CloseReason.WITHDRAWN
    elif p.hires >= p.positions:
        reason = CloseReason.FILLED
    elif p.posted.data.deadline == ctx.day:
        reason = CloseReason.EXPIRED
    elif rng.random() < 0.04:
        reason = CloseReason.WITHDRAWN
    else:
        reason = None
    if reason is None:
        return
    after = max(p.last_at, withdrawn_after or p.last_at)
    if reason is CloseReason.EXPIRED:
        after = max(after, ctx.at(19, 0))
    closed = _recruitment_event(JobPostingClosed, ctx, p, _later(rng, after, ctx.at(19, 45)), reason=reason)
    p.closed_at = closed.occurred_at


def employer_flags(ctx: Ctx, postings: list[Posting]) -> tuple[list[Event], dict[str, datetime]]:
    """A few EmployerFlagged events; a suspension withdraws the employer's postings at that university.

    Returns the flag events and, per withdrawn posting id, the time of the suspension.
    """
    rng = ctx.rng
    flags: list[Event] = []
    withdrawn: dict[str, datetime] = {}
    flagged: set[tuple[str, str]] = set()
    for n in range(_scaled(BASE_FLAGS, ctx.scale)):
        p = rng.choice(postings)
        target = (p.university, p.employer.employer_id)
        if target in flagged:
            continue
        flagged.add(target)
        affected = [q for q in postings if (q.university, q.employer.employer_id) == target]
        severity = FlagSeverity.SUSPENDED if n % 3 == 0 else FlagSeverity.WARNING
        at = _later(rng, max(q.posted_at for q in affected), ctx.at(17, 0))
        flags.append(new_event(
            EmployerFlagged, rng, p.university, at, {"employer_id": p.employer.employer_id, "severity": severity,
                  "reason": rng.choice(FLAG_REASONS), "postings_affected": len(affected)}))
        if severity is FlagSeverity.SUSPENDED:
            withdrawn.update({q.posting_id: at for q in affected})
    return flags, withdrawn


def ensure_update_before_close(ctx: Ctx, postings: list[Posting]) -> None:
    """Make sure some closed posting was updated before it closed (small days may lack one by chance)."""
    closed = [p for p in postings if p.closed_at is not None]
    if not closed or any(isinstance(e, JobPostingUpdated) for p in closed for e in p.events):
        return
    p = closed[0]
    assert p.closed_at is not None
    at = _uniform(ctx.rng, p.posted_at + timedelta(seconds=1), p.closed_at - timedelta(seconds=1))
    _recruitment_event(JobPostingUpdated, ctx, p, at, title=f"{p.posted.data.title} (Chengdu-Chongqing)")


def recruitment(ctx: Ctx) -> tuple[list[Event], list[Posting]]:
    """The recruitment family of the day, and the postings (for recommendations)."""
    total = _scaled(BASE_POSTINGS, ctx.scale)
    postings: list[Posting] = []
    app_counter = [0]
    for university in UNIVERSITIES:
        for seq in range(_share(total, university, minimum=2)):
            p = make_posting(ctx, university, seq)
            add_applications(ctx, p, app_counter)
            add_updates(ctx, p)
            postings.append(p)
    flags, withdrawn = employer_flags(ctx, postings)
    for p in postings:
        close_posting(ctx, p, withdrawn.get(p.posting_id))
    ensure_update_before_close(ctx, postings)
    return [e for p in postings for e in p.events] + flags, postings


# --------------------------------------------------------------------------------------------------
# job fairs
# --------------------------------------------------------------------------------------------------


def fair_id_of(ctx: Ctx, plan: FairPlan) -> str:
    """The fair ``plan`` held on the simulated day (``cqu-fair-2026-autumn-20261126``): each day holds it anew."""
    return f"{plan.slug}-{ctx.tag}"


def job_fair(ctx: Ctx, plan: FairPlan) -> list[Event]:
    """One fair, all published by its host: scheduled, booths, check-ins, on-site offers, closed."""
    rng = ctx.rng
    host, fair_id = plan.host, fair_id_of(ctx, plan)
    starts, ends = local_time(ctx.day, plan.starts), local_time(ctx.day, plan.ends)
    n_booths = _scaled(plan.booths, ctx.scale, minimum=4)
    events: list[Event] = []

    def emit(cls: type[Event], at: datetime, **data: Any) -> None:
        events.append(new_event(cls, rng, host, at, {"fair_id": fair_id, **data}))

    city = UNIVERSITIES[host].city
    scheduled_at = _uniform(rng, starts - timedelta(minutes=60), starts - timedelta(minutes=45))
    emit(JobFairScheduled, scheduled_at, name=plan.name, host_university=host, city=city,
         venue=plan.venue, starts_at=starts, ends_at=ends, expected_booths=n_booths)
    booths: list[str] = []
    for b in range(n_booths):
        employer = pick_employer(rng, ctx.employers[_weighted(rng, INDUSTRY_WEIGHTS[host])], city)
        booth_id = f"{fair_id}-b{b + 1:03d}"
        late = rng.random() < 0.05  # a few employers register while the fair is already running
        at = _uniform(rng, starts + timedelta(minutes=10), starts + timedelta(minutes=120)) if late \
            else _later(rng, scheduled_at, starts - timedelta(minutes=5))
        emit(BoothRegistered, at, booth_id=booth_id, employer_id=employer.employer_id,
             employer_name=employer.name, employer_type=employer.type, industry=employer.industry,
             positions_offered=rng.randint(1, 50))
        booths.append(booth_id)
    registered = {e.data.booth_id: e.occurred_at for e in events if isinstance(e, BoothRegistered)}
    offers = [0]
    for _ in range(_scaled(plan.students, ctx.scale, minimum=10)):
        student = pick_student(rng, ctx.students, host, plan.host_share, neighbours_only=rng.random() < 0.7)
        events += _fair_visit(ctx, plan, fair_id, student, booths, registered, offers)
    last = max(e.occurred_at for e in events)
    emit(JobFairClosed, _later(rng, max(last, ends), ends + timedelta(minutes=20)))
    return events


def _arrival(rng: random.Random, starts: datetime, ends: datetime) -> datetime:
    """Arrival time at a fair: peaks in the first and in the middle third, nobody in the last half hour."""
    span = (ends - starts).total_seconds() - 1800
    mode = rng.choice((0.15, 0.55))
    return starts + timedelta(milliseconds=int(rng.triangular(0, span, span * mode) * 1000))


def _fair_visit(ctx: Ctx, plan: FairPlan, fair_id: str, student: Student, booths: list[str],
                registered: dict[str, datetime], offers: list[int]) -> list[Event]:
    """One student's visit to ``fair_id`` (``plan`` held that day): entrance check-in (sometimes twice), booth
    check-ins, maybe an on-site offer."""
    rng = ctx.rng
    starts, ends = local_time(ctx.day, plan.starts), local_time(ctx.day, plan.ends)
    events: list[Event] = []

    def emit(cls: type[Event], at: datetime, **data: Any) -> None:
        events.append(new_event(cls, rng, plan.host, at,
                                {"fair_id": fair_id, "seeker_id": student.seeker_id, **data}))

    t = _arrival(rng, starts, ends)
    emit(StudentCheckedIn, t, booth_id=None)
    visits = [rng.choice(booths) for _ in range(min(6, 1 + int(rng.expovariate(1 / 1.3))))]
    if rng.random() < 0.1:
        visits.append(rng.choice(visits))  # back to a booth already visited
    for i, booth in enumerate(visits):
        t = max(t, registered[booth]) + timedelta(seconds=rng.randint(120, 1500))
        if rng.random() < 0.08 and i > 0 and t < ends:  # left for lunch / a lecture and came back in
            emit(StudentCheckedIn, t, booth_id=None)
            t += timedelta(seconds=rng.randint(60, 600))
        if t >= ends:
            break
        emit(StudentCheckedIn, t, booth_id=booth)
        if rng.random() < 0.03 or offers[0] == 0:  # every fair has at least one on-site offer
            offer_at = t + timedelta(seconds=rng.randint(300, 1200))
            if offer_at < ends:
                t = offer_at
                offers[0] += 1
                emit(OnSiteOfferMade, t, booth_id=booth, offer_id=f"{fair_id}-o{offers[0]:04d}")
    return events


# --------------------------------------------------------------------------------------------------
# mentoring ("Double Hundred" mentors)
# --------------------------------------------------------------------------------------------------


def mentor(ctx: Ctx, university: str, seq: int) -> list[Event]:
    """A mentor registered by ``university``, assigned to students, holding sessions with several of them."""
    rng = ctx.rng
    mentor_id = f"{university}-mentor-{seq:03d}"
    # who the mentor is does not change from one simulated day to the next (the pool is the same people): drawn
    # from the mentor's id, not from the day's random source
    who = random.Random(mentor_id)
    skew = _EXPERTISE_SKEW.get(university)
    expertise = skew if skew is not None and who.random() < 0.5 else who.choice(list(Expertise))
    industry = _weighted(who, INDUSTRY_WEIGHTS[university])
    employer_type = ET.PUBLIC_INSTITUTION if who.random() < 0.5 else _weighted(
        who, EMPLOYER_TYPE_WEIGHTS[industry])
    title = who.choice(MENTOR_TITLES[expertise])
    events: list[Event] = []

    def emit(cls: type[Event], at: datetime, **data: Any) -> None:
        events.append(new_event(cls, rng, university, at, {"mentor_id": mentor_id, **data}))

    registered = ctx.between((8, 0), (10, 0))
    emit(MentorRegistered, registered, university=university, expertise=expertise, industry=industry,
         employer_type=employer_type, title=title)
    assigned: dict[str, datetime] = {}
    t = registered
    for _ in range(rng.choice((0, 1, 2, 3, 3, 4, 5, 6))):
        student = pick_student(rng, ctx.students, university, 0.8)
        if student.seeker_id in assigned:
            continue
        t = _later(rng, t, ctx.at(15, 0), min_gap_s=60)
        assigned[student.seeker_id] = t
        emit(MentorAssigned, t, seeker_id=student.seeker_id)
    seekers = list(assigned)
    for s in range(rng.choice((1, 1, 2)) if seekers else 0):
        group = rng.sample(seekers, rng.randint(min(2, len(seekers)), min(8, len(seekers))))
        t = _later(rng, max(t, *(assigned[g] for g in group)), ctx.at(19, 0), min_gap_s=600)
        emit(MentoringSessionHeld, t, session_id=f"{mentor_id}-{ctx.tag}-s{s + 1}",
             topic=expertise if rng.random() < 0.8 else rng.choice(list(Expertise)),
             seeker_ids=tuple(group), duration_minutes=rng.choice((30, 45, 60, 90, 120)))
    return events


def mentoring(ctx: Ctx) -> list[Event]:
    """The mentor pool of every university and what the mentors did today."""
    total = _scaled(BASE_MENTORS, ctx.scale)
    return [e for u in UNIVERSITIES for seq in range(_share(total, u)) for e in mentor(ctx, u, seq + 1)]


# --------------------------------------------------------------------------------------------------
# employment services (the 1-1-3-1 guarantee)
# --------------------------------------------------------------------------------------------------


def service_plan(rng: random.Random) -> list[str]:
    """The services one seeker gets today: the full 1-1-3-1 guarantee (35%) or part of it."""
    if rng.random() < 0.35:
        return ["briefing", "counselling"] + ["recommendation"] * rng.randint(3, 5) + ["training"]
    plan = ["briefing"] if rng.random() < 0.75 else []
    plan += ["counselling"] if rng.random() < 0.55 else []
    plan += ["recommendation"] * rng.choice((0, 1, 1, 2, 2, 3))
    plan += ["training"] if rng.random() < 0.3 else []
    return plan or ["briefing"]


class OpenPostings:
    """Which postings are open at a given time (for recommendations that reference real postings)."""

    def __init__(self, postings: list[Posting]) -> None:
        self._postings = sorted(postings, key=lambda p: p.posted_at)
        self._posted = [p.posted_at for p in self._postings]

    def pick(self, rng: random.Random, at: datetime, university: str, exclude: set[str]) -> str | None:
        """An open posting (posted before ``at``, not closed by then), preferably of ``university``."""
        candidates = [p for p in self._postings[: bisect_left(self._posted, at)]
                      if p.posting_id not in exclude and (p.closed_at is None or p.closed_at > at)]
        own = [p for p in candidates if p.university == university]
        pool = own if own and rng.random() < 0.6 else candidates
        return rng.choice(pool).posting_id if pool else None


def seeker_services(ctx: Ctx, student: Student, open_postings: OpenPostings, counters: dict[str, int]
                    ) -> list[Event]:
    """The service events of one seeker, published by the seeker's university, in time order."""
    rng = ctx.rng
    u = student.university
    plan = service_plan(rng)
    times = sorted(ctx.between((9, 0), (19, 30)) for _ in plan)
    for i in range(1, len(times)):  # strictly increasing
        times[i] = max(times[i], times[i - 1] + timedelta(milliseconds=1))
    events: list[Event] = []
    recommended: set[str] = set()
    for what, at in zip(plan, times, strict=True):
        counters[what] = counters.get(what, 0) + 1
        n = counters[what]
        data: dict[str, Any] = {"seeker_id": student.seeker_id}
        if what == "briefing":
            k = rng.randrange(len(BRIEFING_TOPICS))
            cls: type[Event] = PolicyBriefingDelivered
            data |= {"briefing_id": f"{u}-briefing-{k + 1}", "topic": BRIEFING_TOPICS[k]}
        elif what == "counselling":
            cls = CareerCounsellingHeld
            data |= {"counselling_id": f"{u}-counsel-{ctx.tag}-{n:05d}",
                     "counsellor_id": f"{u}-counsellor-{rng.randint(1, 12):02d}"}
        elif what == "recommendation":
            posting_id = open_postings.pick(rng, at, u, recommended)
            if posting_id is None:
                continue
            recommended.add(posting_id)
            cls = JobRecommended
            data |= {"recommendation_id": f"{u}-rec-{ctx.tag}-{n:06d}", "posting_id": posting_id}
        else:
            k = rng.randrange(len(TRAINING_PROVIDERS))
            kind, provider = TRAINING_PROVIDERS[k]
            cls = TrainingOrInternshipOffered
            data |= {"program_id": f"{u}-prog-{k + 1:02d}", "kind": kind, "provider": provider}
        events.append(new_event(cls, rng, u, at, data))
    return events


def services(ctx: Ctx, postings: list[Posting]) -> list[Event]:
    """Services delivered today by every university to some of its students."""
    open_postings = OpenPostings(postings)
    counters: dict[str, int] = {}
    total = _scaled(BASE_SERVED_SEEKERS, ctx.scale)
    events: list[Event] = []
    for u in UNIVERSITIES:
        for student in ctx.rng.sample(ctx.students[u], min(len(ctx.students[u]), _share(total, u, 3))):
            events += seeker_services(ctx, student, open_postings, counters)
    return events


