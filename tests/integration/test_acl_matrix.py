"""The ACL matrix against the real broker: every principal x every topic family x produce / consume / describe /
create / delete, allowed exactly where docs/security.md says and refused by the broker everywhere else.

The expectation below is written out by hand from the issue's rules (a university writes its own ingest topic
only; the streams app, the projector and portals get what each needs; ops reads; admin administers); it does
not call ``core.access_policy``, whose grants are what is being tested. Also: an unauthenticated client and a
wrong password get nothing at all, a forged partial or aggregate from any principal but ``streams`` (admin
included) is refused, and a principal removed by ``python -m infra users remove`` is locked out.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import KafkaAdminClient, NewTopic
from kafka.errors import KafkaError

from core.kafka_access import ADMIN, OPS, PORTAL, PROJECTOR, STREAMS, KafkaAccess
from core.settings import PROJECT_ROOT, Settings
from core.topic_admin import provision
from events.topics import DLQ_TOPIC, PARTIALS_TOPIC, Family, agg_topic, family_topic, ingest_topic
from infra.processes import wait_until
from infra.tls import ensure as ensure_tls

pytestmark = pytest.mark.integration

OPERATIONS = ("produce", "consume", "describe", "create", "delete")
FAMILIES = ("ingest-scu", "ingest-cqu", "events", "partials", "agg", "agg-per-seeker", "dlq", "streams-own")
ALL = set(OPERATIONS)

# principal -> family -> the operations it may do (everything else must be refused)
EXPECTED: dict[str, dict[str, set[str]]] = {
    # operators: provisioning, users, ACLs, reading; never writing anyone's data (only ``broker`` is a super user)
    ADMIN: {family: ALL - {"produce"} for family in FAMILIES},
    "scu": {"ingest-scu": {"produce", "consume", "describe"}},
    "cqu": {"ingest-cqu": {"produce", "consume", "describe"}},
    STREAMS: {
        "ingest-scu": {"consume", "describe"}, "ingest-cqu": {"consume", "describe"},
        "events": {"produce", "consume", "describe"}, "partials": {"produce", "consume", "describe"},
        "agg": {"produce", "describe"}, "agg-per-seeker": {"produce", "describe"}, "dlq": {"produce", "describe"},
        "streams-own": {"produce", "consume", "describe", "create"},  # faust's changelogs
    },
    PROJECTOR: {"events": {"consume", "describe"}, "agg": {"consume", "describe"},
                "agg-per-seeker": {"consume", "describe"}},
    # portals read the aggregated topics, but not the one with a record per job seeker
    PORTAL: {"agg": {"consume", "describe"}, "agg-per-seeker": {"describe"}},
    OPS: {family: {"consume", "describe"} for family in ("events", "partials", "agg", "agg-per-seeker", "dlq")},
}


def _topics(suffix: str, app_id: str) -> dict[str, str]:
    return {
        "ingest-scu": ingest_topic("scu") + suffix, "ingest-cqu": ingest_topic("cqu") + suffix,
        "events": family_topic(Family.RECRUITMENT) + suffix, "partials": PARTIALS_TOPIC + suffix,
        "agg": agg_topic("fairs") + suffix, "agg-per-seeker": agg_topic("seeker-guarantee") + suffix,
        "dlq": DLQ_TOPIC + suffix, "streams-own": f"{app_id}-rollups-changelog",
    }


def _new_topic_name(topic: str) -> str:
    """A topic that does not exist yet in the namespace of ``topic`` (what a 'create' would make)."""
    return f"{topic}-new{uuid.uuid4().hex[:6]}"


class Client:
    """One principal's producer, consumer and admin client, each operation answered allowed or refused."""

    def __init__(self, access: KafkaAccess) -> None:
        self.access = access
        self.producer = KafkaProducer(**access.kafka_python(), acks="all", max_block_ms=1500, retries=0,
                                      client_id=f"acl-{access.username}")
        self.consumer = KafkaConsumer(**access.kafka_python(), enable_auto_commit=False, group_id=None,
                                      client_id=f"acl-{access.username}")
        self.admin = KafkaAdminClient(**access.kafka_python(), request_timeout_ms=8000,
                                      client_id=f"acl-{access.username}")

    def close(self) -> None:
        self.producer.close(timeout=2)
        self.consumer.close()
        self.admin.close()

    def produce(self, topic: str) -> bool:
        try:
            self.producer.send(topic, b'{"forged": true}', key=b"forged").get(timeout=5)
            return True
        except KafkaError:
            return False

    def consume(self, topic: str) -> bool:
        tp = TopicPartition(topic, 0)
        try:
            self.consumer.assign([tp])
            self.consumer.seek_to_beginning(tp)
            for _ in range(4):  # every topic of the matrix holds one record at offset 0
                self.consumer.poll(timeout_ms=300)
                if self.consumer.position(tp, timeout_ms=1500) > 0:  # it was fetched
                    return True
            return False
        except KafkaError:
            return False
        finally:
            self.consumer.unsubscribe()

    def describe(self, topic: str) -> bool:
        try:
            described = self.admin.describe_topics([topic])
        except KafkaError:
            return False
        return bool(described) and not described[0].get("error_code") and bool(described[0].get("partitions"))

    def create(self, topic: str) -> bool:
        try:
            self.admin.create_topics([NewTopic(topic, 1, 1)], timeout_ms=8000)
            return True
        except KafkaError:
            return False

    def delete(self, topic: str) -> bool:
        try:
            self.admin.delete_topics([topic], timeout_ms=8000)
            return True
        except KafkaError:
            return False


@pytest.fixture
def deployment(kafka_settings: Settings, unique: str) -> Iterator[tuple[Settings, dict[str, str]]]:
    """The registry provisioned (topics and ACLs) for a suffix and streams app of this test, one record in each
    topic of the matrix (written by the one principal that may write it)."""
    cfg = kafka_settings.model_copy(update={"topic_suffix": f".acl{unique}", "app_id": f"acl-{unique}"})
    admin = cfg.kafka(ADMIN)
    provision(admin, cfg.registry(), suffix=cfg.topic_suffix, app_id=cfg.app_id)
    topics = _topics(cfg.topic_suffix, cfg.app_id)
    client = Client(admin)
    try:
        assert client.create(topics["streams-own"])
    finally:
        client.close()
    for family, topic in topics.items():
        owner = family.removeprefix("ingest-") if family.startswith("ingest-") else STREAMS
        seeder = KafkaProducer(**cfg.kafka(owner).kafka_python(), acks="all")  # retries while leaders settle
        try:
            seeder.send(topic, b"{}", key=b"seed", partition=0).get(timeout=30)
        finally:
            seeder.close(timeout=5)
    yield cfg, topics


def test_every_principal_family_and_operation_is_allowed_or_refused_as_documented(
        deployment: tuple[Settings, dict[str, str]]) -> None:
    cfg, topics = deployment
    wrong: list[str] = []
    for principal, allowed in EXPECTED.items():
        client = Client(cfg.kafka(principal))
        try:
            for family, topic in topics.items():
                may = allowed.get(family, set())
                for operation in ("produce", "consume", "describe", "create"):
                    target = _new_topic_name(topic) if operation == "create" else topic
                    if getattr(client, operation)(target) != (operation in may):
                        wrong.append(f"{principal} {operation} {family}: "
                                     f"{'allowed' if operation not in may else 'refused'}")
        finally:
            client.close()
    # deletes last (an allowed delete removes the topic): every principal but admin is refused on every family
    for principal in EXPECTED:
        if principal == ADMIN:
            continue
        client = Client(cfg.kafka(principal))
        try:
            wrong += [f"{principal} delete {family}: allowed" for family, topic in topics.items()
                      if client.delete(topic)]
        finally:
            client.close()
    client = Client(cfg.kafka(ADMIN))
    try:
        throwaway = f"{topics['agg']}-throwaway"
        assert client.create(throwaway) and client.delete(throwaway), "admin could not create and delete a topic"
    finally:
        client.close()
    assert wrong == [], "\n".join(wrong)


def test_no_credentials_or_a_wrong_password_get_nothing(deployment: tuple[Settings, dict[str, str]]) -> None:
    """Over TLS (so the broker's authentication is what refuses them, not the handshake)."""
    cfg, topics = deployment
    tls = KafkaAccess(cfg.bootstrap, ssl_cafile=str(cfg.kafka_cafile))
    for access in (tls, tls.as_user("scu", "not-the-password"), tls.as_user("nobody", "no-such-user-password")):
        with pytest.raises(KafkaError):
            forge(access, topics["partials"])


def test_the_listener_speaks_only_tls_with_a_certificate_of_the_deployment_ca(
        deployment: tuple[Settings, dict[str, str]], tmp_path: Path) -> None:
    """A client without TLS gets nothing even with the right password, and so does a client that trusts
    another CA (a broker impostor is refused the same way): the password never reaches either."""
    cfg, topics = deployment
    right = cfg.kafka(STREAMS)  # a principal that may write partials
    forge(right, topics["partials"])  # the control: over TLS, with the deployment's CA, it works
    assert right.password is not None
    with pytest.raises(KafkaError):
        forge(KafkaAccess(cfg.bootstrap).as_user(STREAMS, right.password), topics["partials"])
    other = ensure_tls(tmp_path / "other-ca")
    with pytest.raises(KafkaError):
        forge(replace(right, ssl_cafile=str(other.ca)), topics["partials"])


def forge(access: KafkaAccess, topic: str) -> None:
    producer = KafkaProducer(**access.kafka_python(), max_block_ms=5000, bootstrap_timeout_ms=5000)
    try:
        producer.send(topic, b'{"forged": true}').get(timeout=8)
    finally:
        producer.close(timeout=1)


def test_a_removed_principal_is_locked_out(kafka_settings: Settings, unique: str) -> None:
    """``python -m infra users add`` creates a working principal (its ACLs come from provisioning or a grant);
    ``users rotate`` invalidates the old password; ``users remove`` deletes credentials and ACLs."""
    store = kafka_settings.credential_store
    assert store is not None
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("ALLIANCE_")}, **kafka_settings.kafka_env()}
    name = f"portal-{unique}"

    def users(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "infra", "users", *args], capture_output=True, text=True,
                              cwd=PROJECT_ROOT, env=env, timeout=120, check=False)

    added = users("add", name)
    assert added.returncode == 0, added.stderr
    first = kafka_settings.kafka(name)
    assert first.password is not None and first.password.get_secret_value() not in added.stdout + added.stderr
    assert any(line.split()[0] == name for line in users("list").stdout.splitlines())
    assert users("add", name).returncode == 2  # exists already

    def can_connect(access: KafkaAccess) -> bool:
        try:
            KafkaAdminClient(**access.kafka_python(), request_timeout_ms=5000, bootstrap_timeout_ms=3000).close()
            return True
        except KafkaError:
            return False

    assert can_connect(first)
    rotated = users("rotate", name)
    assert rotated.returncode == 0, rotated.stderr
    second = kafka_settings.kafka(name)
    assert second.password != first.password and can_connect(second)
    wait_until(lambda: not can_connect(first), 15, "the old password to be refused")
    removed = users("remove", name)
    assert removed.returncode == 0, removed.stderr
    wait_until(lambda: not can_connect(second), 15, "the removed principal to be refused")
    assert name not in store.load()
    assert users("remove", ADMIN).returncode == 2
