"""The read model's PostgreSQL roles on the real server (core.db_access): migrations as the owner, the projector
writes but changes no schema, portals only read, no application role is a superuser, and the server takes
passwords only (no trust)."""

from __future__ import annotations

import asyncio
import json
import os
import ssl
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from consumers.migrate import migrate
from core.credentials import CredentialStore
from core.db_access import APP_ROLES, OWNER, READER, SUPERUSER, WRITER, verified
from core.settings import PROJECT_ROOT
from infra.postgres_local import LocalPostgres
from infra.tls import ensure as ensure_tls

pytestmark = pytest.mark.integration


@pytest.fixture
async def server(pg_server_dsn: str, session_dir: Path, unique: str) -> AsyncIterator[LocalPostgres]:
    """The session's server (started by infra in conftest) with a database of this test, prepared as infra
    prepares the local read model's."""
    port = urlsplit(pg_server_dsn).port
    if port is None or not CredentialStore.of(session_dir / "postgres").exists():
        pytest.fail("the session's PostgreSQL is not the local one (ALLIANCE_DATABASE_URL is set)")
    pg = LocalPostgres(home=session_dir / "postgres", port=port, database=f"roles_{unique}")
    await asyncio.to_thread(pg.prepare_database, pg.database)
    yield pg
    admin = await asyncpg.connect(pg.dsn_for("postgres"))
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{pg.database}" WITH (FORCE)')
    finally:
        await admin.close()


async def test_each_role_may_do_exactly_its_part(server: LocalPostgres) -> None:
    db = server.database
    applied = await migrate(server.dsn_for(db, OWNER))
    assert applied, "the owner ran no migration"

    writer = await asyncpg.connect(server.dsn_for(db, WRITER))
    try:
        await writer.execute("INSERT INTO consumer_offsets (group_id, topic, partition, next_offset) "
                             "VALUES ('g', 't', 0, 5)")
        await writer.execute("UPDATE consumer_offsets SET next_offset = 6 WHERE group_id = 'g'")
        await writer.execute("CREATE TEMP TABLE stage_probe (x int)")  # the projector's staging tables
        for ddl in ("CREATE TABLE intruder (x int)", "DROP TABLE consumer_offsets",
                    "ALTER TABLE consumer_offsets ADD COLUMN x int"):
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await writer.execute(ddl)
    finally:
        await writer.close()

    reader = await asyncpg.connect(server.dsn_for(db, READER))
    try:  # the views of schema portal, and nothing else: no per-student row, no table underneath
        assert await reader.fetchval("SELECT next_offset FROM portal.projector_positions WHERE group_id = 'g'") == 6
        # every SQL panel of the Grafana dashboard runs as this role (the read-model datasource's user)
        dashboard = json.loads((PROJECT_ROOT / "infra" / "grafana" / "dashboards" / "alliance.json").read_text())
        sql = [t["rawSql"] for p in dashboard["panels"] for t in p.get("targets", []) if "rawSql" in t]
        assert sql
        for statement in sql:
            await reader.fetch(statement)
        for statement in ("SELECT * FROM consumer_offsets", "SELECT * FROM service_progress",
                          "SELECT * FROM agg_snapshot", "SELECT * FROM projector_rejects",
                          "INSERT INTO consumer_offsets (group_id, topic, partition, next_offset) VALUES ('x','t',0,1)",
                          "UPDATE consumer_offsets SET next_offset = 0", "DELETE FROM consumer_offsets",
                          "DELETE FROM portal.projector_positions", "CREATE TABLE intruder (x int)",
                          "CREATE VIEW portal.intruder AS SELECT 1"):
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await reader.execute(statement)
    finally:
        await reader.close()

    admin = await asyncpg.connect(server.dsn_for(db))
    try:
        roles = await admin.fetch("SELECT rolname, rolsuper, rolcreatedb, rolcreaterole FROM pg_roles "
                                  "WHERE rolname = ANY($1)", list(APP_ROLES))
        assert {r["rolname"] for r in roles} == set(APP_ROLES)
        assert not any(r["rolsuper"] or r["rolcreatedb"] or r["rolcreaterole"] for r in roles)
        assert await admin.fetchval("SELECT pg_catalog.pg_get_userbyid(datdba) FROM pg_database "
                                    "WHERE datname = $1", db) == OWNER
    finally:
        await admin.close()


async def test_passwords_only_and_no_connection_without_a_grant(server: LocalPostgres, unique: str) -> None:
    host = f"127.0.0.1:{server.port}"
    for role in (SUPERUSER, *APP_ROLES):
        with pytest.raises(asyncpg.InvalidPasswordError):  # no trust: a wrong password is refused
            await asyncpg.connect(verified(f"postgresql://{role}@{host}/{server.database}", str(server.tls.ca)),
                                  password="guessed-password")
    # a database the roles were not granted (made by the superuser for something else) refuses them
    admin = await asyncpg.connect(server.dsn_for("postgres"))
    other = f"other_{unique}"
    try:
        await admin.execute(f'CREATE DATABASE "{other}"')
        await admin.execute(f'REVOKE ALL ON DATABASE "{other}" FROM PUBLIC')
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await asyncpg.connect(server.dsn_for(other, READER))
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{other}" WITH (FORCE)')
        await admin.close()


async def test_tls_only_with_a_certificate_of_the_local_ca(server: LocalPostgres, tmp_path: Path) -> None:
    """The right password without TLS finds no pg_hba entry; a client that trusts another CA refuses the
    server before it sends the password; with the server's CA (host name checked) the session is TLS."""
    right = server.dsn_for(server.database, READER)
    conn = await asyncpg.connect(right)
    try:
        assert await conn.fetchval("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()") is True
    finally:
        await conn.close()
    plain = urlunsplit(urlsplit(right)._replace(query="sslmode=disable"))
    with pytest.raises(asyncpg.InvalidAuthorizationSpecificationError, match="no encryption"):
        await asyncpg.connect(plain)
    other = ensure_tls(tmp_path / "other-ca")
    with pytest.raises(ssl.SSLCertVerificationError):
        await asyncpg.connect(verified(right, str(other.ca)))


def test_db_roles_command_prepares_another_server_the_same_way(server: LocalPostgres, pg_server_dsn: str,
                                                               unique: str) -> None:
    """``python -m infra db-roles`` (what compose runs) with a superuser URL and the roles' passwords: twice
    (idempotent), then each role works as in the local stack; missing settings are named. (Roles belong to the
    whole server: the passwords are the session server's own, so the other tests' connections keep working.)"""
    database = f"compose_{unique}"
    passwords = {role: server.store.password(role).get_secret_value() for role in APP_ROLES}
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("ALLIANCE_")},
           "ALLIANCE_DATABASE_ADMIN_URL": pg_server_dsn, "ALLIANCE_LOCAL_POSTGRES_DATABASE": database,
           "ALLIANCE_PG_OWNER_PASSWORD": passwords[OWNER], "ALLIANCE_PG_PROJECTOR_PASSWORD": passwords[WRITER],
           "ALLIANCE_PG_PORTAL_PASSWORD": passwords[READER]}

    def db_roles(environment: dict[str, str]) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "infra", "db-roles"], env=environment, cwd=PROJECT_ROOT,
                              capture_output=True, text=True, timeout=60, check=False)

    missing = db_roles({k: v for k, v in env.items() if k != "ALLIANCE_PG_PORTAL_PASSWORD"})
    assert missing.returncode == 2 and "ALLIANCE_PG_PORTAL_PASSWORD" in missing.stderr, missing.stderr
    for _ in range(2):
        done = db_roles(env)
        assert done.returncode == 0, done.stderr
    host = urlsplit(pg_server_dsn)

    def url(role: str) -> str:
        return verified(f"postgresql://{role}:{passwords[role]}@{host.hostname}:{host.port}/{database}",
                        str(server.tls.ca))

    async def check() -> None:
        assert await migrate(url(OWNER))
        reader = await asyncpg.connect(url(READER))
        try:
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await reader.execute("DELETE FROM consumer_offsets")
        finally:
            await reader.close()
        admin = await asyncpg.connect(pg_server_dsn)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        finally:
            await admin.close()

    asyncio.run(check())
