"""Who may do what on Kafka, derived from the topic registry like the topics themselves (pure: no I/O).

:func:`grants` turns the deployment's topics (registry names plus ``topic_suffix``) and the streams app id
into ALLOW rules; ``core.topic_admin.provision`` creates them beside the topics. Whatever no rule allows is
refused by the broker (``allow.everyone.if.no.acl.found=false``); ``admin`` is the super user and needs
none. The matrix (docs/security.md):

================  ==========================  ===========================================================
principal         topics                      operations
================  ==========================  ===========================================================
<university>      alliance.ingest.<its code>  WRITE, DESCRIBE; READ (its own records: ``dlq redrive``
                                              checks what it already redrove)
streams           alliance.ingest.*           READ, DESCRIBE, DESCRIBE_CONFIGS
                  alliance.events.*,          READ, WRITE, DESCRIBE, DESCRIBE_CONFIGS
                  alliance.internal.partials
                  alliance.agg.*, alliance.dlq  WRITE, DESCRIBE, DESCRIBE_CONFIGS
                  <app id>-* (faust's own)    CREATE, READ, WRITE, DESCRIBE, DESCRIBE_CONFIGS
                  groups <app id>*            READ, DESCRIBE
projector         alliance.events.*,          READ, DESCRIBE
                  alliance.agg.*
portal            alliance.agg.* (prefix)     READ, DESCRIBE; groups portal-* READ, DESCRIBE
ops               every alliance.* topic      READ, DESCRIBE, DESCRIBE_CONFIGS; all groups DESCRIBE
                  except the ingest topics
================  ==========================  ===========================================================

Nobody but ``admin`` may create, delete or reconfigure an alliance topic, and nobody but ``streams`` may
write a canonical, partial or aggregated topic: a forged partial or aggregate is refused by the broker.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from core.kafka_access import OPS, PORTAL, PROJECTOR, STREAMS
from events.reference import UNIVERSITIES
from events.topics import DLQ_TOPIC, PARTIALS_TOPIC, Family, TopicSpec, agg_topic, family_topic, ingest_topic

DEFAULT_APP_ID = "alliance-streams"
PORTAL_GROUP_PREFIX = "portal-"


class Resource(StrEnum):
    TOPIC = "topic"
    GROUP = "group"
    CLUSTER = "cluster"


@dataclass(frozen=True, order=True)
class Grant:
    """ALLOW ``principal`` (a user name) ``operation`` on ``resource`` ``name`` (a prefix if ``prefixed``)."""

    principal: str
    resource: Resource
    name: str
    operation: str
    prefixed: bool = False


def topic_family(name: str, suffix: str = "") -> str | None:
    """The family of a deployment's topic name: 'ingest:<code>', 'events', 'partials', 'agg', 'dlq', or None
    for a topic that is not the registry's."""
    if suffix:
        if not name.endswith(suffix):
            return None
        name = name[: -len(suffix)]
    if name == DLQ_TOPIC:
        return "dlq"
    if name == PARTIALS_TOPIC:
        return "partials"
    for code in UNIVERSITIES:
        if name == ingest_topic(code):
            return f"ingest:{code}"
    if name in {family_topic(f) for f in Family}:
        return "events"
    if name.startswith(agg_topic("")):
        return "agg"
    return None


_OPS_BY_FAMILY: dict[str, dict[str, tuple[str, ...]]] = {
    "ingest": {STREAMS: ("READ", "DESCRIBE", "DESCRIBE_CONFIGS")},
    "events": {STREAMS: ("READ", "WRITE", "DESCRIBE", "DESCRIBE_CONFIGS"), PROJECTOR: ("READ", "DESCRIBE"),
               OPS: ("READ", "DESCRIBE", "DESCRIBE_CONFIGS")},
    "partials": {STREAMS: ("READ", "WRITE", "DESCRIBE", "DESCRIBE_CONFIGS"),
                 OPS: ("READ", "DESCRIBE", "DESCRIBE_CONFIGS")},
    "agg": {STREAMS: ("WRITE", "DESCRIBE", "DESCRIBE_CONFIGS"), PROJECTOR: ("READ", "DESCRIBE"),
            OPS: ("READ", "DESCRIBE", "DESCRIBE_CONFIGS")},
    "dlq": {STREAMS: ("WRITE", "DESCRIBE", "DESCRIBE_CONFIGS"), OPS: ("READ", "DESCRIBE", "DESCRIBE_CONFIGS")},
}
UNIVERSITY_OPERATIONS = ("WRITE", "DESCRIBE", "READ")


def grants(topics: Iterable[TopicSpec | str], suffix: str = "", app_id: str = DEFAULT_APP_ID) -> list[Grant]:
    """Every ALLOW rule for the deployment's ``topics`` (real names, ``suffix`` included) and the streams
    app ``app_id``; topics that are not the registry's get none (only ``admin`` reaches them)."""
    out: set[Grant] = set()
    for topic in topics:
        name = topic.name if isinstance(topic, TopicSpec) else topic
        family = topic_family(name, suffix)
        if family is None:
            continue
        if family.startswith("ingest:"):
            owner = family.partition(":")[2]
            out.update(Grant(owner, Resource.TOPIC, name, op) for op in UNIVERSITY_OPERATIONS)
            family = "ingest"
        for principal, operations in _OPS_BY_FAMILY[family].items():
            out.update(Grant(principal, Resource.TOPIC, name, op) for op in operations)
    out.update(Grant(STREAMS, Resource.TOPIC, f"{app_id}-", op, prefixed=True)
               for op in ("CREATE", "READ", "WRITE", "DESCRIBE", "DESCRIBE_CONFIGS"))
    out.update(Grant(STREAMS, Resource.GROUP, app_id, op, prefixed=True) for op in ("READ", "DESCRIBE"))
    out.update(Grant(PORTAL, Resource.TOPIC, agg_topic(""), op, prefixed=True) for op in ("READ", "DESCRIBE"))
    out.update(Grant(PORTAL, Resource.GROUP, PORTAL_GROUP_PREFIX, op, prefixed=True) for op in ("READ", "DESCRIBE"))
    out.add(Grant(OPS, Resource.GROUP, "*", "DESCRIBE"))
    out.add(Grant(OPS, Resource.CLUSTER, "kafka-cluster", "DESCRIBE"))
    return sorted(out)
