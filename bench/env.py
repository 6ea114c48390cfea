"""The services a benchmark run uses: its own Kafka + PostgreSQL under .local/bench/ (free ports), or the
servers named by ALLIANCE_KAFKA_BOOTSTRAP_SERVERS / ALLIANCE_DATABASE_URL. Topics get a per-run suffix."""

from __future__ import annotations

import os
import re
import shutil
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.access_policy import DEFAULT_APP_ID
from core.kafka_access import ADMIN, KafkaAccess
from core.settings import PROJECT_ROOT, Settings
from core.topic_admin import admin_client, provision
from events.topics import INGEST_PARTITIONS, registry
from infra.errors import InfraError
from infra.kafka_local import LocalKafka
from infra.postgres_local import LocalPostgres
from infra.processes import free_ports

BENCH_ROOT = PROJECT_ROOT / ".local" / "bench"


@dataclass(frozen=True)
class Services:
    bootstrap: str
    dsn: str  # maintenance database (the run creates its own database in it)
    local: bool
    run_id: str
    credentials: Path | None = None  # the run's own broker's credential store
    cafile: Path | None = None  # the CA of the run's own broker's TLS listener

    def settings(self, **update: Any) -> Settings:
        """Settings of a process of this run: its broker (with the run broker's credentials) and ``update``."""
        base = (Settings(kafka_bootstrap_servers=self.bootstrap, kafka_credentials_file=self.credentials,
                         kafka_ssl_cafile=self.cafile)
                if self.credentials is not None else Settings(kafka_bootstrap_servers=self.bootstrap))
        return base.model_copy(update=update) if update else base

    def kafka(self, role: str) -> KafkaAccess:
        """The run's broker as ``role`` (core.kafka_access; ALLIANCE_KAFKA_USERNAME overrides it)."""
        return self.settings().kafka(role)

    def suffix(self, name: str) -> str:
        """A topic suffix unique to this run and measurement (``.bench-<run>-<name>``)."""
        return f".bench-{self.run_id}-{name}"


@contextmanager
def services(home: Path = BENCH_ROOT) -> Iterator[Services]:
    """Start (or reuse from the environment) Kafka and PostgreSQL; always stop what was started."""
    run_id = uuid.uuid4().hex[:8]
    ext_kafka = os.environ.get("ALLIANCE_KAFKA_BOOTSTRAP_SERVERS")
    ext_pg = os.environ.get("ALLIANCE_DATABASE_URL")
    run_dir = home / run_id
    broker: LocalKafka | None = None
    pg: LocalPostgres | None = None
    try:
        if ext_kafka:
            bootstrap = ext_kafka
        else:
            port, controller = free_ports(2)
            broker = LocalKafka(home=run_dir / "kafka", cache_dir=PROJECT_ROOT / ".local", port=port,
                                controller_port=controller)
            broker.start(timeout=120)
            bootstrap = broker.bootstrap
        if ext_pg:
            dsn = ext_pg
        else:
            pg = LocalPostgres(home=run_dir / "postgres", port=free_ports(1)[0], fast=True)
            pg.start()
            dsn = pg.dsn_for("postgres")
        yield Services(bootstrap, dsn, broker is not None, run_id,
                       credentials=broker.store.path if broker is not None else None,
                       cafile=broker.tls.ca if broker is not None else None)
    finally:
        if broker is not None:
            broker.stop()
        if pg is not None:
            pg.stop()
        if broker is not None or pg is not None:
            shutil.rmtree(run_dir, ignore_errors=True)
        for datadir in (PROJECT_ROOT / ".local" / "faust").glob(f"bench-{run_id}-*"):  # faust table state
            shutil.rmtree(datadir, ignore_errors=True)


def measurement_topics(names: Iterable[str], run_id: str, label: str) -> list[str]:
    """The topics of one measurement among ``names``: its suffix (``.bench-<run>-<label>``, also inside the
    peers' output topics) and its processes' own topics (faust changelogs ``bench-<run>-<label>[-…]-<table>-
    changelog``, Quix's ``changelog__bench-<run>-<label>-…``), never those of a label it is the start of."""
    mark = re.compile(rf"bench-{re.escape(run_id)}-{re.escape(label)}(?=$|[-.])")
    return sorted(name for name in names if mark.search(name))


def drop_measurement(svc: Services, label: str) -> int:
    """Delete the topics of measurement ``label`` once it is over: a broker that keeps every earlier
    measurement's partitions spends more of the CPU the next one shares with it (docs/benchmarks.md), and
    whichever contestant runs later would pay for it. Returns how many were deleted."""
    admin = admin_client(svc.kafka(ADMIN), f"bench-{svc.run_id}-drop")
    try:
        names = measurement_topics(admin.list_topics(), svc.run_id, label)
        if names:
            admin.delete_topics(names)
        return len(names)
    finally:
        admin.close()


def drop_topics(svc: Services, label: str, progress: Callable[[str], None] = print) -> None:
    """Drop the topics of measurement ``label`` once it is over (:func:`drop_measurement`) and say so; a
    failure is reported, not raised: the measurement stands, and the next ones run on a fuller broker."""
    try:
        progress(f"  dropped the {drop_measurement(svc, label)} topics of {label}")
    except Exception as exc:
        progress(f"  could not drop the topics of {label}: {type(exc).__name__}: {exc}")


def provision_run(svc: Services, suffix: str, ingest_partitions: int = INGEST_PARTITIONS,
                  only_ingest: bool = False, app_id: str = DEFAULT_APP_ID) -> list[str]:
    """Create the registry topics with ``suffix`` (ingest topics with ``ingest_partitions``) and their ACLs
    (``app_id``: the run's streams app)."""
    specs = [s for s in registry(ingest_partitions=ingest_partitions)
             if not only_ingest or s.name.startswith("alliance.ingest.")]
    # core.topic_admin.provision verifies right after create_topics; the broker's metadata can lag a moment
    # behind (UNKNOWN_TOPIC_OR_PARTITION, "not created (3)"), so verify again before giving up.
    created: list[str] = []
    for attempt in range(20):
        try:
            report = provision(svc.kafka(ADMIN), specs, suffix=suffix, app_id=app_id)
            return created + report.created
        except InfraError as exc:
            if "not created (3)" not in str(exc) or attempt == 19:
                raise
            created = [s.name + suffix for s in specs]
            time.sleep(0.5)
    raise AssertionError("unreachable")
