"""The one typed settings object (environment prefix ``ALLIANCE_``).

Unset URLs mean the local embedded services that ``python -m infra up`` starts: a single-node Kafka on
127.0.0.1:``local_kafka_port`` (9092) and a PostgreSQL on 127.0.0.1:``local_postgres_port`` (54329). Every
local port is a setting, so a second stack runs beside the first with other ports and another
``ALLIANCE_LOCAL_DIR``. Setting a URL means "use that server" (the local service is then not started).
"""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from core.credentials import CredentialStore
from core.db_access import verified
from core.errors import AllianceError
from core.kafka_access import KafkaAccess
from events.privacy import DEVELOPMENT_KEY, DEVELOPMENT_KEY_ID
from events.topics import AGG_PARTITIONS, EVENT_PARTITIONS, INGEST_PARTITIONS, TopicSpec, registry

PROJECT_ROOT = Path(__file__).resolve().parent.parent


class SettingsError(AllianceError):
    """An ALLIANCE_* environment variable has a value the settings refuse."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ALLIANCE_", frozen=True, extra="ignore")

    kafka_bootstrap_servers: str | None = Field(
        default=None, description="host:port[,host:port]; unset = the local single-node broker"
    )
    kafka_username: str | None = Field(
        default=None, pattern=r"^[A-Za-z0-9._-]{1,64}$",
        description="SCRAM-SHA-512 principal of this process; unset = the process's own role, with its "
                    "password from the local broker's credential store (local stack) or no authentication")
    kafka_password: SecretStr | None = Field(default=None, description="password of ALLIANCE_KAFKA_USERNAME")
    kafka_ssl_cafile: Path | None = Field(
        default=None, description="CA certificate of the brokers' TLS listeners (SASL_SSL); unset = the local "
                                  "broker's <broker home>/tls/ca.pem when the local broker is used, else "
                                  "no TLS (docs/security.md)")
    kafka_credentials_file: Path | None = Field(
        default=None,
        description="a credential store (JSON {user: password}) to take the role's password from; unset = "
                    "the local broker's <broker home>/users.json when the local broker is used")
    database_url: SecretStr | None = Field(
        default=None, description="postgresql://user:pass@host:port/db; unset = the local PostgreSQL"
    )
    database_admin_url: SecretStr | None = Field(
        default=None,
        description="a superuser's postgresql:// URL of the server (any database): `python -m infra db-roles` "
                    "creates the read model's roles and database with it; no application process uses it")
    pg_owner_password: SecretStr | None = Field(default=None, description="password of role alliance_owner "
                                                "(python -m infra db-roles)")
    pg_projector_password: SecretStr | None = Field(default=None, description="password of role "
                                                    "alliance_projector (python -m infra db-roles)")
    pg_portal_password: SecretStr | None = Field(default=None, description="password of role alliance_portal "
                                                 "(python -m infra db-roles)")
    local_dir: Path = Field(default=PROJECT_ROOT / ".local", description="state of local services")
    tables_home: Path | None = Field(
        default=None, description="where workers keep their tables (tables_dir); unset: in the local Kafka's "
                                  "home with a local Kafka, else <local dir>/faust. Processes started by infra "
                                  "get their parent's, so a fresh `make run` wipes the tables its workers used")
    local_kafka_port: int = Field(default=9092, ge=1, le=65535, description="client port of the local broker")
    local_kafka_controller_port: int = Field(default=9093, ge=1, le=65535,
                                             description="KRaft controller port of the local broker")
    local_brokers: int = Field(
        default=1, ge=1, le=5,
        description="local Kafka nodes: 1, or 3 for the compose topology as local processes (node i on "
                    "local_kafka_port + 2(i-1) and local_kafka_controller_port + 2(i-1))")
    local_postgres_port: int = Field(default=54329, ge=1, le=65535, description="port of the local PostgreSQL")
    local_postgres_database: str = Field(default="alliance", pattern=r"^[a-z0-9_]{1,60}$",
                                         description="the read model's database: on the local PostgreSQL, and the one "
                                                     "`python -m infra db-roles` prepares")
    kafka_version: str = "4.0.2"
    replication_factor: int = Field(default=1, ge=1, le=5)
    topic_suffix: str = Field(
        default="", pattern=r"^[a-z0-9._-]{0,40}$",
        description="appended to every topic name (isolated test or staging runs on a shared cluster)",
    )
    app_id: str = Field(default="alliance-streams", pattern=r"^[a-z0-9._-]{1,60}$",
                        description="Faust application id (consumer group, changelog topic prefix)")
    ingest_partitions: int = Field(default=INGEST_PARTITIONS, ge=1, le=256,
                                   description="partitions of each alliance.ingest.* topic (and the DLQ)")
    event_partitions: int = Field(default=EVENT_PARTITIONS, ge=1, le=256,
                                  description="partitions of each alliance.events.* topic")
    agg_partitions: int = Field(default=AGG_PARTITIONS, ge=1, le=256,
                                description="partitions of alliance.agg.* and alliance.internal.partials")
    web_port: int = Field(default=6066, ge=1, le=65535)
    worker_instance_id: str | None = Field(
        default=None, pattern=r"^[A-Za-z0-9._-]{1,120}$",
        description="static group membership of a worker (Kafka group.instance.id): a worker restarted with "
                    "the same id gets its partitions back at once, without a rebalance; 'hostname' = this "
                    "host's name; unset = dynamic membership")
    session_timeout_seconds: float = Field(
        default=15.0, ge=6.0, le=300.0,
        description="how long the group coordinator waits for a silent worker before it moves its partitions")
    table_store: Literal["rocksdb", "memory"] = Field(
        default="rocksdb",
        description="the worker's table store: 'rocksdb' keeps tables on disk under tables_dir (a restart "
                    "reads only the changelog written since its last batch; memory does not grow with history); "
                    "'memory' rebuilds every table from its changelog at each start")
    dedupe_horizon_days: int = Field(
        default=30, ge=1, le=3650,
        description="how long the ingest remembers an event id to refuse a university's re-send as 'duplicate' "
                    "(table ingest-seen: RocksDB TTL, changelog retention); a re-send older than this is "
                    "harmless anyway (entity states merge idempotently, applied ids are kept)")
    stop_grace_seconds: float = Field(
        default=25.0, ge=1.0, le=600.0,
        description="a worker whose graceful stop has not finished after this long exits non-zero at once")
    metrics_port: int = Field(default=9464, ge=0, le=65535)
    http_bind: str = Field(
        default="127.0.0.1", pattern=r"^[0-9a-fA-F.:]+$",
        description="address the worker's and the portal API's HTTP servers listen on; 127.0.0.1 by default, "
                    "0.0.0.0 only where a network policy guards the port (compose)")
    http_token: SecretStr | None = Field(
        default=None,
        description="bearer token the worker views (/aggregates/, /entities/) and the portal API (/queries) "
                    "require (Authorization: Bearer <token>); unset = those views answer 503. Health, "
                    "readiness, /freshness/ and /metrics carry no data about people and stay open on the "
                    "internal port. `python -m infra run` generates one for the local stack")
    pseudonym_key: SecretStr | None = Field(
        default=None,
        description="HMAC key used to pseudonymise student ids before they leave a university; required "
                    "unless ALLIANCE_ENVIRONMENT=development (docs/security.md). Workers and the projector "
                    "never need it")
    pseudonym_key_id: str | None = Field(
        default=None, pattern=r"^[a-z0-9]{1,12}$",
        description="the id of ALLIANCE_PSEUDONYM_KEY, written into every pseudonym it mints "
                    "(ps.<university>.<key id>.<hex>) so keys can rotate; required with the key outside "
                    "development mode (where it defaults to 'dev')")
    environment: Literal["production", "development"] = Field(
        default="production",
        description="'development' allows the built-in pseudonym key (local stack, tests, the simulator); "
                    "production is the default, so a missing key is an error, not a silent default")

    @model_validator(mode="after")
    def _replicas_fit_the_local_brokers(self) -> Settings:
        if self.uses_local_kafka and self.replication_factor > self.local_brokers:
            raise ValueError(f"replication factor {self.replication_factor} needs as many local brokers: "
                             f"set ALLIANCE_LOCAL_BROKERS={self.replication_factor} (or use an external cluster)")
        return self

    def pseudonym_secret(self) -> str:
        """The pseudonymisation key: ALLIANCE_PSEUDONYM_KEY, or the built-in development key only in an
        explicit development mode; SettingsError otherwise."""
        if self.pseudonym_key is not None and self.pseudonym_key.get_secret_value():
            if self.environment == "production" and self.pseudonym_key.get_secret_value() == DEVELOPMENT_KEY:
                raise SettingsError("ALLIANCE_PSEUDONYM_KEY is the built-in development key; production needs "
                                    "the alliance's own key")
            return self.pseudonym_key.get_secret_value()
        if self.environment == "development":
            return DEVELOPMENT_KEY
        raise SettingsError("ALLIANCE_PSEUDONYM_KEY is not set: set the alliance's key, or "
                            "ALLIANCE_ENVIRONMENT=development to use the built-in development key "
                            "(pseudonyms that are not the alliance's)")

    def pseudonym_key_and_id(self) -> tuple[str, str]:
        """The pseudonymisation key (:meth:`pseudonym_secret`) and its id; SettingsError without an id outside
        development mode (a pseudonym must say which key minted it, or the key can never rotate)."""
        key = self.pseudonym_secret()
        if self.pseudonym_key_id:
            return key, self.pseudonym_key_id
        if self.environment == "development":
            return key, DEVELOPMENT_KEY_ID
        raise SettingsError("ALLIANCE_PSEUDONYM_KEY_ID is not set: name the key (1-12 lower-case letters or "
                            "digits, e.g. k2026); it goes into every pseudonym the key mints")

    @property
    def uses_local_kafka(self) -> bool:
        return self.kafka_bootstrap_servers is None

    @property
    def uses_local_postgres(self) -> bool:
        return self.database_url is None

    @property
    def local_kafka_home(self) -> Path:
        """State of the local broker (single node) or of the local cluster (``local_brokers`` > 1)."""
        if self.local_brokers > 1:  # the compose topology: its own state, beside the single broker's
            return self.local_dir / f"kafka-cluster-{self.local_brokers}"
        return self.local_dir / "kafka"

    @property
    def tables_dir(self) -> Path:
        """Where workers keep their tables (``table_store`` rocksdb): ``<app id>/<worker>/`` below it. The
        tables mirror one Kafka cluster's changelogs, so with a local Kafka they live in its home (the single
        broker and the 3-node cluster each have their own) and are wiped with its data. ``tables_home`` when set:
        the child processes of ``infra`` (their Kafka is given as bootstrap servers, so they could not tell)."""
        if self.tables_home is not None:
            return self.tables_home
        return self.local_kafka_home / "tables" if self.uses_local_kafka else self.local_dir / "faust"

    @property
    def local_postgres_home(self) -> Path:
        """State of the local PostgreSQL (data, log, the roles' passwords)."""
        return self.local_dir / "postgres"

    @property
    def credential_store(self) -> CredentialStore | None:
        if self.kafka_credentials_file is not None:
            return CredentialStore(self.kafka_credentials_file)
        if self.uses_local_kafka:
            return CredentialStore.of(self.local_kafka_home)
        return None

    @property
    def kafka_cafile(self) -> Path | None:
        """The CA the brokers' TLS listeners are checked against: ``kafka_ssl_cafile``, else the local broker's
        (which always runs TLS, infra.tls), else none (an external cluster without TLS)."""
        if self.kafka_ssl_cafile is not None:
            return self.kafka_ssl_cafile
        # where infra.tls.TlsFiles.of(<broker home>) keeps it (core may not import infra)
        return self.local_kafka_home / "tls" / "ca.pem" if self.uses_local_kafka else None

    def kafka(self, role: str) -> KafkaAccess:
        """How this process reaches Kafka acting as ``role`` (core.kafka_access): ALLIANCE_KAFKA_USERNAME and
        _PASSWORD when set; otherwise ``role`` with its password from the credential store; otherwise (an
        external cluster without a store) no authentication."""
        cafile = str(self.kafka_cafile) if self.kafka_cafile is not None else None
        access = KafkaAccess(self.bootstrap, ssl_cafile=cafile)
        if self.kafka_username is not None:
            if self.kafka_password is None:
                raise SettingsError("ALLIANCE_KAFKA_USERNAME is set but ALLIANCE_KAFKA_PASSWORD is not")
            return access.as_user(self.kafka_username, self.kafka_password)
        if self.kafka_password is not None:
            raise SettingsError("ALLIANCE_KAFKA_PASSWORD is set but ALLIANCE_KAFKA_USERNAME is not")
        store = self.credential_store
        if store is None:
            return access
        return access.as_user(role, store.password(role))

    def kafka_env(self) -> dict[str, str]:
        """The ALLIANCE_* variables that let a child process reach this broker as its own role."""
        store = self.credential_store
        return {"ALLIANCE_KAFKA_BOOTSTRAP_SERVERS": self.bootstrap,
                **({"ALLIANCE_KAFKA_CREDENTIALS_FILE": str(store.path)} if store is not None else {}),
                **({"ALLIANCE_KAFKA_SSL_CAFILE": str(self.kafka_cafile)} if self.kafka_cafile else {})}

    @property
    def bootstrap(self) -> str:
        return self.kafka_bootstrap_servers or ",".join(
            f"127.0.0.1:{self.local_kafka_port + 2 * i}" for i in range(self.local_brokers))

    @property
    def group_instance_id(self) -> str | None:
        """The worker's Kafka group.instance.id (``worker_instance_id``, 'hostname' resolved)."""
        if self.worker_instance_id == "hostname":
            return socket.gethostname()
        return self.worker_instance_id

    def registry(self) -> list[TopicSpec]:
        """The topic registry with this deployment's partition counts (names without the suffix)."""
        return registry(self.ingest_partitions, self.event_partitions, self.agg_partitions)

    def topic(self, name: str) -> str:
        """The real name of registry topic ``name`` (with ``topic_suffix``)."""
        return f"{name}{self.topic_suffix}"

    def dsn_for(self, role: str) -> str:
        """The read model's DSN for ``role`` (core.db_access: the owner migrates, the projector writes, portals
        read): ALLIANCE_DATABASE_URL when set (the operator gives each process its own), otherwise the local
        PostgreSQL as ``role`` with its password from the local store, over TLS checked against its CA."""
        if self.database_url is not None:
            return self.database_url.get_secret_value()
        password = CredentialStore.of(self.local_postgres_home).password(role).get_secret_value()
        return verified(f"postgresql://{role}:{password}@127.0.0.1:{self.local_postgres_port}/"
                        f"{self.local_postgres_database}",
                        str(self.local_postgres_home / "tls" / "ca.pem"))  # infra.tls.TlsFiles.of(home).ca

    def database_env(self) -> dict[str, str]:
        """The ALLIANCE_* variables that let a child process reach this read model as its own role."""
        if self.database_url is not None:
            return {"ALLIANCE_DATABASE_URL": self.database_url.get_secret_value()}
        return {"ALLIANCE_LOCAL_POSTGRES_PORT": str(self.local_postgres_port),
                "ALLIANCE_LOCAL_POSTGRES_DATABASE": self.local_postgres_database}


def load_settings() -> Settings:
    """The settings of this process's environment; a bad ALLIANCE_* value raises SettingsError naming it."""
    try:
        return Settings()
    except ValidationError as exc:
        problems = "; ".join(f"ALLIANCE_{'_'.join(str(p) for p in e['loc']).upper()}: {e['msg']}"
                             for e in exc.errors(include_url=False))
        raise SettingsError(f"invalid settings: {problems}") from None
