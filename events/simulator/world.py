"""The simulated world: reference data of the day (weights, salary bands, names), small helpers, event ids,
and the actors (students, employers)."""


from __future__ import annotations

import random
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, timezone
from typing import Any, Literal, TypeVar

from events.base import Event
from events.mentoring import Expertise
from events.privacy import DEVELOPMENT_KEY, pseudonymise
from events.reference import UNIVERSITIES, City, Degree, EmployerType, Industry
from events.services import (
    TrainingKind,
)

Kind = Literal["valid", "duplicate", "invalid", "spoofed", "foreign"]
KINDS: tuple[Kind, ...] = ("valid", "duplicate", "invalid", "spoofed", "foreign")
LOCAL_TZ = timezone(timedelta(hours=8), "Asia/Shanghai")  # China has no daylight saving time
DAY_START = time(8, 0)
DAY_END = time(20, 0)
DEFAULT_DAY = date(2026, 11, 26)
DEFAULT_PSEUDONYM_KEY = DEVELOPMENT_KEY
# event types a simulated day does not publish: what an erasure changes depends on when it arrives relative to
# the other universities' events about the seeker, which no oracle of a concurrent day can know (erasure is
# tested on its own: tests/unit/test_erasure.py, tests/integration/test_erasure.py)
# event types a simulated day has only when asked for (revisions: alliance_day(revision_rate=...))
NOT_SIMULATED = frozenset({"services.seeker_erasure_requested", "corrections.event_retracted",
                           "corrections.event_corrected"})

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


def new_event(cls: type[EventT], rng: random.Random, source: str, at: datetime, data: dict[str, Any],
              schema_version: int = 1) -> EventT:
    """A validated event of type ``cls`` with an event id drawn from ``rng``."""
    return cls.model_validate({"event_id": _event_id(rng), "source": source, "occurred_at": at, "data": data,
                               "schema_version": schema_version})


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


