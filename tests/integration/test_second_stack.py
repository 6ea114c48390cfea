"""Every local port is a setting: a second local stack (broker and database) runs beside the test session's
own, started and stopped by the project's commands, and a port that is taken is refused by name."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import asyncpg
import pytest
from kafka import KafkaAdminClient

from core.db_access import READER
from core.kafka_access import ADMIN, KafkaAccess
from core.settings import PROJECT_ROOT, Settings
from infra.processes import free_ports, port_open

pytestmark = pytest.mark.integration


def infra(command: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("ALLIANCE_")}
    return subprocess.run([sys.executable, "-m", "infra", command], capture_output=True, text=True, timeout=300,
                          cwd=PROJECT_ROOT, env={**base, **env}, check=False)


async def test_a_second_stack_runs_beside_the_first_on_its_own_ports(
        session_dir: Path, kafka_admin: KafkaAccess) -> None:
    kafka, controller, pg = free_ports(3)
    env = {"ALLIANCE_LOCAL_DIR": str(session_dir / "stack2"), "ALLIANCE_LOCAL_KAFKA_PORT": str(kafka),
           "ALLIANCE_LOCAL_KAFKA_CONTROLLER_PORT": str(controller), "ALLIANCE_LOCAL_POSTGRES_PORT": str(pg)}
    try:
        up = infra("up", env)
        assert up.returncode == 0, up.stdout + up.stderr
        assert f"127.0.0.1:{kafka}" in up.stdout and f"127.0.0.1:{pg}" in up.stdout, up.stdout
        admin = KafkaAdminClient(**Settings(local_dir=session_dir / "stack2", local_kafka_port=kafka).kafka(ADMIN)
                                 .kafka_python())
        try:  # a broker of its own, not the session's
            assert admin.describe_cluster()["cluster_id"]
            own = KafkaAdminClient(**kafka_admin.kafka_python())
            try:
                assert own.describe_cluster()["cluster_id"] != admin.describe_cluster()["cluster_id"]
            finally:
                own.close()
        finally:
            admin.close()
        stack2 = Settings(local_dir=session_dir / "stack2", local_postgres_port=pg)
        conn = await asyncpg.connect(stack2.dsn_for(READER))  # its own roles, with the passwords it generated
        try:
            assert await conn.fetchval("SELECT 1") == 1
        finally:
            await conn.close()
        with pytest.raises(asyncpg.InvalidPasswordError):  # no trust: a role without its password is refused
            await asyncpg.connect(f"postgresql://{READER}@127.0.0.1:{pg}/alliance", password="guessed")

        # a third stack on the same ports is refused, naming the setting that moves it
        taken = infra("up", {**env, "ALLIANCE_LOCAL_DIR": str(session_dir / "stack3")})
        assert taken.returncode == 2 and "ALLIANCE_LOCAL_KAFKA_PORT" in taken.stderr, taken.stderr
        bad = infra("status", {**env, "ALLIANCE_LOCAL_POSTGRES_PORT": "not-a-port"})
        assert bad.returncode == 2 and "ALLIANCE_LOCAL_POSTGRES_PORT" in bad.stderr, bad.stderr
    finally:
        down = infra("down", env)
    assert down.returncode == 0, down.stderr
    assert not port_open(kafka) and not port_open(pg)
