"""The benchmark's input: valid events, pre-serialised for the ingest topics.

``events.simulator.alliance_day`` (valid records only) is used when that module exists; otherwise a
deterministic generator below builds a realistic mix of all four families from the models, so the
benchmark never depends on work in progress.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from events.base import Event
from events.codec import encode
from events.jobfair import BoothRegistered, JobFairScheduled, StudentCheckedIn
from events.mentoring import MentoringSessionHeld, MentorRegistered
from events.recruitment import ApplicationSubmitted, JobPosted, OfferMade
from events.reference import UNIVERSITIES, City, Degree, EmployerType, Industry
from events.services import CareerCounsellingHeld, JobRecommended, PolicyBriefingDelivered
from events.topics import ingest_topic


@dataclass(frozen=True)
class Item:
    """One event as sent: ingest topic (without suffix), key and value bytes, and the model."""

    topic: str
    key: bytes
    value: bytes
    event: Event


def _mk(cls: type[Event], **fields: Any) -> Event:
    return cls.model_validate(fields)


def _seeker(rng: random.Random) -> str:
    return "ps_" + "".join(rng.choice("0123456789abcdef") for _ in range(32))


def generate(n: int, seed: int = 7, day: date = date(2026, 6, 1)) -> list[Event]:
    """``n`` valid events of all four families, all on ``day`` (UTC), deterministic for a seed."""
    rng = random.Random(seed)
    unis = list(UNIVERSITIES)
    base = datetime(day.year, day.month, day.day, 1, tzinfo=UTC)
    postings: list[tuple[str, str]] = []  # (source, posting_id)
    fairs: list[tuple[str, str]] = []
    mentors: list[tuple[str, str]] = []
    seekers = [_seeker(rng) for _ in range(max(50, n // 20))]
    out: list[Event] = []
    tag = f"{seed:x}-{day:%m%d}"

    def when() -> datetime:
        return base + timedelta(seconds=rng.randint(0, 20 * 3600))

    def uid() -> uuid.UUID:
        return uuid.UUID(int=rng.getrandbits(128), version=4)

    while len(out) < n:
        i = len(out)
        src = rng.choice(unis)
        roll = rng.random()
        ev: Event
        if roll < 0.12 or not postings:
            pid = f"{src}-job-{tag}-{i}"
            postings.append((src, pid))
            lo = rng.randint(3, 15) * 1000
            ev = _mk(JobPosted, event_id=uid(), source=src, occurred_at=when(), data={
                "posting_id": pid, "employer_id": f"emp-{rng.randint(1, 400)}",
                "employer_name": f"Employer {rng.randint(1, 400)}",
                "employer_type": rng.choice(list(EmployerType)), "industry": rng.choice(list(Industry)),
                "city": rng.choice(list(City)), "title": "Graduate engineer", "positions": rng.randint(1, 20),
                "degree_min": rng.choice(list(Degree)), "salary_min": lo, "salary_max": lo + 4000,
                "deadline": day + timedelta(days=30)})
        elif roll < 0.45:
            psrc, pid = rng.choice(postings)
            ev = _mk(ApplicationSubmitted, event_id=uid(), source=psrc, occurred_at=when(), data={
                "posting_id": pid, "application_id": f"app-{tag}-{i}", "seeker_id": rng.choice(seekers),
                "degree": rng.choice(list(Degree))})
        elif roll < 0.52:
            psrc, pid = rng.choice(postings)
            ev = _mk(OfferMade, event_id=uid(), source=psrc, occurred_at=when(), data={
                "posting_id": pid, "offer_id": f"off-{tag}-{i}", "application_id": f"app-{tag}-{i}",
                "seeker_id": rng.choice(seekers), "salary_monthly": rng.randint(4, 20) * 1000})
        elif roll < 0.55 or not fairs:
            fid = f"{src}-fair-{tag}-{i}"
            fairs.append((src, fid))
            start = when()
            ev = _mk(JobFairScheduled, event_id=uid(), source=src, occurred_at=start, data={
                "fair_id": fid, "name": "Spring fair", "host_university": src,
                "city": UNIVERSITIES[src].city, "venue": "Main hall", "starts_at": start,
                "ends_at": start + timedelta(hours=6)})
        elif roll < 0.60:
            fsrc, fid = rng.choice(fairs)
            ev = _mk(BoothRegistered, event_id=uid(), source=fsrc, occurred_at=when(), data={
                "fair_id": fid, "booth_id": f"booth-{tag}-{i}", "employer_id": f"emp-{rng.randint(1, 400)}",
                "employer_name": "Booth employer", "employer_type": rng.choice(list(EmployerType)),
                "industry": rng.choice(list(Industry)), "positions_offered": rng.randint(0, 30)})
        elif roll < 0.72:
            fsrc, fid = rng.choice(fairs)
            ev = _mk(StudentCheckedIn, event_id=uid(), source=fsrc, occurred_at=when(), data={
                "fair_id": fid, "seeker_id": rng.choice(seekers)})
        elif roll < 0.75 or not mentors:
            mid = f"{src}-mentor-{tag}-{i}"
            mentors.append((src, mid))
            ev = _mk(MentorRegistered, event_id=uid(), source=src, occurred_at=when(), data={
                "mentor_id": mid, "university": src, "expertise": "career_planning",
                "industry": rng.choice(list(Industry)), "employer_type": rng.choice(list(EmployerType)),
                "title": "Senior engineer"})
        elif roll < 0.80:
            msrc, mid = rng.choice(mentors)
            ev = _mk(MentoringSessionHeld, event_id=uid(), source=msrc, occurred_at=when(), data={
                "mentor_id": mid, "session_id": f"sess-{tag}-{i}", "topic": "interview_skills",
                "seeker_ids": [rng.choice(seekers) for _ in range(rng.randint(1, 4))],
                "duration_minutes": 60})
        elif roll < 0.86:
            ev = _mk(PolicyBriefingDelivered, event_id=uid(), source=src, occurred_at=when(), data={
                "seeker_id": rng.choice(seekers), "briefing_id": f"brief-{tag}-{i}", "topic": "Hukou policy"})
        elif roll < 0.91:
            ev = _mk(CareerCounsellingHeld, event_id=uid(), source=src, occurred_at=when(), data={
                "seeker_id": rng.choice(seekers), "counselling_id": f"cns-{tag}-{i}",
                "counsellor_id": f"counsellor-{rng.randint(1, 30)}"})
        else:
            _, pid = rng.choice(postings)
            ev = _mk(JobRecommended, event_id=uid(), source=src, occurred_at=when(), data={
                "seeker_id": rng.choice(seekers), "recommendation_id": f"rec-{tag}-{i}", "posting_id": pid})
        out.append(ev)
    return out


def _from_simulator(n: int, seed: int) -> list[Item] | None:
    try:
        from events import simulator
    except ImportError:
        return None
    scale = max(n / 20_000, 0.02)
    for _ in range(6):
        records: list[Any] = simulator.alliance_day(seed=seed, scale=scale, duplicate_rate=0.0,
                                                    invalid_rate=0.0, spoofed_rate=0.0)
        valid = [Item(r.topic, r.key, r.value, r.event) for r in records
                 if r.kind == "valid" and r.event is not None]
        if len(valid) >= n:
            return valid[:n]
        scale *= 1.2 * n / max(len(valid), 1)
    return None


def load_items(n: int, seed: int = 7, source: str = "auto") -> tuple[list[Item], str]:
    """``n`` valid events as sent (simulator records as they are, or generated), and their source."""
    if source in ("auto", "simulator"):
        sim = _from_simulator(n, seed)
        if sim is not None:
            return sim, "simulator"
        if source == "simulator":
            raise RuntimeError("events.simulator is not available or produced too few valid events")
    return items(generate(n, seed)), "generator"


def items(evs: list[Event]) -> list[Item]:
    return [Item(ingest_topic(e.source), e.key, encode(e), e) for e in evs]


def by_topic(its: list[Item]) -> Iterator[tuple[str, list[Item]]]:
    groups: dict[str, list[Item]] = {}
    for it in its:
        groups.setdefault(it.topic, []).append(it)
    yield from groups.items()
