from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from pydantic import ValidationError

from core.credentials import CredentialsError, CredentialStore
from core.db_access import READER, WRITER
from core.settings import Settings
from events.reference import UNIVERSITIES
from events.topics import DLQ_TOPIC, Family, family_topic, ingest_topic, registry


def test_unset_settings_mean_local_embedded_services(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("ALLIANCE_KAFKA_BOOTSTRAP_SERVERS", raising=False)
    monkeypatch.delenv("ALLIANCE_DATABASE_URL", raising=False)
    s = Settings(local_dir=tmp_path)
    assert s.uses_local_kafka and s.uses_local_postgres and s.bootstrap == "127.0.0.1:9092"
    with pytest.raises(CredentialsError, match="python -m infra up"):  # no local server set up yet
        s.dsn_for(WRITER)
    CredentialStore.of(tmp_path / "postgres").save({WRITER: "pw-of-the-writer"})
    dsn = urlsplit(s.dsn_for(WRITER))  # over TLS, the server checked against the local server's CA
    assert dsn._replace(query="").geturl() == f"postgresql://{WRITER}:pw-of-the-writer@127.0.0.1:54329/alliance"
    assert parse_qs(dsn.query) == {"sslmode": ["verify-full"], "sslrootcert": [str(tmp_path / "postgres/tls/ca.pem")]}
    assert s.kafka_cafile == tmp_path / "kafka" / "tls" / "ca.pem"
    assert s.database_env() == {"ALLIANCE_LOCAL_POSTGRES_PORT": "54329", "ALLIANCE_LOCAL_POSTGRES_DATABASE": "alliance"}


def test_environment_overrides_and_secret_is_hidden(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALLIANCE_KAFKA_BOOTSTRAP_SERVERS", "k1:9092,k2:9092")
    monkeypatch.setenv("ALLIANCE_DATABASE_URL", "postgresql://u:secret@db/alliance")
    s = Settings()
    assert not s.uses_local_kafka and s.bootstrap == "k1:9092,k2:9092"
    assert s.dsn_for(WRITER).endswith("@db/alliance") and s.dsn_for(READER) == s.dsn_for(WRITER)
    assert "secret" not in repr(s)


def test_settings_are_frozen_and_validated() -> None:
    s = Settings()
    with pytest.raises(ValidationError):
        s.web_port = 1  # type: ignore[misc]
    with pytest.raises(ValidationError):
        Settings(web_port=70000)


def test_registry_names_follow_the_convention() -> None:
    names = [s.name for s in registry()]
    assert len(names) == len(set(names))
    assert DLQ_TOPIC in names
    assert all(ingest_topic(code) in names for code in UNIVERSITIES)
    assert all(family_topic(f) in names for f in Family)
    agg = [s for s in registry() if s.name.startswith("alliance.agg.")]
    assert agg and all(s.compacted and s.config()["cleanup.policy"] == "compact" for s in agg)
    assert all(s.config()["cleanup.policy"] == "delete" for s in registry() if not s.compacted)


def test_a_worker_started_by_infra_keeps_its_tables_where_infra_wipes_them(tmp_path: Path) -> None:
    """``make run`` wipes the tables with its local Kafka's data; its children are given that Kafka as bootstrap
    servers, and without the parent's tables home they kept theirs under <local dir>/faust, which no fresh run
    wiped: a second ``make run`` crashed (faust's ConsistencyError, a persisted offset past an empty changelog)."""
    from infra.processes import Service

    parent = Settings(local_dir=tmp_path)
    assert parent.uses_local_kafka
    probe = Service("probe", ["-c", "from core.settings import load_settings; print(load_settings().tables_dir)"],
                    tmp_path / "probe.log", 0, quiet=True)
    probe.start(parent)
    assert probe.proc is not None and probe.proc.wait(60) == 0
    assert (tmp_path / "probe.log").read_text().split()[-1] == str(parent.tables_dir)
    assert parent.tables_dir == tmp_path / "kafka" / "tables"
