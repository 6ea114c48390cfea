"""The topic registry: every topic the backbone uses, with explicit partitions and cleanup policy.

Nothing is auto-created: ``python -m infra provision`` creates exactly these topics.
Names: alliance.ingest.<university>, alliance.events.<family>, alliance.dlq, alliance.agg.<name>.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from events.reference import UNIVERSITIES


class Family(StrEnum):
    RECRUITMENT = "recruitment"
    JOBFAIR = "jobfair"
    MENTORING = "mentoring"
    SERVICES = "services"


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    compacted: bool = False
    retention_ms: int | None = None
    description: str = ""
    extra_config: dict[str, str] = field(default_factory=dict)

    def config(self) -> dict[str, str]:
        cfg = {"cleanup.policy": "compact" if self.compacted else "delete"}
        if self.retention_ms is not None:
            cfg["retention.ms"] = str(self.retention_ms)
        if self.compacted:
            cfg.setdefault("min.cleanable.dirty.ratio", "0.1")
            cfg.setdefault("segment.ms", str(60 * 60 * 1000))
        cfg.update(self.extra_config)
        return cfg


INGEST_PARTITIONS = 3
EVENT_PARTITIONS = 6
AGG_PARTITIONS = 3
DLQ_TOPIC = "alliance.dlq"
PARTIALS_TOPIC = "alliance.internal.partials"  # per-partition partial aggregates -> the rollup agent
WEEK_MS = 7 * 24 * 3600 * 1000


def ingest_topic(university: str) -> str:
    return f"alliance.ingest.{university}"


def ingest_owner(topic: str) -> str | None:
    """The university whose ingest topic ``topic`` is, also with a deployment suffix after the code (``.x`` or
    ``-x``); None for any other topic."""
    rest = topic.removeprefix(ingest_topic(""))
    if rest == topic:
        return None
    owners = [code for code in UNIVERSITIES if rest == code or rest.startswith((f"{code}.", f"{code}-"))]
    return max(owners, key=len, default=None)


_FAMILY_TOPICS = {f.value: f"alliance.events.{f.value}" for f in Family}  # (a StrEnum member finds its value)


def family_topic(family: Family | str) -> str:
    """The canonical topic of ``family`` (ValueError for a name that is not a family)."""
    topic = _FAMILY_TOPICS.get(family)
    return topic if topic is not None else f"alliance.events.{Family(family).value}"


def agg_topic(name: str) -> str:
    return f"alliance.agg.{name}"


AGGREGATES: dict[str, str] = {
    "postings-by-segment": "open postings and positions by industry x city x employer type (alliance, per university)",
    "posting-funnel": "applications, offers, acceptances and rates per job posting",
    "fairs": "job-fair live stats: booths, distinct check-ins, offers at the fair",
    "mentors": "mentor pool by university and expertise, sessions held",
    "seeker-guarantee": "per job seeker progress on the 1-1-3-1 service guarantee (pseudonymous; not for portals)",
    "service-guarantee": "alliance-wide 1-1-3-1 totals: seekers reached, each step met, fully served",
    "windows": "hourly and daily event counts per family and university",
    "talent-flow": "hires and accepted offers by the seeker's university and province, where they work (a "
                   "province of the circle or outside it), industry, degree and month",
}


def registry(ingest_partitions: int = INGEST_PARTITIONS, event_partitions: int = EVENT_PARTITIONS,
             agg_partitions: int = AGG_PARTITIONS) -> list[TopicSpec]:
    """Every topic. Partition counts are deployment settings (ALLIANCE_*_PARTITIONS); the stream processors
    size their tables from the same settings, so both must agree with the topics that exist."""
    specs = [
        # the broker stamps each record with its arrival time: the future-timestamp rule measures from it,
        # and a university's producer cannot move it
        TopicSpec(ingest_topic(code), ingest_partitions, retention_ms=WEEK_MS,
                  description=f"raw events published by {u.name}",
                  extra_config={"message.timestamp.type": "LogAppendTime"})
        for code, u in UNIVERSITIES.items()
    ]
    specs += [
        # stated, not left to the broker's default: how long a seeker's events stay readable (docs/security.md,
        # "Retention"); the worker's tables and the read model keep what they need beyond it
        TopicSpec(family_topic(f), event_partitions, retention_ms=WEEK_MS,
                  description=f"validated, deduplicated {f} events")
        for f in Family
    ]
    specs.append(TopicSpec(DLQ_TOPIC, ingest_partitions, retention_ms=4 * WEEK_MS,
                           description="rejected input, with x-alliance-reject-* reason headers"))
    specs.append(TopicSpec(PARTIALS_TOPIC, agg_partitions, retention_ms=24 * 3600 * 1000,
                           description="per-partition partial aggregates, keyed aggregate|dimensions"))
    specs += [
        TopicSpec(agg_topic(name), agg_partitions, compacted=True, description=desc)
        for name, desc in AGGREGATES.items()
    ]
    return specs
