"""Topic administration from the registry in events.topics: create what is missing (no broker-side
auto-creation), grant the registry's ACLs (core.access_policy) and verify what exists (partitions,
compaction, the registry's extra settings). The worker verifies its topics at start-up;
``python -m infra provision`` creates them (as ``admin``)."""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, replace

from kafka.admin import (
    ACL,
    ACLOperation,
    ACLPermissionType,
    ACLResourcePatternType,
    ConfigResource,
    ConfigResourceType,
    KafkaAdminClient,
    NewTopic,
    ResourcePattern,
    ResourceType,
)
from kafka.errors import AuthorizationError, SaslAuthenticationFailedError, TopicAlreadyExistsError

from core.access_policy import DEFAULT_APP_ID, Grant, admin_grants, grants
from core.credentials import CredentialsError
from core.errors import TopicError
from core.kafka_access import ADMIN, KafkaAccess
from core.settings import Settings
from events.topics import TopicSpec, registry


@dataclass(frozen=True)
class ProvisionReport:
    created: list[str]
    existing: list[str]


def provision(kafka: KafkaAccess, specs: Iterable[TopicSpec] | None = None, replication_factor: int = 1,
              timeout_s: float = 30.0, suffix: str = "", app_id: str = DEFAULT_APP_ID) -> ProvisionReport:
    """Create missing topics (default: the whole registry; ``suffix`` appended to every name), grant their
    ACLs (``app_id``: the streams app whose group and own topics ``streams`` may use) and verify partitions
    compaction and retention of all of them. ``kafka`` must be allowed to create topics and ACLs (``admin``)."""
    specs = [replace(s, name=s.name + suffix) for s in (registry() if specs is None else specs)]
    admin = admin_client(kafka, "alliance-provision", timeout_s)
    try:
        apply_grants(admin, grants(specs, suffix=suffix, app_id=app_id))
        report = _create_missing(admin, specs, replication_factor, timeout_s)
        _await_topics(admin, specs, set(report.existing), timeout_s, configs=True)
        return report
    finally:
        admin.close()


def create_missing(kafka: KafkaAccess, specs: Iterable[TopicSpec], replication_factor: int,
                   timeout_s: float = 30.0) -> ProvisionReport:
    """Create those of ``specs`` that do not exist (no ACLs: ``kafka`` may create them already, e.g. the
    streams app its own changelogs) and wait until the cluster's metadata shows each with its partitions."""
    specs = list(specs)
    admin = admin_client(kafka, "alliance-create", timeout_s)
    try:
        report = _create_missing(admin, specs, replication_factor, timeout_s)
        _await_topics(admin, specs, set(report.existing), timeout_s, configs=False)
        return report
    finally:
        admin.close()


def _create_missing(admin: KafkaAdminClient, specs: list[TopicSpec], replication_factor: int,
                    timeout_s: float) -> ProvisionReport:
    present = set(admin.list_topics())
    missing = [s for s in specs if s.name not in present]
    if missing:
        new = [NewTopic(s.name, s.partitions, replication_factor, topic_configs=s.config()) for s in missing]
        try:
            admin.create_topics(new, timeout_ms=int(timeout_s * 1000))
        except TopicAlreadyExistsError:
            pass  # a concurrent creator won the race; verified by the caller
    return ProvisionReport([s.name for s in missing], sorted(s.name for s in specs if s.name in present))


def provision_deployment(settings: Settings, timeout_s: float = 30.0,
                         bootstrap: str | None = None) -> ProvisionReport:
    """The deployment's registry topics and ACLs (its partition counts, replication, suffix and app id),
    created as ``admin`` (on ``bootstrap`` instead of the settings' servers if given). The operators' own
    ACLs are granted first: compose's first provisioning runs as the brokers' super user to create them."""
    kafka = settings.kafka(ADMIN).at(bootstrap)
    grant(kafka, admin_grants())
    return provision(kafka, settings.registry(),
                     replication_factor=settings.replication_factor, timeout_s=timeout_s,
                     suffix=settings.topic_suffix, app_id=settings.app_id)


_RESOURCE = {"topic": ResourceType.TOPIC, "group": ResourceType.GROUP, "cluster": ResourceType.CLUSTER}


def to_acl(grant: Grant) -> ACL:
    pattern = ACLResourcePatternType.PREFIXED if grant.prefixed else ACLResourcePatternType.LITERAL
    return ACL(principal=f"User:{grant.principal}", host="*", operation=ACLOperation[grant.operation],
               permission_type=ACLPermissionType.DENY if grant.deny else ACLPermissionType.ALLOW,
               resource_pattern=ResourcePattern(_RESOURCE[grant.resource.value], grant.name, pattern))


def apply_grants(admin: KafkaAdminClient, rules: Iterable[Grant]) -> None:
    """Create the ACLs (an ACL that exists already is left as it is); TopicError when the broker refuses."""
    acls = [to_acl(g) for g in rules]
    for start in range(0, len(acls), 200):
        result = admin.create_acls(acls[start:start + 200])
        if result.get("failed"):
            errors = sorted({getattr(e, "__name__", str(e)) for e in result["failed"]})
            raise TopicError(f"the broker refused {len(result['failed'])} ACLs ({', '.join(errors)}); "
                             "provisioning needs the admin principal")


def grant(kafka: KafkaAccess, rules: Iterable[Grant]) -> None:
    """Create ACLs beyond the registry's (tests' own topics), as ``kafka`` (admin)."""
    admin = admin_client(kafka, "alliance-grant")
    try:
        apply_grants(admin, rules)
    finally:
        admin.close()


def verify(kafka: KafkaAccess, specs: Iterable[TopicSpec], suffix: str = "", timeout_s: float = 15.0) -> None:
    """Raise TopicError naming every topic that is missing or differs from ``specs`` (partitions, compaction)."""
    admin = admin_client(kafka, "alliance-verify", timeout_s)
    try:
        named = [replace(s, name=s.name + suffix) for s in specs]
        _await_topics(admin, named, {s.name for s in named}, timeout_s, configs=True)
    except AuthorizationError as exc:
        raise TopicError(f"{kafka.principal} may not describe the registry's topics ({type(exc).__name__}): "
                         "provision them as admin (python -m infra provision) to grant the ACLs") from None
    finally:
        admin.close()


def admin_client(kafka: KafkaAccess, client_id: str, timeout_s: float = 30.0) -> KafkaAdminClient:
    """An admin client of ``kafka``; CredentialsError when the cluster refuses its credentials."""
    try:
        return KafkaAdminClient(**kafka.kafka_python(), client_id=client_id,
                                request_timeout_ms=int(timeout_s * 1000))
    except SaslAuthenticationFailedError as exc:
        raise CredentialsError(f"Kafka refused the credentials of {kafka}: {exc}") from None


def _await_topics(admin: KafkaAdminClient, specs: list[TopicSpec], existing: set[str], timeout_s: float, *,
                  configs: bool) -> None:
    """Wait until the cluster shows every topic of ``specs`` with its partition count and, with ``configs``,
    the registry's cleanup policy and retention: a topic just created reaches the brokers' metadata a moment
    later. TopicError at once when a topic that existed before (``existing``) differs (waiting does not
    change it), after ``timeout_s`` otherwise."""
    deadline = time.monotonic() + timeout_s
    while True:
        pending, final = _differences(admin, specs, existing, configs)
        if not pending and not final:
            return
        if final or time.monotonic() >= deadline:
            raise TopicError("topics differ from the registry:\n  " + "\n  ".join(final + pending))
        time.sleep(0.25)


def _differences(admin: KafkaAdminClient, specs: list[TopicSpec], existing: set[str],
                 configs: bool) -> tuple[list[str], list[str]]:
    """What differs: (problems that may pass as metadata catches up, problems of topics that existed before)."""
    described = {t["name"]: t for t in admin.describe_topics([s.name for s in specs])}
    pending: list[str] = []
    final: list[str] = []

    def problem(name: str, text: str) -> None:
        (final if name in existing else pending).append(text)

    for s in specs:
        t = described.get(s.name)
        if t is None or t.get("error_code"):
            pending.append(f"{s.name}: not shown by the cluster's metadata ({t and t.get('error_code')})")
        elif len(t["partitions"]) != s.partitions:
            problem(s.name, f"{s.name}: {len(t['partitions'])} partitions, {s.partitions} expected (the settings: "
                            "ALLIANCE_INGEST_PARTITIONS / _EVENT_PARTITIONS / _AGG_PARTITIONS)")
    if not configs:
        return pending, final
    # retention too: how long personal data stays on a topic is documented (docs/security.md, "Retention")
    checked = {s.name: {k: v for k, v in s.config().items() if k in ("cleanup.policy", "retention.ms")}
               | s.extra_config for s in specs if s.name in described and not described[s.name].get("error_code")}
    if checked:
        resources = [ConfigResource(ConfigResourceType.TOPIC, name, configs=sorted(want))
                     for name, want in checked.items()]
        found = admin.describe_configs(resources).get("topic", {})
        for name, want in checked.items():
            for key, value in want.items():
                actual = found.get(name, {}).get(key, {}).get("value")
                if actual != value:
                    problem(name, f"{name}: {key}={actual}, the registry says {value} (kafka-configs.sh "
                                  f"--alter --entity-type topics --entity-name {name} --add-config {key}={value})")
    return pending, final
