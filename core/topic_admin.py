"""Topic administration from the registry in events.topics: create what is missing (no broker-side
auto-creation) and verify what exists (partitions, compaction, the registry's extra settings). The worker
verifies its topics at start-up; ``python -m infra provision`` creates them."""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, replace

from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient, NewTopic
from kafka.errors import TopicAlreadyExistsError

from core.errors import TopicError
from events.topics import TopicSpec, registry


@dataclass(frozen=True)
class ProvisionReport:
    created: list[str]
    existing: list[str]


def provision(bootstrap: str, specs: Iterable[TopicSpec] | None = None, replication_factor: int = 1,
              timeout_s: float = 30.0, suffix: str = "") -> ProvisionReport:
    """Create missing topics (default: the whole registry; ``suffix`` appended to every name) and verify
    partitions and compaction of all of them."""
    specs = [replace(s, name=s.name + suffix) for s in (registry() if specs is None else specs)]
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="alliance-provision",
                             request_timeout_ms=int(timeout_s * 1000))
    try:
        present = set(admin.list_topics())
        missing = [s for s in specs if s.name not in present]
        if missing:
            new = [NewTopic(s.name, s.partitions, replication_factor, topic_configs=s.config()) for s in missing]
            try:
                admin.create_topics(new, timeout_ms=int(timeout_s * 1000))
            except TopicAlreadyExistsError:
                pass  # a concurrent provisioner won the race; verified below
        _verify_eventually(admin, specs, timeout_s)
        return ProvisionReport([s.name for s in missing], sorted(s.name for s in specs if s.name in present))
    finally:
        admin.close()


def verify(bootstrap: str, specs: Iterable[TopicSpec], suffix: str = "", timeout_s: float = 15.0) -> None:
    """Raise TopicError naming every topic that is missing or differs from ``specs`` (partitions, compaction)."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="alliance-verify",
                             request_timeout_ms=int(timeout_s * 1000))
    try:
        _verify_eventually(admin, [replace(s, name=s.name + suffix) for s in specs], timeout_s)
    finally:
        admin.close()


def _verify_eventually(admin: KafkaAdminClient, specs: list[TopicSpec], timeout_s: float) -> None:
    """Verify, retrying while the broker's metadata has not caught up with topics just created."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            _verify(admin, specs)
            return
        except TopicError:
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.25)


def _verify(admin: KafkaAdminClient, specs: list[TopicSpec]) -> None:
    described = {t["name"]: t for t in admin.describe_topics([s.name for s in specs])}
    problems = []
    for s in specs:
        t = described.get(s.name)
        if t is None or t.get("error_code"):
            problems.append(f"{s.name}: not created ({t and t.get('error_code')})")
        elif len(t["partitions"]) != s.partitions:
            problems.append(f"{s.name}: {len(t['partitions'])} partitions, the settings say {s.partitions} "
                            "(ALLIANCE_INGEST_PARTITIONS / _EVENT_PARTITIONS / _AGG_PARTITIONS)")
    checked = {s.name: {"cleanup.policy": s.config()["cleanup.policy"], **s.extra_config}
               for s in specs if s.name in described and not described[s.name].get("error_code")}
    if checked:
        resources = [ConfigResource(ConfigResourceType.TOPIC, name, configs=sorted(want))
                     for name, want in checked.items()]
        configs = admin.describe_configs(resources).get("topic", {})
        for name, want in checked.items():
            for key, value in want.items():
                actual = configs.get(name, {}).get(key, {}).get("value")
                if actual != value:
                    problems.append(f"{name}: {key}={actual}, the registry says {value} (kafka-configs.sh "
                                    f"--alter --entity-type topics --entity-name {name} --add-config {key}={value})")
    if problems:
        raise TopicError("topic provisioning mismatch:\n  " + "\n  ".join(problems))
