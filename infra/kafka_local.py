"""REAL Apache Kafka brokers in KRaft mode (no ZooKeeper), for development and tests: one broker
(:class:`LocalKafka`, what ``python -m infra up`` starts) or the compose topology as local processes
(:class:`LocalKafkaCluster`: three combined broker+controller nodes, replication 3, min.insync.replicas 2).

The broker's jars (org.apache.kafka:kafka_2.13 plus a log4j2 binding) are resolved from Maven Central
with Maven into ``<local_dir>/kafka-libs-<version>`` once, then the broker is formatted and started
with ``java``. Readiness is an admin ``describe_cluster`` call, not a sleep.

Authentication and authorisation are on, as in compose: clients authenticate with SASL/SCRAM-SHA-512
(every principal of ``core.kafka_access.local_principals`` is bootstrapped at format time with a generated
password kept in ``<home>/users.json``); the KRaft controller listener uses SASL/PLAIN for the ``broker``
principal only (SCRAM credentials live in the metadata log, which controllers serve, so they cannot
authenticate with them); KRaft's StandardAuthorizer refuses whatever no ACL allows
(``allow.everyone.if.no.acl.found=false``); ``broker`` is the only super user. Once the broker is up, infra
grants the operators' ``admin`` its ACLs (``core.access_policy.admin_grants``); the other ACLs come from the
topic registry when topics are provisioned.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path

from core.access_policy import admin_grants
from core.credentials import CredentialStore
from core.kafka_access import BROKER, MECHANISM, KafkaAccess, local_principals
from core.topic_admin import grant
from infra.errors import InfraError
from infra.processes import port_open, read_pid, stop_all, tail, wait_until
from infra.tls import LOCAL_HOSTS, TlsFiles
from infra.tls import ensure as ensure_tls

POM = Path(__file__).parent / "kafka" / "pom.xml"
LOG4J2 = Path(__file__).parent / "kafka" / "log4j2.properties"


def fetch_jars(cache_dir: Path, version: str) -> Path:
    """Resolve the broker jars with Maven (cached: a second call is free)."""
    cache_dir = cache_dir.resolve()
    libs = cache_dir / f"kafka-libs-{version}"
    if (libs / ".complete").exists():
        return libs
    if shutil.which("mvn") is None:
        raise InfraError("Maven ('mvn') is needed to fetch the Kafka broker jars: apt-get install maven")
    if shutil.which("java") is None:
        raise InfraError("Java 17+ ('java') is needed to run the Kafka broker: apt-get install openjdk-17-jre")
    tmp = cache_dir / f".kafka-libs-{version}.partial"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    print(f"[infra] fetching org.apache.kafka:kafka_2.13:{version} jars from Maven Central ...", flush=True)
    cmd = [
        "mvn", "-q", "-B", "-f", str(POM), f"-Dkafka.version={version}",
        "dependency:copy-dependencies", f"-DoutputDirectory={tmp}", "-DincludeScope=runtime",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise InfraError(f"maven could not resolve the Kafka jars:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    if not list(tmp.glob("kafka_2.13-*.jar")):
        raise InfraError(f"maven finished but no kafka_2.13 jar is in {tmp}:\n{proc.stdout[-2000:]}")
    (tmp / ".complete").write_text(version)
    shutil.rmtree(libs, ignore_errors=True)
    tmp.rename(libs)
    print(f"[infra] {len(list(libs.glob('*.jar')))} jars in {libs}", flush=True)
    return libs


def broker_properties(*, node_id: int | str, voters: str, listeners: dict[str, tuple[str, str]], controller: str,
                      broker_password: str, replicas: int, data_dir: str, development: bool,
                      tls: tuple[str, str] | None = None) -> list[str]:
    """server.properties of a combined broker+controller node, the same for the local broker, the local
    cluster and compose (``infra/kafka/compose``): client listeners ``{name: (bind, advertised)}`` (the first
    one also carries the brokers' own traffic) on SASL/SCRAM-SHA-512, the controller listener on SASL/PLAIN
    for ``broker`` only, StandardAuthorizer denying what no ACL allows, ``broker`` the only super user.
    ``development`` adds the local stack's tuning (no rebalance delay, quick compaction, no controlled
    shutdown). ``tls``: (keystore, truststore) PEM files (infra.tls): every listener, the controller's too, then
    runs SASL over TLS."""
    jaas = "org.apache.kafka.common.security"
    names = list(listeners)
    min_isr = max(1, replicas - 1)
    lines = [
        "process.roles=broker,controller",
        f"node.id={node_id}",
        f"controller.quorum.voters={voters}",
        "listeners=" + ",".join([f"{n}://{bind}" for n, (bind, _) in listeners.items()] + [f"CONTROLLER://{controller}"]),
        "advertised.listeners=" + ",".join(f"{n}://{adv}" for n, (_, adv) in listeners.items()),
        "controller.listener.names=CONTROLLER",
        f"inter.broker.listener.name={names[0]}",
        "listener.security.protocol.map=" + ",".join(f"{n}:{'SASL_SSL' if tls else 'SASL_PLAINTEXT'}"
                                                     for n in [*names, "CONTROLLER"]),
        f"sasl.enabled.mechanisms={MECHANISM}",
        f"sasl.mechanism.inter.broker.protocol={MECHANISM}",
        "sasl.mechanism.controller.protocol=PLAIN",
        "listener.name.controller.sasl.enabled.mechanisms=PLAIN",
        f"listener.name.controller.plain.sasl.jaas.config={jaas}.plain.PlainLoginModule required "
        f'username="{BROKER}" password="{broker_password}" user_{BROKER}="{broker_password}";',
        *(f"listener.name.{n.lower()}.{MECHANISM.lower()}.sasl.jaas.config={jaas}.scram.ScramLoginModule required "
          f'username="{BROKER}" password="{broker_password}";' for n in names),
        "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer",
        "allow.everyone.if.no.acl.found=false",
        f"super.users=User:{BROKER}",
        f"log.dirs={data_dir}",
        "num.partitions=1",
        "auto.create.topics.enable=false",
        f"default.replication.factor={replicas}",
        f"min.insync.replicas={min_isr}",
        f"offsets.topic.replication.factor={replicas}",
        f"transaction.state.log.replication.factor={replicas}",
        f"transaction.state.log.min.isr={min_isr}",
        f"share.coordinator.state.topic.replication.factor={replicas}",
        f"share.coordinator.state.topic.min.isr={min_isr}",
    ]
    if tls is not None:  # PEM files as infra.tls writes them; host names are verified (the default, https)
        lines += ["ssl.keystore.type=PEM", f"ssl.keystore.location={tls[0]}",
                  "ssl.truststore.type=PEM", f"ssl.truststore.location={tls[1]}",
                  "ssl.enabled.protocols=TLSv1.3,TLSv1.2", "ssl.endpoint.identification.algorithm=https"]
    if development:
        lines += ["offsets.topic.num.partitions=10", "transaction.state.log.num.partitions=4",
                  "group.initial.rebalance.delay.ms=0", "log.cleaner.backoff.ms=2000",
                  # a local stack's nodes are stopped together or one after the other. A broker's controlled
                  # shutdown waits for the controller quorum's approval, and the quorum is the other nodes: when they
                  # had left first, the broker waited until it was killed, with no clean-shutdown marker
                  # (tests/integration/test_local_cluster.py). compose's brokers keep it, for rolling restarts
                  "controlled.shutdown.enable=false"]
    else:
        lines += ["group.initial.rebalance.delay.ms=3000"]
    return lines


COMPOSE_DIR = Path(__file__).parent / "kafka" / "compose"
COMPOSE_TEMPLATE = COMPOSE_DIR / "server.properties.in"
COMPOSE_NODES = 3


def compose_properties() -> str:
    """compose's broker configuration (``infra/kafka/compose/server.properties.in``): the local cluster's,
    with compose's host names and ports; ``broker.sh`` fills in the ``@...@`` placeholders in each container."""
    voters = ",".join(f"{i}@kafka-{i}:9093" for i in range(1, COMPOSE_NODES + 1))
    lines = broker_properties(
        node_id="@NODE_ID@", voters=voters, controller=":9093",
        listeners={"INTERNAL": (":9092", "@HOST@:9092"), "EXTERNAL": (":@EXTERNAL_PORT@", "localhost:@EXTERNAL_PORT@")},
        broker_password="@BROKER_PASSWORD@", replicas=COMPOSE_NODES, data_dir="@DATA_DIR@",
        development=False, tls=("@TLS_DIR@/server.pem", "@TLS_DIR@/ca.pem"))
    return "# generated by `python -m infra compose-config` from infra/kafka_local.py: do not edit\n" + \
        "\n".join(lines) + "\n"


@dataclass
class LocalKafka:
    """One broker+controller process; state under ``home``, jars under ``cache_dir``. In a cluster, each node
    has its ``node_id``, the cluster's ``voters`` (``id@host:port`` of every controller), its ``cluster_id``
    and the cluster's replication (``replicas``: default and internal topics' replication factor; min ISR
    is one less)."""

    home: Path
    cache_dir: Path
    port: int = 9092
    controller_port: int = 9093
    version: str = "4.0.2"
    heap: str = "768m"
    node_id: int = 1
    voters: str | None = None
    cluster_id: str | None = None
    replicas: int = 1
    credentials: CredentialStore | None = None  # a cluster's nodes share one; default <home>/users.json
    tls_dir: Path | None = None  # CA and server certificate (infra.tls), shared by a cluster; default <home>/tls

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def store(self) -> CredentialStore:
        return self.credentials or CredentialStore.of(self.home)

    @property
    def tls(self) -> TlsFiles:
        return TlsFiles(self.tls_dir) if self.tls_dir else TlsFiles.of(self.home)

    @property
    def superuser(self) -> KafkaAccess:
        return superuser(self.bootstrap, self.store, self.tls)

    @property
    def pid_file(self) -> Path:
        return self.home / "broker.pid"

    @property
    def log_file(self) -> Path:
        return self.home / "broker.log"

    def pid(self) -> int | None:
        return read_pid(self.pid_file)

    def is_running(self) -> bool:
        return self.pid() is not None

    def _write_config(self, broker_password: str) -> Path:
        config = self.home / "server.properties"
        lines = broker_properties(
            node_id=self.node_id,
            voters=self.voters or f"{self.node_id}@127.0.0.1:{self.controller_port}",
            listeners={"INTERNAL": (f"127.0.0.1:{self.port}", f"127.0.0.1:{self.port}")},
            controller=f"127.0.0.1:{self.controller_port}", broker_password=broker_password,
            replicas=self.replicas, data_dir=str(self.home / "data"), development=True,
            tls=(str(self.tls.server), str(self.tls.ca)))
        fd = os.open(config, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # it holds the broker's password
        with os.fdopen(fd, "w") as f:
            f.write("\n".join(lines) + "\n")
        return config

    def _java(self, libs: Path, *args: str, heap: str = "256m") -> list[str]:
        return [
            "java", f"-Xmx{heap}", "-XX:+UseG1GC", "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={LOG4J2}", "-cp", f"{libs}/*", *args,
        ]

    def start(self, timeout: float = 90.0, wait: bool = True) -> None:
        if self.is_running():
            if wait:
                self.wait_ready(timeout)
            return
        for port, setting in ((self.port, "ALLIANCE_LOCAL_KAFKA_PORT"),
                              (self.controller_port, "ALLIANCE_LOCAL_KAFKA_CONTROLLER_PORT")):
            if port_open(port):
                raise InfraError(
                    f"port {port} is taken by another process; stop it, move the local broker with {setting}, "
                    "or set ALLIANCE_KAFKA_BOOTSTRAP_SERVERS to use an existing broker")
        libs = fetch_jars(self.cache_dir, self.version)
        self.home = self.home.resolve()
        self.home.mkdir(parents=True, exist_ok=True)
        formatted = (self.home / "data" / "meta.properties").exists()
        if formatted and not self.store.exists():
            raise InfraError(f"the local broker in {self.home} is formatted but its credentials "
                             f"({self.store.path}) are gone: stop it and remove {self.home} to start afresh")
        users = self.store.load() if formatted else self.store.ensure(local_principals())
        if BROKER not in users:
            raise InfraError(f"the local broker in {self.home} predates the broker principal: stop it and remove "
                             f"{self.home} to start afresh")
        ensure_tls(self.tls.directory, LOCAL_HOSTS)
        config = self._write_config(users[BROKER])
        if not formatted:
            cluster_id = self.cluster_id or _kafka_uuid()
            scram = [arg for name, password in sorted(users.items())
                     for arg in ("--add-scram", f"{MECHANISM}=[name={name},password={password}]")]
            fmt = subprocess.run(  # "--cluster-id=<id>": an id may start with "-" (url-safe base64)
                self._java(libs, "kafka.tools.StorageTool", "format", "--ignore-formatted",
                           f"--cluster-id={cluster_id}", "-c", str(config), *scram),
                capture_output=True, text=True,
            )
            if fmt.returncode != 0:
                raise InfraError(f"formatting the KRaft log dir failed:\n{fmt.stdout}\n{fmt.stderr}")
        with open(self.log_file, "ab") as log:
            proc = subprocess.Popen(
                self._java(libs, "kafka.Kafka", str(config), heap=self.heap),
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
            )
        self.pid_file.write_text(str(proc.pid))
        print(f"[infra] kafka {self.version} (KRaft) node {self.node_id} starting on {self.bootstrap}, "
              f"pid {proc.pid}", flush=True)
        if wait:
            self.wait_ready(timeout)

    def wait_ready(self, timeout: float = 90.0) -> None:
        def ready() -> bool:
            if not self.is_running():
                raise InfraError(f"the Kafka broker exited during start-up:\n{tail(self.log_file)}")
            return port_open(self.port) and _live_brokers(self.superuser) > 0

        wait_until(ready, timeout, f"Kafka on {self.bootstrap}", on_fail=lambda: tail(self.log_file))
        grant_admin(self.superuser)

    def stop(self) -> None:
        stop_nodes([self])

    def kill(self) -> None:
        """kill -9 (a crash): the node's log is recovered at its next start."""
        pid = self.pid()
        if pid is not None:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            wait_until(lambda: read_pid(self.pid_file) is None, 30, f"kafka node {self.node_id} to die")
        self.pid_file.unlink(missing_ok=True)


def stop_nodes(nodes: list[LocalKafka]) -> None:
    """Stop the running ones of ``nodes`` together (:func:`infra.processes.stop_all`)."""
    stop_all([(f"kafka node {node.node_id}", node.pid_file) for node in nodes], timeout=45)


@dataclass
class LocalKafkaCluster:
    """The compose topology as local processes: ``size`` combined broker+controller nodes (KRaft quorum
    of all of them), replication ``size`` and min.insync.replicas ``size - 1`` for every topic by default.
    Node ``i`` (1-based) listens on ``port + 2(i-1)`` and ``controller_port + 2(i-1)`` (so the default 9092
    and 9093 give 9092/9093, 9094/9095, 9096/9097); state under ``home/node-<i>``; the cluster id is kept in
    ``home/cluster.id``."""

    home: Path
    cache_dir: Path
    port: int
    controller_port: int
    size: int = 3
    version: str = "4.0.2"
    heap: str = "512m"

    def __post_init__(self) -> None:
        if self.size < 1:
            raise InfraError("a cluster needs at least one node")

    @property
    def cluster_id(self) -> str:
        path = self.home / "cluster.id"
        if not path.exists():
            self.home.mkdir(parents=True, exist_ok=True)
            path.write_text(_kafka_uuid())
        return path.read_text().strip()

    @property
    def nodes(self) -> list[LocalKafka]:
        voters = ",".join(f"{i}@127.0.0.1:{self.controller_port + 2 * (i - 1)}" for i in range(1, self.size + 1))
        return [LocalKafka(home=self.home / f"node-{i}", cache_dir=self.cache_dir, port=self.port + 2 * (i - 1),
                           controller_port=self.controller_port + 2 * (i - 1), version=self.version,
                           heap=self.heap,
                           node_id=i, voters=voters, cluster_id=self.cluster_id, replicas=self.size,
                           credentials=self.store, tls_dir=self.tls.directory)
                for i in range(1, self.size + 1)]

    def node(self, node_id: int) -> LocalKafka:
        return self.nodes[node_id - 1]

    @property
    def bootstrap(self) -> str:
        return ",".join(n.bootstrap for n in self.nodes)

    @property
    def store(self) -> CredentialStore:
        return CredentialStore.of(self.home)

    @property
    def tls(self) -> TlsFiles:
        return TlsFiles.of(self.home)

    @property
    def superuser(self) -> KafkaAccess:
        return superuser(self.bootstrap, self.store, self.tls)

    def start(self, timeout: float = 120.0) -> None:
        """Start every node (a quorum forms only once a majority runs, so none is awaited alone)."""
        fetch_jars(self.cache_dir, self.version)
        for node in self.nodes:
            node.start(wait=False)
        self.wait_ready(timeout)

    def wait_ready(self, timeout: float = 120.0, brokers: int | None = None) -> None:
        """Until ``brokers`` (default: all) nodes are registered brokers of the cluster."""
        want = self.size if brokers is None else brokers

        def ready() -> bool:
            for node in self.nodes:
                if not node.is_running() and brokers is None:
                    raise InfraError(f"kafka node {node.node_id} exited during start-up:\n{tail(node.log_file)}")
            listening = sum(port_open(n.port) for n in self.nodes)  # registered is not yet accepting
            return listening >= want and _live_brokers(self.superuser) >= want

        wait_until(ready, timeout, f"{want} Kafka brokers on {self.bootstrap}",
                   on_fail=lambda: "\n".join(tail(n.log_file, 10) for n in self.nodes))
        grant_admin(self.superuser)

    def stop(self) -> None:
        """Every node at once (~6 s here). The nodes skip the controlled shutdown (``broker_properties``), so each
        stops cleanly in any order; with it, the last to be approved waited for a controller quorum that had gone
        with the others, 45 s, and was then killed (an unclean stop)."""
        stop_nodes(self.nodes)

    def is_running(self) -> bool:
        return any(n.is_running() for n in self.nodes)

    def status(self) -> str:
        return ", ".join(f"node {n.node_id} {'running' if n.is_running() else 'stopped'} ({n.bootstrap})"
                         for n in self.nodes)


def _kafka_uuid() -> str:
    """A Kafka cluster id: 16 random bytes, url-safe base64 without padding."""
    import base64

    return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")


def superuser(bootstrap: str, store: CredentialStore, tls: TlsFiles) -> KafkaAccess:
    """The local broker or cluster as ``broker``, the super user (readiness, and the admin's own ACLs)."""
    return KafkaAccess(bootstrap, ssl_cafile=str(tls.ca)).as_user(BROKER, store.password(BROKER))


def grant_admin(access: KafkaAccess) -> None:
    """Give the operators' ``admin`` its ACLs (idempotent), as the brokers' super user."""
    grant(access, admin_grants())


def _live_brokers(access: KafkaAccess) -> int:
    """Brokers registered in the cluster ``access`` answers for (0 while it has no controller or does not
    answer)."""
    from kafka.admin import KafkaAdminClient
    from kafka.errors import KafkaError

    try:
        admin = KafkaAdminClient(**access.kafka_python(), request_timeout_ms=3000, client_id="alliance-ready")
    except (KafkaError, OSError, ValueError):
        return 0
    try:
        cluster = admin.describe_cluster()
        return len(cluster.get("brokers") or []) if cluster.get("controller_id") is not None else 0
    except (KafkaError, OSError):
        return 0
    finally:
        admin.close()
