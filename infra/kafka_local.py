"""A REAL single-node Apache Kafka broker in KRaft mode (no ZooKeeper), for development and tests.

The broker's jars (org.apache.kafka:kafka_2.13 plus a log4j2 binding) are resolved from Maven Central
with Maven into ``<local_dir>/kafka-libs-<version>`` once, then the broker is formatted and started
with ``java``. Readiness is an admin ``describe_cluster`` call, not a sleep.
"""

from __future__ import annotations

import shutil
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path

from infra.errors import InfraError
from infra.processes import port_open, read_pid, tail, terminate, wait_until

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


@dataclass
class LocalKafka:
    """One broker+controller process; state under ``home``, jars under ``cache_dir``."""

    home: Path
    cache_dir: Path
    port: int = 9092
    controller_port: int = 9093
    version: str = "4.0.2"
    heap: str = "768m"

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

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

    def _write_config(self) -> Path:
        data = self.home / "data"
        config = self.home / "server.properties"
        config.write_text(
            "\n".join(
                [
                    "process.roles=broker,controller",
                    "node.id=1",
                    f"controller.quorum.voters=1@127.0.0.1:{self.controller_port}",
                    f"listeners=PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.controller_port}",
                    f"advertised.listeners=PLAINTEXT://127.0.0.1:{self.port}",
                    "controller.listener.names=CONTROLLER",
                    "inter.broker.listener.name=PLAINTEXT",
                    "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
                    f"log.dirs={data}",
                    "num.partitions=1",
                    "auto.create.topics.enable=false",
                    "offsets.topic.replication.factor=1",
                    "offsets.topic.num.partitions=10",
                    "transaction.state.log.replication.factor=1",
                    "transaction.state.log.min.isr=1",
                    "transaction.state.log.num.partitions=4",
                    "share.coordinator.state.topic.replication.factor=1",
                    "share.coordinator.state.topic.min.isr=1",
                    "group.initial.rebalance.delay.ms=0",
                    "log.cleaner.backoff.ms=2000",
                    "",
                ]
            )
        )
        return config

    def _java(self, libs: Path, *args: str, heap: str = "256m") -> list[str]:
        return [
            "java", f"-Xmx{heap}", "-XX:+UseG1GC", "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={LOG4J2}", "-cp", f"{libs}/*", *args,
        ]

    def start(self, timeout: float = 90.0) -> None:
        if self.is_running():
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
        config = self._write_config()
        if not (self.home / "data" / "meta.properties").exists():
            cluster_id = _kafka_uuid()
            fmt = subprocess.run(  # "--cluster-id=<id>": an id may start with "-" (url-safe base64)
                self._java(libs, "kafka.tools.StorageTool", "format", "--ignore-formatted",
                           f"--cluster-id={cluster_id}", "-c", str(config)),
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
        print(f"[infra] kafka {self.version} (KRaft) starting on {self.bootstrap}, pid {proc.pid}", flush=True)
        self.wait_ready(timeout)

    def wait_ready(self, timeout: float = 90.0) -> None:
        def ready() -> bool:
            if not self.is_running():
                raise InfraError(f"the Kafka broker exited during start-up:\n{tail(self.log_file)}")
            return port_open(self.port) and _admin_ready(self.bootstrap)

        wait_until(ready, timeout, f"Kafka on {self.bootstrap}", on_fail=lambda: tail(self.log_file))

    def stop(self) -> None:
        pid = self.pid()
        if pid is not None:
            print(f"[infra] stopping kafka (pid {pid})", flush=True)
            terminate(pid, timeout=45)
        self.pid_file.unlink(missing_ok=True)


def _kafka_uuid() -> str:
    """A Kafka cluster id: 16 random bytes, url-safe base64 without padding."""
    import base64

    return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")


def _admin_ready(bootstrap: str) -> bool:
    from kafka.admin import KafkaAdminClient
    from kafka.errors import KafkaError

    try:
        admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=3000, client_id="alliance-ready")
    except (KafkaError, OSError, ValueError):
        return False
    try:
        cluster = admin.describe_cluster()
        return bool(cluster.get("brokers")) and cluster.get("controller_id") is not None
    except (KafkaError, OSError):
        return False
    finally:
        admin.close()
