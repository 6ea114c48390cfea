"""A realistic, deterministic "alliance day": the records eight member universities publish in one day.

Pure generation, no I/O (publishing lives in events.simulate_cli). ``alliance_day()`` returns the records in
publish order; the same arguments always give the same list (all randomness comes from one seeded
``random.Random``; event ids are drawn from it too).

What the day contains (numbers at ``scale=1``, about 20,000 records; everything scales linearly):

- recruitment at every university, weighted by size: ~1,000 postings with an industry skew per university,
  updates, ~5,000 applications by pseudonymous students, offers, accept/decline, hires, closes
  (filled/expired/withdrawn) and a few employer flags; every event of a posting is published by the
  university that posted it and keyed by ``posting_id``;
- a large job fair hosted by cqu (thousands of check-ins; students check in several times) and a smaller
  one hosted by uestc: scheduled, booths, check-ins, on-site offers, closed;
- the "Double Hundred" mentors: registered, assigned to students, sessions with several seekers;
- the 1-1-3-1 employment services; about a third of the served seekers get the full guarantee;
- noise, marked by ``Record.kind``: byte-identical duplicates, invalid records of many kinds, spoofed
  records (valid events published on another university's ingest topic) and out-of-order publication
  of valid records (``kind`` stays "valid"; ``occurred_at`` keeps the true time).

Timestamps lie between 08:00 and 20:00 Asia/Shanghai (stored as aware UTC datetimes) and are strictly
increasing along every entity's causal chain (posted < applied < offered < answered < hired < closed).
"""

from __future__ import annotations

import json
import random
import uuid
from bisect import bisect_left
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, timezone
from typing import Any, Literal, TypeVar

from events.base import Event
from events.codec import decode
from events.errors import EventValidationError
from events.jobfair import (
    BoothRegistered,
    JobFairClosed,
    JobFairScheduled,
    OnSiteOfferMade,
    StudentCheckedIn,
)
from events.mentoring import Expertise, MentorAssigned, MentoringSessionHeld, MentorRegistered
from events.privacy import pseudonymise
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
from events.reference import UNIVERSITIES, City, Degree, EmployerType, Industry
from events.services import (
    CareerCounsellingHeld,
    JobRecommended,
    PolicyBriefingDelivered,
    TrainingKind,
    TrainingOrInternshipOffered,
)
from events.topics import ingest_topic

Kind = Literal["valid", "duplicate", "invalid", "spoofed"]
KINDS: tuple[Kind, ...] = ("valid", "duplicate", "invalid", "spoofed")
LOCAL_TZ = timezone(timedelta(hours=8), "Asia/Shanghai")  # China has no daylight saving time
DAY_START = time(8, 0)
DAY_END = time(20, 0)
DEFAULT_DAY = date(2026, 11, 26)
DEFAULT_PSEUDONYM_KEY = "local-development-only-key"

T = TypeVar("T")


@dataclass(frozen=True)
class Record:
    """One record as a university system publishes it."""

    topic: str  # alliance.ingest.<university> it is published to
    key: bytes  # partition key (event subject); for bad records whatever a sloppy client would send
    value: bytes  # the bytes on the wire
    kind: Kind
    event: Event | None  # the decoded event for valid/duplicate/spoofed; None for invalid


# --------------------------------------------------------------------------------------------------
# reference data of the simulated day
# --------------------------------------------------------------------------------------------------

#: relative size (publishing volume) of each member university
UNIVERSITY_WEIGHTS: dict[str, float] = {
    "scu": 1.0, "uestc": 0.8, "swjtu": 0.75, "swufe": 0.55,
    "cqu": 0.95, "swu": 0.8, "swupl": 0.4, "cqmu": 0.4,
}

IND = Industry
_INDUSTRY_SKEW: dict[str, dict[Industry, float]] = {
    "scu": {IND.IT_SOFTWARE: 14, IND.HEALTHCARE: 12, IND.FINANCE: 8, IND.EDUCATION: 8, IND.PUBLIC_SECTOR: 8,
            IND.ELECTRONICS: 6, IND.CULTURE_MEDIA: 6, IND.MANUFACTURING: 5, IND.LEGAL: 4, IND.ENERGY: 4},
    "uestc": {IND.IT_SOFTWARE: 40, IND.ELECTRONICS: 30, IND.MANUFACTURING: 6, IND.FINANCE: 5, IND.AUTOMOTIVE: 3},
    "swjtu": {IND.CONSTRUCTION: 20, IND.LOGISTICS: 16, IND.MANUFACTURING: 14, IND.IT_SOFTWARE: 12,
              IND.ELECTRONICS: 8, IND.ENERGY: 8, IND.AUTOMOTIVE: 6},
    "swufe": {IND.FINANCE: 45, IND.IT_SOFTWARE: 10, IND.RETAIL: 8, IND.PUBLIC_SECTOR: 8, IND.LEGAL: 5},
    "cqu": {IND.AUTOMOTIVE: 24, IND.MANUFACTURING: 22, IND.CONSTRUCTION: 12, IND.ENERGY: 10, IND.IT_SOFTWARE: 10,
            IND.ELECTRONICS: 8},
    "swu": {IND.EDUCATION: 28, IND.AGRICULTURE: 14, IND.PUBLIC_SECTOR: 10, IND.CULTURE_MEDIA: 10, IND.IT_SOFTWARE: 8},
    "swupl": {IND.LEGAL: 45, IND.PUBLIC_SECTOR: 20, IND.FINANCE: 12, IND.CULTURE_MEDIA: 5},
    "cqmu": {IND.HEALTHCARE: 65, IND.PUBLIC_SECTOR: 8, IND.EDUCATION: 8, IND.MANUFACTURING: 6},
}
#: per university: weight of every industry (unlisted industries get weight 1, so every one occurs)
INDUSTRY_WEIGHTS: dict[str, dict[Industry, float]] = {
    u: {ind: skew.get(ind, 1.0) for ind in Industry} for u, skew in _INDUSTRY_SKEW.items()
}

#: range of the monthly salary_min (CNY) of a full-time bachelor's position, by industry
SALARY_BANDS: dict[Industry, tuple[int, int]] = {
    IND.IT_SOFTWARE: (9000, 16000), IND.ELECTRONICS: (8000, 14000), IND.FINANCE: (7000, 14000),
    IND.MANUFACTURING: (5500, 9000), IND.AUTOMOTIVE: (6500, 11000), IND.HEALTHCARE: (6000, 11000),
    IND.EDUCATION: (5000, 8000), IND.LEGAL: (6000, 11000), IND.PUBLIC_SECTOR: (4500, 7000),
    IND.ENERGY: (6500, 10000), IND.CONSTRUCTION: (6000, 10000), IND.LOGISTICS: (5000, 8000),
    IND.AGRICULTURE: (4500, 7000), IND.CULTURE_MEDIA: (5000, 9000), IND.RETAIL: (4500, 7500),
}
DEGREE_FACTOR: dict[Degree, float] = {Degree.ASSOCIATE: 0.85, Degree.BACHELOR: 1.0, Degree.MASTER: 1.3,
                                      Degree.DOCTORATE: 1.7}
SALARY_FLOOR, SALARY_CEILING = 4000, 30000

TITLES: dict[Industry, tuple[str, ...]] = {
    IND.IT_SOFTWARE: ("Backend Engineer", "Frontend Engineer", "Data Engineer", "Test Engineer",
                    "Algorithm Engineer", "Game Developer"),
    IND.ELECTRONICS: ("IC Design Engineer", "Hardware Engineer", "Embedded Software Engineer",
                    "RF Engineer", "Process Engineer"),
    IND.FINANCE: ("Credit Analyst", "Risk Management Assistant", "Investment Research Analyst",
                "Bank Teller Trainee", "Actuarial Assistant"),
    IND.MANUFACTURING: ("Production Engineer", "Quality Engineer", "Mechanical Designer",
                      "Supply Chain Planner", "Equipment Engineer"),
    IND.AUTOMOTIVE: ("Vehicle Calibration Engineer", "Powertrain Engineer", "Battery Systems Engineer",
                   "Autonomous Driving Engineer", "Body Design Engineer"),
    IND.HEALTHCARE: ("Resident Physician", "Registered Nurse", "Pharmacist", "Clinical Research Associate",
                   "Medical Laboratory Technician"),
    IND.EDUCATION: ("Mathematics Teacher", "English Teacher", "Curriculum Designer", "Student Counsellor"),
    IND.LEGAL: ("Legal Assistant", "Trainee Lawyer", "Compliance Officer", "Court Clerk", "Paralegal"),
    IND.PUBLIC_SECTOR: ("Community Affairs Officer", "Policy Research Assistant", "Rural Revitalisation Officer",
                      "Administrative Officer"),
    IND.ENERGY: ("Power Systems Engineer", "Grid Operations Engineer", "Renewable Energy Engineer"),
    IND.CONSTRUCTION: ("Site Engineer", "Structural Engineer", "Cost Engineer", "Rail Track Engineer"),
    IND.LOGISTICS: ("Logistics Planner", "Warehouse Operations Trainee", "Rail Freight Dispatcher"),
    IND.AGRICULTURE: ("Agronomist", "Food Safety Inspector", "Agricultural Technician"),
    IND.CULTURE_MEDIA: ("Content Editor", "Video Producer", "Brand Planner", "Journalist"),
    IND.RETAIL: ("Store Management Trainee", "E-commerce Operations Specialist", "Buyer Assistant"),
}

_EMPLOYER_CORE: dict[Industry, tuple[str, ...]] = {
    IND.IT_SOFTWARE: ("Software", "Cloud", "Data", "Digital", "Network"),
    IND.ELECTRONICS: ("Microelectronics", "Semiconductor", "Optoelectronics", "Display"),
    IND.FINANCE: ("Bank", "Securities", "Insurance", "Trust"),
    IND.MANUFACTURING: ("Machinery", "Heavy Industry", "Precision Manufacturing", "Materials"),
    IND.AUTOMOTIVE: ("Automobile", "Motor", "Auto Parts", "New Energy Vehicle"),
    IND.HEALTHCARE: ("People's Hospital", "Pharmaceutical", "Medical Devices", "Health"),
    IND.EDUCATION: ("Experimental School", "Education", "Foreign Language School"),
    IND.LEGAL: ("Law Firm", "Legal Services", "Arbitration Services"),
    IND.PUBLIC_SECTOR: ("Human Resources Bureau", "Market Regulation Bureau", "Civil Affairs Bureau"),
    IND.ENERGY: ("Power Grid", "Hydropower", "Natural Gas", "Photovoltaic"),
    IND.CONSTRUCTION: ("Construction Engineering", "Railway Engineering", "Urban Construction"),
    IND.LOGISTICS: ("Logistics", "Rail Freight", "Supply Chain"),
    IND.AGRICULTURE: ("Agricultural Technology", "Seed Industry", "Tea"),
    IND.CULTURE_MEDIA: ("Media", "Culture Tourism", "Film"),
    IND.RETAIL: ("Commerce", "Supermarkets", "E-commerce"),
}
_EMPLOYER_PREFIX = ("Tianfu", "Jinsha", "Rongcheng", "Shudu", "Bashu", "Jialing", "Yuzhou", "Liangjiang",
                    "Minjiang", "Qingcheng", "Emei", "Wulong", "Three Gorges", "Chaotian", "Xinan", "Jinjiang")
_EMPLOYER_SUFFIX: dict[EmployerType, str] = {
    EmployerType.STATE_OWNED: "Group Co., Ltd.", EmployerType.PRIVATE: "Co., Ltd.",
    EmployerType.FOREIGN: "(China) Co., Ltd.", EmployerType.PUBLIC_INSTITUTION: "Centre",
    EmployerType.GOVERNMENT: "Office", EmployerType.STARTUP: "Technology Studio",
    EmployerType.NON_PROFIT: "Foundation",
}
ET = EmployerType
_DEFAULT_EMPLOYER_TYPES: dict[EmployerType, float] = {
    ET.PRIVATE: 50, ET.STATE_OWNED: 30, ET.FOREIGN: 8, ET.STARTUP: 7, ET.NON_PROFIT: 3, ET.PUBLIC_INSTITUTION: 2}
EMPLOYER_TYPE_WEIGHTS: dict[Industry, dict[EmployerType, float]] = {
    ind: _DEFAULT_EMPLOYER_TYPES for ind in Industry} | {
    IND.PUBLIC_SECTOR: {ET.GOVERNMENT: 50, ET.PUBLIC_INSTITUTION: 50},
    IND.EDUCATION: {ET.PUBLIC_INSTITUTION: 60, ET.PRIVATE: 25, ET.STATE_OWNED: 10, ET.NON_PROFIT: 5},
    IND.HEALTHCARE: {ET.PUBLIC_INSTITUTION: 55, ET.PRIVATE: 25, ET.FOREIGN: 10, ET.STATE_OWNED: 10},
    IND.FINANCE: {ET.STATE_OWNED: 45, ET.PRIVATE: 30, ET.FOREIGN: 15, ET.STARTUP: 10},
    IND.AUTOMOTIVE: {ET.STATE_OWNED: 40, ET.PRIVATE: 35, ET.FOREIGN: 20, ET.STARTUP: 5},
    IND.IT_SOFTWARE: {ET.PRIVATE: 55, ET.STARTUP: 25, ET.FOREIGN: 12, ET.STATE_OWNED: 8},
    IND.LEGAL: {ET.PRIVATE: 70, ET.GOVERNMENT: 10, ET.PUBLIC_INSTITUTION: 10, ET.NON_PROFIT: 10},
    IND.ENERGY: {ET.STATE_OWNED: 70, ET.PRIVATE: 20, ET.FOREIGN: 10},
}

CHENGDU_SIDE = (City.CHENGDU, City.MIANYANG, City.DEYANG, City.LESHAN, City.NANCHONG, City.YIBIN,
                City.LUZHOU, City.DAZHOU)
CHONGQING_SIDE = (City.CHONGQING, City.WANZHOU, City.FULING, City.YONGCHUAN)
_CITY_WEIGHTS: dict[City, float] = {City.CHENGDU: 35.0, City.CHONGQING: 35.0} | {
    c: 4 for c in CHENGDU_SIDE[1:] + CHONGQING_SIDE[1:]}
DISTRICTS: dict[City, tuple[str, ...]] = {
    City.CHENGDU: ("Gaoxin District", "Jinjiang District", "Wuhou District", "Tianfu New Area", "Pidu District"),
    City.CHONGQING: ("Liangjiang New Area", "Yubei District", "Jiulongpo District", "Shapingba District",
                     "Nan'an District"),
}

_EXPERTISE_SKEW: dict[str, Expertise] = {
    "uestc": Expertise.TECHNOLOGY, "swufe": Expertise.ENTREPRENEURSHIP, "swupl": Expertise.POLICY_AND_LAW,
    "cqu": Expertise.INDUSTRY_INSIGHT, "swjtu": Expertise.TECHNOLOGY, "cqmu": Expertise.CAREER_PLANNING,
}
MENTOR_TITLES: dict[Expertise, tuple[str, ...]] = {
    Expertise.CAREER_PLANNING: ("Associate Professor of Career Education", "Career Development Coach"),
    Expertise.ENTREPRENEURSHIP: ("Incubator Director", "Founder and Chief Executive", "Angel Investor"),
    Expertise.INTERVIEW_SKILLS: ("HR Director", "Talent Acquisition Manager"),
    Expertise.INDUSTRY_INSIGHT: ("Chief Engineer", "General Manager", "Senior Industry Analyst"),
    Expertise.POLICY_AND_LAW: ("Partner, Law Firm", "Senior Judge (retired)", "Labour Policy Researcher"),
    Expertise.TECHNOLOGY: ("Chief Technology Officer", "Principal Engineer", "Research Fellow"),
}
BRIEFING_TOPICS = (
    "Graduate employment subsidies and social insurance support 2027",
    "Chengdu-Chongqing talent settlement and housing policy",
    "Grass-roots employment programmes for graduates",
    "Enlistment policy for college graduates",
    "Guaranteed start-up loans and entrepreneurship incentives",
    "Civil service and public institution recruitment examinations",
)
TRAINING_PROVIDERS: tuple[tuple[TrainingKind, str], ...] = (
    (TrainingKind.TRAINING, "Alliance Digital Skills Bootcamp"),
    (TrainingKind.TRAINING, "Sichuan Vocational Skills Training Centre"),
    (TrainingKind.TRAINING, "Chongqing Intelligent Manufacturing Training Base"),
    (TrainingKind.INTERNSHIP, "Western Science City Internship Programme"),
    (TrainingKind.INTERNSHIP, "Liangjiang New Area Graduate Internship Base"),
    (TrainingKind.INTERNSHIP, "Tianfu New Area Youth Internship Programme"),
)
FLAG_REASONS = ("misleading salary information", "fees charged to applicants",
                "discriminatory requirements in posting", "complaints about unpaid internship work")

#: base volumes at scale 1
BASE_POSTINGS = 1000
BASE_STUDENTS = 9000
BASE_MENTORS = 200
BASE_SERVED_SEEKERS = 1100
BASE_FLAGS = 4


@dataclass(frozen=True)
class FairPlan:
    """A job fair of the day (local times)."""

    host: str
    slug: str
    name: str
    venue: str
    starts: time
    ends: time
    booths: int  # at scale 1
    students: int  # at scale 1
    host_share: float  # share of visiting students from the host university


FAIRS: tuple[FairPlan, ...] = (
    FairPlan("cqu", "cqu-fair-2026-autumn", "2026 Chengdu-Chongqing Alliance Autumn Grand Job Fair",
             "Chongqing University Huxi Campus Gymnasium", time(9, 0), time(17, 0), 120, 1300, 0.45),
    FairPlan("uestc", "uestc-fair-2026-ei", "Electronic Information Industry Special Job Fair",
             "UESTC Qingshuihe Campus Student Activity Centre", time(13, 30), time(16, 30), 30, 400, 0.6),
)


# --------------------------------------------------------------------------------------------------
# small helpers
# --------------------------------------------------------------------------------------------------


def local_time(day: date, at: time) -> datetime:
    """``at`` (Asia/Shanghai) on ``day`` as an aware UTC datetime."""
    return datetime.combine(day, at, tzinfo=LOCAL_TZ).astimezone(UTC)


def _uniform(rng: random.Random, lo: datetime, hi: datetime) -> datetime:
    """A time in [lo, hi] with millisecond resolution."""
    span_ms = max(0, int((hi - lo).total_seconds() * 1000))
    return lo + timedelta(milliseconds=rng.randint(0, span_ms))


def _later(rng: random.Random, t: datetime, cap: datetime, min_gap_s: int = 30) -> datetime:
    """A time strictly after ``t`` (by at least ``min_gap_s``), normally before ``cap``.

    If ``t`` is already close to ``cap`` the window is one minute wide, so chains never stall.
    """
    lo = t + timedelta(seconds=min_gap_s)
    return _uniform(rng, lo, max(cap, lo + timedelta(seconds=60)))


def _weighted(rng: random.Random, weights: Mapping[T, float]) -> T:
    """One key of ``weights`` chosen with probability proportional to its weight."""
    keys = list(weights)
    return rng.choices(keys, weights=[weights[k] for k in keys])[0]


def _event_id(rng: random.Random) -> uuid.UUID:
    """A version-4 UUID drawn from ``rng`` (so the day is reproducible)."""
    return uuid.UUID(int=rng.getrandbits(128), version=4)


UUID_VERSIONS = (1, 4, 6, 7, 8)  # what universities' systems mint; ids are opaque to the alliance


def minted_id(rng: random.Random, at: datetime, version: int) -> uuid.UUID:
    """An event id of the given UUID version, minted at ``at`` with random bits from ``rng``.

    v1/v6 carry a 100 ns timestamp, v7 the unix milliseconds, v8 here the same layout as v7 (vendor
    defined). v6 and v7 ids are minted by a clock truncated to the hour, as a nightly batch export does:
    ids of one entity then share their leading bits, and only the whole id tells them apart."""
    rand = rng.getrandbits(128)
    if version == 4:
        return uuid.UUID(int=rand, version=4)
    if version in (7, 8):
        ms = int(at.timestamp()) // 3600 * 3600 * 1000
        value = (ms << 80) | (version << 76) | (rand & ((1 << 76) - 1))
        return uuid.UUID(int=(value & ~(0b11 << 62)) | (0b10 << 62))
    ticks = (int(at.timestamp()) // 3600 * 3600) * 10_000_000 + 0x01B21DD213814000  # since 1582-10-15
    clock_node = rand & ((1 << 62) - 1)
    if version == 1:
        high = ((ticks & 0xFFFFFFFF) << 32) | (((ticks >> 32) & 0xFFFF) << 16) | (1 << 12) | ((ticks >> 48) & 0xFFF)
    elif version == 6:
        high = ((ticks >> 12) << 16) | (6 << 12) | (ticks & 0xFFF)
    else:
        raise ValueError(f"UUID version {version} is not one of {UUID_VERSIONS}")
    return uuid.UUID(int=(high << 64) | (0b10 << 62) | clock_node)


def remint_ids(events: Sequence[Event], versions: Sequence[int], seed: int) -> list[Event]:
    """The same events with ids of the given UUID versions (cycled), reproducibly from ``seed``."""
    rng = random.Random(seed)
    return [e.model_copy(update={"event_id": minted_id(rng, e.occurred_at, versions[i % len(versions)])})
            for i, e in enumerate(events)]


EventT = TypeVar("EventT", bound=Event)


def new_event(cls: type[EventT], rng: random.Random, source: str, at: datetime, data: dict[str, Any]) -> EventT:
    """A validated event of type ``cls`` with an event id drawn from ``rng``."""
    return cls.model_validate({"event_id": _event_id(rng), "source": source, "occurred_at": at, "data": data})


def _scaled(base: float, scale: float, minimum: int = 1) -> int:
    """``base * scale`` rounded, at least ``minimum``."""
    return max(minimum, round(base * scale))


def _share(total: int, university: str, minimum: int = 1) -> int:
    """The part of ``total`` that falls to ``university`` by its weight."""
    return max(minimum, round(total * UNIVERSITY_WEIGHTS[university] / sum(UNIVERSITY_WEIGHTS.values())))


def _round500(value: float) -> int:
    return round(value / 500.0) * 500


def same_side(a: City, b: City) -> bool:
    """Whether two cities are on the same side (Sichuan / Chongqing) of the twin-city region."""
    return (a in CHENGDU_SIDE) == (b in CHENGDU_SIDE)


# --------------------------------------------------------------------------------------------------
# actors: students and employers
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Student:
    university: str
    number: str  # the raw student number: never leaves the university (except in invalid records)
    seeker_id: str
    degree: Degree


@dataclass(frozen=True)
class Employer:
    employer_id: str
    name: str
    type: EmployerType
    industry: Industry
    city: City


def make_students(rng: random.Random, scale: float, key: str) -> dict[str, list[Student]]:
    """Each university's student population, pseudonymised with ``key``."""
    degrees = {Degree.BACHELOR: 62, Degree.MASTER: 30, Degree.DOCTORATE: 5, Degree.ASSOCIATE: 3}
    total = _scaled(BASE_STUDENTS, scale)
    pools: dict[str, list[Student]] = {}
    for index, code in enumerate(UNIVERSITIES, start=1):
        pool = []
        for seq in range(_share(total, code, minimum=40)):
            number = f"{rng.choice((2022, 2023, 2024, 2025))}{index:02d}{seq:05d}"
            pool.append(Student(code, number, pseudonymise(code, number, key), _weighted(rng, degrees)))
        pools[code] = pool
    return pools


def make_employers(rng: random.Random, scale: float) -> dict[Industry, list[Employer]]:
    """The employers of the region, by industry."""
    per_industry = _scaled(25, scale, minimum=4)
    employers: dict[Industry, list[Employer]] = {}
    n = 0
    for industry in Industry:
        employers[industry] = []
        for _ in range(per_industry):
            n += 1
            etype = _weighted(rng, EMPLOYER_TYPE_WEIGHTS[industry])
            name = f"{rng.choice(_EMPLOYER_PREFIX)} {rng.choice(_EMPLOYER_CORE[industry])} " \
                   f"{_EMPLOYER_SUFFIX[etype]}"
            employers[industry].append(Employer(f"emp-{n:04d}", name, etype, industry,
                                                _weighted(rng, _CITY_WEIGHTS)))
    return employers


def pick_employer(rng: random.Random, employers: Sequence[Employer], near: City) -> Employer:
    """An employer, most likely one in ``near``, then one on the same side of the region."""
    weights = [6.0 if e.city == near else 2.0 if same_side(e.city, near) else 1.0 for e in employers]
    return rng.choices(list(employers), weights=weights)[0]


def pick_student(rng: random.Random, students: dict[str, list[Student]], home: str, home_share: float,
                 neighbours_only: bool = False) -> Student:
    """A student of ``home`` with probability ``home_share``, else of another (preferably nearby) member."""
    if rng.random() < home_share:
        return rng.choice(students[home])
    home_city = UNIVERSITIES[home].city
    weights = {u: (3.0 if UNIVERSITIES[u].city == home_city else 0.0 if neighbours_only else 1.0)
               * UNIVERSITY_WEIGHTS[u] for u in students if u != home}
    return rng.choice(students[_weighted(rng, weights)])


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
    posting_id = f"{university}-job-{seq:05d}"
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


def _recruitment_event(cls: type[Event], ctx: Ctx, p: Posting, at: datetime, **data: Any) -> Event:
    event = new_event(cls, ctx.rng, p.university, at, {"posting_id": p.posting_id, **data})
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
        application_id = f"{p.university}-app-{app_counter[0]:06d}"
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
        _recruitment_event(Hired, ctx, p, _later(rng, answered, ctx.at(19, 30)), offer_id=offer_id,
                           seeker_id=student.seeker_id, start_date=start)
        p.hires += 1


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


def job_fair(ctx: Ctx, plan: FairPlan) -> list[Event]:
    """One fair, all published by its host: scheduled, booths, check-ins, on-site offers, closed."""
    rng = ctx.rng
    host, fair_id = plan.host, plan.slug
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
        events += _fair_visit(ctx, plan, student, booths, registered, offers)
    last = max(e.occurred_at for e in events)
    emit(JobFairClosed, _later(rng, max(last, ends), ends + timedelta(minutes=20)))
    return events


def _arrival(rng: random.Random, starts: datetime, ends: datetime) -> datetime:
    """Arrival time at a fair: peaks in the first and in the middle third, nobody in the last half hour."""
    span = (ends - starts).total_seconds() - 1800
    mode = rng.choice((0.15, 0.55))
    return starts + timedelta(milliseconds=int(rng.triangular(0, span, span * mode) * 1000))


def _fair_visit(ctx: Ctx, plan: FairPlan, student: Student, booths: list[str],
                registered: dict[str, datetime], offers: list[int]) -> list[Event]:
    """One student's visit: entrance check-in (sometimes twice), booth check-ins, maybe an on-site offer."""
    rng = ctx.rng
    starts, ends = local_time(ctx.day, plan.starts), local_time(ctx.day, plan.ends)
    events: list[Event] = []

    def emit(cls: type[Event], at: datetime, **data: Any) -> None:
        events.append(new_event(cls, rng, plan.host, at,
                                {"fair_id": plan.slug, "seeker_id": student.seeker_id, **data}))

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
                emit(OnSiteOfferMade, t, booth_id=booth, offer_id=f"{plan.slug}-o{offers[0]:04d}")
    return events


# --------------------------------------------------------------------------------------------------
# mentoring ("Double Hundred" mentors)
# --------------------------------------------------------------------------------------------------


def mentor(ctx: Ctx, university: str, seq: int) -> list[Event]:
    """A mentor registered by ``university``, assigned to students, holding sessions with several of them."""
    rng = ctx.rng
    mentor_id = f"{university}-mentor-{seq:03d}"
    skew = _EXPERTISE_SKEW.get(university)
    expertise = skew if skew is not None and rng.random() < 0.5 else rng.choice(list(Expertise))
    industry = _weighted(rng, INDUSTRY_WEIGHTS[university])
    employer_type = ET.PUBLIC_INSTITUTION if rng.random() < 0.5 else _weighted(
        rng, EMPLOYER_TYPE_WEIGHTS[industry])
    events: list[Event] = []

    def emit(cls: type[Event], at: datetime, **data: Any) -> None:
        events.append(new_event(cls, rng, university, at, {"mentor_id": mentor_id, **data}))

    registered = ctx.between((8, 0), (10, 0))
    emit(MentorRegistered, registered, university=university, expertise=expertise, industry=industry,
         employer_type=employer_type, title=rng.choice(MENTOR_TITLES[expertise]))
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
        emit(MentoringSessionHeld, t, session_id=f"{mentor_id}-s{s + 1}",
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
            data |= {"counselling_id": f"{u}-counsel-{n:05d}",
                     "counsellor_id": f"{u}-counsellor-{rng.randint(1, 12):02d}"}
        elif what == "recommendation":
            posting_id = open_postings.pick(rng, at, u, recommended)
            if posting_id is None:
                continue
            recommended.add(posting_id)
            cls = JobRecommended
            data |= {"recommendation_id": f"{u}-rec-{n:06d}", "posting_id": posting_id}
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


# --------------------------------------------------------------------------------------------------
# publish order and noise
# --------------------------------------------------------------------------------------------------


def entity_of(event: Event) -> tuple[str, str]:
    """The entity an event is about: (family, subject). Causal order holds per entity."""
    return event.family, str(event.subject)


def valid_record(event: Event) -> Record:
    """The record a university publishes for one of its own events."""
    return Record(ingest_topic(event.source), event.key, event.to_json(), "valid", event)


def _offer_id(event: Event) -> str | None:
    offer_id: str | None = getattr(event.data, "offer_id", None)
    return offer_id


def _forced_moves(events: Sequence[Event], later: dict[int, list[int]]) -> list[tuple[int, int]]:
    """The three textbook cases, when the day has them: update after close, check-in after the fair
    closed, OfferMade after its OfferAccepted. Returns (mover, anchor) index pairs."""
    pairs: list[tuple[int, int]] = []
    rules: list[tuple[type[Event], Callable[[Event, Event], bool]]] = [
        (JobPostingUpdated, lambda _m, a: isinstance(a, JobPostingClosed)),
        (StudentCheckedIn, lambda _m, a: isinstance(a, JobFairClosed)),
        (OfferMade, lambda m, a: isinstance(a, OfferAccepted) and _offer_id(a) == _offer_id(m)),
    ]
    for cls, fits in rules:
        for i, e in enumerate(events):
            if isinstance(e, cls):
                anchor = next((j for j in later.get(i, ()) if fits(e, events[j])), None)
                if anchor is not None:
                    pairs.append((i, anchor))
                    break
    return pairs


def reorder(rng: random.Random, events: Sequence[Event], rate: float) -> list[Event]:
    """Move about ``rate * len(events)`` events to just after a causally later event of the same entity."""
    count = round(len(events) * rate)
    if count <= 0:
        return list(events)
    by_entity: dict[tuple[str, str], list[int]] = {}
    for i, e in enumerate(events):
        by_entity.setdefault(entity_of(e), []).append(i)
    later = {idx[k]: idx[k + 1:] for idx in by_entity.values() for k in range(len(idx) - 1)}
    moves = dict(_forced_moves(events, later)[:count])
    reserved = set(moves) | set(moves.values())
    pool = [i for i in later if i not in reserved]
    movers = rng.sample(pool, min(len(pool), count - len(moves)))
    moving = set(movers) | set(moves)
    for i in movers:
        anchors = [j for j in later[i] if j not in moving]
        if anchors:
            moves[i] = anchors[-1] if rng.random() < 0.4 else rng.choice(anchors)
    attached: dict[int, list[int]] = {}
    for mover in sorted(moves):
        attached.setdefault(moves[mover], []).append(mover)
    out: list[Event] = []
    for i, e in enumerate(events):
        if i in moves:
            continue
        out.append(e)
        out.extend(events[m] for m in attached.get(i, ()))
    return out


def _spoof(rng: random.Random, event: Event) -> Record:
    """The same event re-sent (new event id) by another member on its own ingest topic."""
    fake = event.model_copy(update={"event_id": _event_id(rng)})
    victim_topic = ingest_topic(rng.choice([u for u in UNIVERSITIES if u != event.source]))
    return Record(victim_topic, fake.key, fake.to_json(), "spoofed", fake)


def insert_noise(rng: random.Random, base: list[Record], noise: list[tuple[int, Record]]) -> list[Record]:
    """Insert each (slot, record) of ``noise`` before ``base[slot]`` (slot == len(base): at the end)."""
    by_slot: dict[int, list[Record]] = {}
    for slot, record in noise:
        by_slot.setdefault(slot, []).append(record)
    out: list[Record] = []
    for slot in range(len(base) + 1):
        out.extend(by_slot.get(slot, ()))
        if slot < len(base):
            out.append(base[slot])
    return out


def _later_slot(rng: random.Random, index: int, n: int) -> int:
    """A slot after ``base[index]``: mostly a quick retry (within 50 records), sometimes a late replay."""
    if rng.random() < 0.7:
        return rng.randint(index + 1, min(n, index + 50))
    return rng.randint(index + 1, n)


def noise(rng: random.Random, base: list[Record], *, day: date, duplicate_rate: float, invalid_rate: float,
          spoofed_rate: float) -> list[tuple[int, Record]]:
    """Duplicates, invalid and spoofed records, each with the slot it is published in."""
    n = len(base)
    out: list[tuple[int, Record]] = []
    for i in rng.sample(range(n), min(n, round(n * duplicate_rate))):
        out.append((_later_slot(rng, i, n), Record(base[i].topic, base[i].key, base[i].value, "duplicate",
                                                   base[i].event)))
    for _ in range(round(n * invalid_rate)):
        template = base[rng.randrange(n)].event
        assert template is not None
        out.append((rng.randint(0, n), invalid_record(rng, template, day)))
    for _ in range(round(n * spoofed_rate)):
        i = rng.randrange(n)
        template = base[i].event
        assert template is not None
        out.append((_later_slot(rng, i, n), _spoof(rng, template)))
    return out


# --------------------------------------------------------------------------------------------------
# invalid records: what a sloppy university system sends
# --------------------------------------------------------------------------------------------------

Mutation = tuple[bytes, bytes]  # (key, value)
Mutator = Callable[[random.Random, Event, dict[str, Any], date], Mutation | None]


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj, ensure_ascii=False).encode()


def _m_truncated(rng: random.Random, ev: Event, obj: dict[str, Any], day: date) -> Mutation | None:
    value = ev.to_json()
    return ev.key, value[: rng.randint(len(value) // 3, len(value) - 2)]


def _m_csv_line(rng: random.Random, ev: Event, obj: dict[str, Any], day: date) -> Mutation | None:
    return b"", ",".join((ev.type, ev.source, str(ev.subject), ev.occurred_at.isoformat())).encode()


def _m_batch_array(rng: random.Random, ev: Event, obj: dict[str, Any], day: date) -> Mutation | None:
    return ev.key, _dumps([obj])


def _m_gbk(rng: random.Random, ev: Event, obj: dict[str, Any], day: date) -> Mutation | None:
    if "title" not in obj["data"] and "employer_name" not in obj["data"]:
        return None
    obj["data"]["title" if "title" in obj["data"] else "employer_name"] = "软件开发工程师（成渝双城）"
    return ev.key, json.dumps(obj, ensure_ascii=False).encode("gbk")


def _m_epoch_time(rng: random.Random, ev: Event, obj: dict[str, Any], day: date) -> Mutation | None:
    obj["occurred_at"] = int(ev.occurred_at.timestamp())
    return ev.key, _dumps(obj)


def _m_naive_time(rng: random.Random, ev: Event, obj: dict[str, Any], day: date) -> Mutation | None:
    obj["occurred_at"] = ev.occurred_at.astimezone(LOCAL_TZ).replace(tzinfo=None).isoformat()
    return ev.key, _dumps(obj)


def _m_string_number(rng: random.Random, ev: Event, obj: dict[str, Any], day: date) -> Mutation | None:
    for name in ("positions", "salary_monthly", "positions_offered", "duration_minutes", "salary_min"):
        if obj["data"].get(name) is not None:
            obj["data"][name] = f"{obj['data'][name]}"
            return ev.key, _dumps(obj)
    obj["schema_version"] = "1"
    return ev.key, _dumps(obj)


_BAD_ENUMS = {"industry": "blockchain", "city": "beijing", "employer_type": "family_business",
              "expertise": "networking", "kind": "part_time", "reason": "cancelled", "degree": "phd",
              "severity": "banned", "topic": "soft_skills"}


def _m_bad_enum(rng: random.Random, ev: Event, obj: dict[str, Any], day: date) -> Mutation | None:
    for name, bad in _BAD_ENUMS.items():
        if name in obj["data"] and not isinstance(ev, PolicyBriefingDelivered | EmployerFlagged):
            obj["data"][name] = bad
            return ev.key, _dumps(obj)
    obj["source"] = rng.choice(("cdut", "cqupt", "SCU "))  # not a member (or sloppily spelled)
    return ev.key, _dumps(obj)


def _m_unknown_type(rng: random.Random, ev: Event, obj: dict[str, Any], day: date) -> Mutation | None:
    obj["type"] = rng.choice((f"{ev.family}.deleted", ev.type + ".v2", "recruitment.job_reposted"))
    return ev.key, _dumps(obj)


def _m_missing_field(rng: random.Random, ev: Event, obj: dict[str, Any], day: date) -> Mutation | None:
    where, name = rng.choice((("", "source"), ("", "occurred_at"), ("", "type"), ("data", ev.key_field)))
    del (obj[where] if where else obj)[name]
    if where:
        del obj["subject"]
    return ev.key, _dumps(obj)


def _m_phone(rng: random.Random, ev: Event, obj: dict[str, Any], day: date) -> Mutation | None:
    phone = f"1{rng.choice('3589')}{rng.randint(0, 9)}-{rng.randint(0, 9999):04d}-{rng.randint(0, 9999):04d}"
    for name in ("title", "employer_name", "topic", "provider", "reason", "name"):
        if isinstance(obj["data"].get(name), str) and not isinstance(ev, MentoringSessionHeld):
            obj["data"][name] = f"{obj['data'][name]} (contact HR: {phone})"
            return ev.key, _dumps(obj)
    return None


def _m_raw_student_number(rng: random.Random, ev: Event, obj: dict[str, Any], day: date) -> Mutation | None:
    raw = f"{rng.choice((2022, 2023, 2024))}{rng.randint(1, 8):02d}{rng.randint(0, 99999):05d}"
    data = obj["data"]
    if "seeker_id" in data:
        data["seeker_id"] = raw
    elif "seeker_ids" in data:
        data["seeker_ids"][0] = raw
    else:
        return None
    if ev.key_field == "seeker_id":
        obj["subject"] = raw
        return raw.encode(), _dumps(obj)
    return ev.key, _dumps(obj)


def _m_student_name(rng: random.Random, ev: Event, obj: dict[str, Any], day: date) -> Mutation | None:
    if "seeker_id" not in obj["data"]:
        return None
    obj["data"]["student_name"] = rng.choice(("Zhang Wei", "Li Na", "Wang Fang", "Liu Yang"))
    return ev.key, _dumps(obj)


def _m_subject_mismatch(rng: random.Random, ev: Event, obj: dict[str, Any], day: date) -> Mutation | None:
    obj["subject"] = f"{obj['subject']}-x"[:80] if not str(obj["subject"]).startswith("ps_") else "ps_" + "0" * 32
    if obj["subject"] == str(ev.subject):
        obj["subject"] = "ps_" + "1" * 32
    return ev.key, _dumps(obj)


def _m_posting_rules(rng: random.Random, ev: Event, obj: dict[str, Any], day: date) -> Mutation | None:
    if not isinstance(ev, JobPosted):
        return None
    data = obj["data"]
    if rng.random() < 0.5:
        data["salary_min"], data["salary_max"] = data["salary_max"] + 1000, data["salary_min"]
    else:
        data["deadline"] = (day - timedelta(days=3)).isoformat()
    return ev.key, _dumps(obj)


def _m_oversized(rng: random.Random, ev: Event, obj: dict[str, Any], day: date) -> Mutation | None:
    obj["data"]["attachment"] = "data:application/pdf;base64," + "QUJD" * 4500
    return ev.key, _dumps(obj)


MUTATORS: tuple[Mutator, ...] = (
    _m_truncated, _m_csv_line, _m_batch_array, _m_gbk, _m_epoch_time, _m_naive_time, _m_string_number,
    _m_bad_enum, _m_unknown_type, _m_missing_field, _m_phone, _m_raw_student_number, _m_student_name,
    _m_subject_mismatch, _m_posting_rules, _m_oversized,
)


def _fails_decode(value: bytes) -> bool:
    try:
        decode(value)
    except EventValidationError:
        return True
    return False


def invalid_record(rng: random.Random, template: Event, day: date) -> Record:
    """A broken record derived from ``template`` by one of MUTATORS (it is checked to fail decode)."""
    topic = ingest_topic(template.source)
    for mutator in rng.sample(MUTATORS, len(MUTATORS)):
        result = mutator(rng, template, json.loads(template.to_json()), day)
        if result is not None and _fails_decode(result[1]):
            return Record(topic, result[0], result[1], "invalid", None)
    raise AssertionError(f"no mutation of {template.type} fails decoding")  # pragma: no cover


# --------------------------------------------------------------------------------------------------
# the day
# --------------------------------------------------------------------------------------------------


def day_events(*, seed: int = 7, scale: float = 1.0, day: date = DEFAULT_DAY,
               pseudonym_key: str = DEFAULT_PSEUDONYM_KEY) -> tuple[random.Random, list[Event]]:
    """Every valid event of the day in occurred_at order (and the random source, to continue with)."""
    if scale <= 0:
        raise ValueError("scale must be positive")
    rng = random.Random(seed)
    ctx = Ctx(rng, day, scale, make_students(rng, scale, pseudonym_key), make_employers(rng, scale))
    recruiting, postings = recruitment(ctx)
    events = recruiting + [e for plan in FAIRS for e in job_fair(ctx, plan)] + mentoring(ctx)
    events += services(ctx, postings)
    order = sorted(range(len(events)), key=lambda i: (events[i].occurred_at, i))
    return rng, [events[i] for i in order]


def alliance_day(*, seed: int = 7, scale: float = 1.0, day: date = DEFAULT_DAY,
                 pseudonym_key: str = DEFAULT_PSEUDONYM_KEY,
                 duplicate_rate: float = 0.02, invalid_rate: float = 0.01, spoofed_rate: float = 0.005,
                 out_of_order_rate: float = 0.02, uuid_versions: Sequence[int] = (4,)) -> list[Record]:
    """The records of one alliance day, in publish order (see the module docstring).

    Deterministic: the same arguments give the same list. ``scale=1`` gives about 20,000 records.
    ``uuid_versions`` other than (4,) re-mint the event ids with those versions in turn (see minted_id).
    """
    for name, rate in (("duplicate_rate", duplicate_rate), ("invalid_rate", invalid_rate),
                       ("spoofed_rate", spoofed_rate), ("out_of_order_rate", out_of_order_rate)):
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"{name} must be within 0..1")
    rng, events = day_events(seed=seed, scale=scale, day=day, pseudonym_key=pseudonym_key)
    if tuple(uuid_versions) != (4,):
        events = remint_ids(events, uuid_versions, seed)
    base = [valid_record(e) for e in reorder(rng, events, out_of_order_rate)]
    extra = noise(rng, base, day=day, duplicate_rate=duplicate_rate, invalid_rate=invalid_rate,
                  spoofed_rate=spoofed_rate)
    return insert_noise(rng, base, extra)
