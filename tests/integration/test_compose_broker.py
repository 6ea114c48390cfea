"""compose's broker start script (infra/kafka/compose/broker.sh) run here, without Docker: the apache/kafka
image's two scripts are stood in for by the real Kafka jars (the storage tool really formats the log dir with
the rendered configuration and the SCRAM users), and the server start only records what it was given.
Missing or unusable passwords stop it before anything is written."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from core.settings import PROJECT_ROOT
from infra.kafka_local import COMPOSE_DIR, fetch_jars
from infra.tls import ensure as ensure_tls

pytestmark = pytest.mark.integration

SCRIPT = COMPOSE_DIR / "broker.sh"
PASSWORDS = {f"KAFKA_{who}_PASSWORD": f"{who.lower()}-secret-0123456789"
             for who in ("BROKER", "ADMIN", "STREAMS", "PROJECTOR", "OPS", "PORTAL")}


@pytest.fixture
def kafka_home(tmp_path: Path) -> Path:
    """bin/kafka-storage.sh (the real storage tool) and bin/kafka-server-start.sh (records its arguments)."""
    libs = fetch_jars(PROJECT_ROOT / ".local", "4.0.2")
    home = tmp_path / "kafka"
    (home / "bin").mkdir(parents=True)
    storage = home / "bin" / "kafka-storage.sh"
    storage.write_text(f'#!/bin/bash\nexec java -cp "{libs}/*" kafka.tools.StorageTool "$@"\n')
    start = home / "bin" / "kafka-server-start.sh"
    start.write_text(f'#!/bin/bash\necho "$@" > "{tmp_path}/started-with"\n')
    storage.chmod(0o755)
    start.chmod(0o755)
    return home


def run(kafka_home: Path, tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    base = {"PATH": os.environ["PATH"], "KAFKA_HOME": str(kafka_home), "TEMPLATE": str(COMPOSE_DIR /
            "server.properties.in"), "WORK_DIR": str(tmp_path), "DATA_DIR": str(tmp_path / "data"),
            "NODE_ID": "2", "CLUSTER_ID": "QWxsaWFuY2VCYWNrYm9uZQ", "EXTERNAL_PORT": "19093", **PASSWORDS}
    if "TLS_DIR" not in env:  # the certificates `python -m infra tls` makes
        base["TLS_DIR"] = str(ensure_tls(tmp_path / "tls", ["kafka-1", "kafka-2", "kafka-3", "localhost"]).directory)
    return subprocess.run(["bash", str(SCRIPT)], env={**base, **env}, capture_output=True, text=True, timeout=120,
                          check=False)


def test_a_node_is_formatted_with_the_service_users_and_started_with_its_own_configuration(
        kafka_home: Path, tmp_path: Path) -> None:
    done = run(kafka_home, tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    config = tmp_path / "server.properties"
    assert (tmp_path / "started-with").read_text().split() == [str(config)]
    props = dict(line.split("=", 1) for line in config.read_text().splitlines() if "=" in line and line[0] != "#")
    assert not re.search(r"@[A-Z_]+@", config.read_text())  # every placeholder filled in
    assert props["node.id"] == "2" and props["log.dirs"] == str(tmp_path / "data")
    assert "EXTERNAL://localhost:19093" in props["advertised.listeners"]
    jaas = props["listener.name.internal.scram-sha-512.sasl.jaas.config"]
    assert f'password="{PASSWORDS["KAFKA_BROKER_PASSWORD"]}"' in jaas
    assert oct(config.stat().st_mode & 0o777) == "0o600"  # it holds the brokers' password
    assert props["ssl.keystore.location"] == str(tmp_path / "tls" / "server.pem")
    client = (tmp_path / "client.properties").read_text()  # the health check's: TLS against the CA too
    assert "security.protocol=SASL_SSL" in client and f"ssl.truststore.location={tmp_path}/tls/ca.pem" in client
    assert "username=\"broker\"" in (tmp_path / "client.properties").read_text()
    meta = (tmp_path / "data" / "meta.properties").read_text()
    assert "node.id=2" in meta and "cluster.id=QWxsaWFuY2VCYWNrYm9uZQ" in meta
    # the storage tool wrote the SCRAM users into the bootstrap metadata (its record names the users)
    checkpoint = (tmp_path / "data" / "bootstrap.checkpoint").read_bytes()
    for user in ("broker", "admin", "streams", "projector", "ops", "portal"):
        assert user.encode() in checkpoint, user
    again = run(kafka_home, tmp_path)  # a restart: already formatted, started again
    assert again.returncode == 0, again.stdout + again.stderr


@pytest.mark.parametrize(("variable", "value", "says"), [
    ("KAFKA_STREAMS_PASSWORD", "", "KAFKA_STREAMS_PASSWORD is not set"),
    ("KAFKA_ADMIN_PASSWORD", "short", "KAFKA_ADMIN_PASSWORD must be at least 16"),
    ("KAFKA_BROKER_PASSWORD", 'x"; rm -rf / #padding-padding', "KAFKA_BROKER_PASSWORD must be"),
])
def test_a_missing_or_unusable_password_stops_the_node_before_anything_is_written(
        kafka_home: Path, tmp_path: Path, variable: str, value: str, says: str) -> None:
    done = run(kafka_home, tmp_path, **{variable: value})
    assert done.returncode == 2 and says in done.stderr, done.stderr
    assert not (tmp_path / "server.properties").exists() and not (tmp_path / "data").exists()


def test_a_node_without_its_certificates_does_not_start(kafka_home: Path, tmp_path: Path) -> None:
    done = run(kafka_home, tmp_path, TLS_DIR=str(tmp_path / "no-tls"))
    assert done.returncode == 2 and "python -m infra tls" in done.stderr, done.stderr
    assert not (tmp_path / "data").exists() and not (tmp_path / "started-with").exists()
