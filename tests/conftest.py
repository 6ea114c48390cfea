"""Session fixtures: a REAL Kafka broker (KRaft, SASL/SCRAM and ACLs on) and a REAL PostgreSQL, started by
the project's own infra.

When ALLIANCE_KAFKA_BOOTSTRAP_SERVERS / ALLIANCE_DATABASE_URL are set, those servers are used instead (with
ALLIANCE_KAFKA_CREDENTIALS_FILE naming their credential store, if they authenticate).
Each pytest process gets its own broker and cluster on free ports under .local/test/<pid>/.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest

from core.db_access import with_database
from core.kafka_access import ADMIN, KafkaAccess
from core.settings import PROJECT_ROOT, Settings
from infra.kafka_local import LocalKafka
from infra.postgres_local import LocalPostgres
from infra.processes import free_port, free_ports, pid_alive

TEST_ROOT = PROJECT_ROOT / ".local" / "test"


def _session_dir() -> Path:
    TEST_ROOT.mkdir(parents=True, exist_ok=True)
    for old in TEST_ROOT.iterdir():  # state of earlier sessions whose pytest process is gone
        if old.name.isdigit() and not pid_alive(int(old.name)):
            shutil.rmtree(old, ignore_errors=True)
    d = TEST_ROOT / str(os.getpid())
    d.mkdir()
    return d


@pytest.fixture(scope="session")
def session_dir() -> Path:
    return _session_dir()


@pytest.fixture(scope="session")
def kafka_broker(session_dir: Path) -> Iterator[tuple[str, Path | None, Path | None]]:
    """(bootstrap servers, credential store path, CA of its TLS listener) of the session's broker."""
    external = os.environ.get("ALLIANCE_KAFKA_BOOTSTRAP_SERVERS")
    if external:
        store = os.environ.get("ALLIANCE_KAFKA_CREDENTIALS_FILE")
        cafile = os.environ.get("ALLIANCE_KAFKA_SSL_CAFILE")
        yield external, Path(store) if store else None, Path(cafile) if cafile else None
        return
    port, controller_port = free_ports(2)
    broker = LocalKafka(home=session_dir / "kafka", cache_dir=PROJECT_ROOT / ".local",
                        port=port, controller_port=controller_port)
    broker.start(timeout=120)
    try:
        yield broker.bootstrap, broker.store.path, broker.tls.ca
    finally:
        broker.stop()


@pytest.fixture(scope="session")
def kafka_bootstrap(kafka_broker: tuple[str, Path | None, Path | None]) -> str:
    return kafka_broker[0]


@pytest.fixture(scope="session")
def kafka_settings(kafka_broker: tuple[str, Path | None, Path | None]) -> Settings:
    """Settings that reach the session's broker; ``.kafka(role)`` gives any principal's access."""
    bootstrap, store, cafile = kafka_broker
    return Settings(kafka_bootstrap_servers=bootstrap, kafka_credentials_file=store, kafka_ssl_cafile=cafile)


@pytest.fixture(scope="session")
def kafka_admin(kafka_settings: Settings) -> KafkaAccess:
    """The session's broker as the super user (tests' own producers, readers and provisioning)."""
    return kafka_settings.kafka(ADMIN)


@pytest.fixture(scope="session")
def pg_server_dsn(session_dir: Path) -> Iterator[str]:
    """DSN of the maintenance database of the test server."""
    external = os.environ.get("ALLIANCE_DATABASE_URL")
    if external:
        yield external
        return
    server = LocalPostgres(home=session_dir / "postgres", port=free_port(), fast=True)
    server.start()
    try:
        yield server.dsn_for("postgres")
    finally:
        server.stop()


@pytest.fixture
def unique() -> str:
    """A short unique suffix for topic, group and database names."""
    return uuid.uuid4().hex[:10]


@pytest.fixture
async def pg_dsn(pg_server_dsn: str, unique: str) -> AsyncIterator[str]:
    """A fresh, empty database for one test."""
    name = f"t_{unique}"
    admin = await asyncpg.connect(pg_server_dsn)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    yield with_database(pg_server_dsn, name)
    admin = await asyncpg.connect(pg_server_dsn)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@pytest.fixture
def settings(kafka_settings: Settings, pg_server_dsn: str, session_dir: Path) -> Settings:
    from pydantic import SecretStr

    return kafka_settings.model_copy(update={"database_url": SecretStr(pg_server_dsn), "local_dir": session_dir})
