"""Who may do what on Kafka, derived from the topic registry like the topics themselves (pure: no I/O).

:func:`grants` turns the deployment's topics (registry names plus ``topic_suffix``) and the streams app id
into ALLOW rules; ``core.topic_admin.provision`` creates them beside the topics. Whatever no rule allows is
refused by the broker (``allow.everyone.if.no.acl.found=false``). The only super user is ``broker`` (the
brokers themselves); :func:`admin_grants` gives the operators' ``admin`` everything an operator needs
(topics, configs, ACLs, SCRAM users, reading) but DENYs it writing any alliance topic or the streams app's
own topics, so that no principal but the data's owner can write it. The matrix (docs/security.md):

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
portal            alliance.agg.* (prefix)     READ, DESCRIBE; groups portal-* READ, DESCRIBE; no READ on
                                              alliance.agg.seeker-guarantee (a record per job seeker)
ops               every alliance.* topic      READ, DESCRIBE, DESCRIBE_CONFIGS; all groups DESCRIBE
                  except the ingest topics
admin             every topic                 all but WRITE on alliance.* and <app id>-* (DENY); cluster
                                              ALTER (ACLs, users), CREATE, DESCRIBE, configs; all groups
================  ==========================  ===========================================================

Nobody but ``admin`` may create, delete or reconfigure an alliance topic, nobody but a university may write
its ingest topic, and nobody but ``streams`` may write a canonical, partial or aggregated topic or a table's
changelog: a forged partial or aggregate is refused by the broker.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from core.kafka_access import ADMIN, OPS, PORTAL, PROJECTOR, STREAMS
from events.reference import UNIVERSITIES
from events.topics import (
    DLQ_TOPIC,
    PARTIALS_TOPIC,
    Family,
    TopicSpec,
    agg_topic,
    family_topic,
    ingest_owner,
    ingest_topic,
)

DEFAULT_APP_ID = "alliance-streams"
PORTAL_GROUP_PREFIX = "portal-"
PER_SEEKER_AGGREGATE = "seeker-guarantee"  # a record per job seeker (events.aggregates); the totals are apart
ALLIANCE_PREFIX = "alliance."  # every registry topic's name starts with it


class Resource(StrEnum):
    TOPIC = "topic"
    GROUP = "group"
    CLUSTER = "cluster"


@dataclass(frozen=True, order=True)
class Grant:
    """ALLOW (DENY if ``deny``) ``principal`` (a user name) ``operation`` on ``resource`` ``name`` (a prefix if
    ``prefixed``). A DENY wins over every ALLOW."""

    principal: str
    resource: Resource
    name: str
    operation: str
    prefixed: bool = False
    deny: bool = False


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


def writer(topic: str) -> str | None:
    """The one principal that may write ``topic`` (a deployment suffix allowed): the owning university for an
    ingest topic, ``streams`` for every other alliance topic; None for a topic outside the alliance's."""
    if (owner := ingest_owner(topic)) is not None:
        return owner
    return STREAMS if topic.startswith(ALLIANCE_PREFIX) else None


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
    # ... but not the one aggregated topic with a record per job seeker (portals get the guarantee per
    # university from the portal API)
    out.add(Grant(PORTAL, Resource.TOPIC, agg_topic(PER_SEEKER_AGGREGATE), "READ", prefixed=True, deny=True))
    out.update(Grant(PORTAL, Resource.GROUP, PORTAL_GROUP_PREFIX, op, prefixed=True) for op in ("READ", "DESCRIBE"))
    out.add(Grant(ADMIN, Resource.TOPIC, f"{app_id}-", "WRITE", prefixed=True, deny=True))  # no forged state
    out.add(Grant(OPS, Resource.GROUP, "*", "DESCRIBE"))
    out.add(Grant(OPS, Resource.CLUSTER, "kafka-cluster", "DESCRIBE"))
    return sorted(out)



def admin_grants() -> list[Grant]:
    """The operators' principal: everything an operator does (topics, configs, ACLs, SCRAM users, groups,
    reading every topic), but never writing an alliance topic (DENY), whoever's data it is."""
    out = [Grant(ADMIN, Resource.CLUSTER, "kafka-cluster", op)
           for op in ("ALTER", "ALTER_CONFIGS", "CREATE", "DESCRIBE", "DESCRIBE_CONFIGS")]
    out += [Grant(ADMIN, Resource.TOPIC, "*", op) for op in
            ("READ", "WRITE", "CREATE", "DELETE", "ALTER", "ALTER_CONFIGS", "DESCRIBE", "DESCRIBE_CONFIGS")]
    out += [Grant(ADMIN, Resource.GROUP, "*", op) for op in ("READ", "DESCRIBE", "DELETE")]
    out.append(Grant(ADMIN, Resource.TOPIC, ALLIANCE_PREFIX, "WRITE", prefixed=True, deny=True))
    return sorted(out)
