"""The local stack: which services to start for a given Settings object."""

from __future__ import annotations

from dataclasses import dataclass

from core.settings import Settings
from infra.kafka_local import LocalKafka, LocalKafkaCluster
from infra.postgres_local import LocalPostgres
from infra.processes import stop_all


@dataclass
class LocalStack:
    """The embedded services that ``settings`` asks for (none when both URLs point elsewhere)."""

    settings: Settings

    @property
    def kafka(self) -> LocalKafka | LocalKafkaCluster | None:
        if not self.settings.uses_local_kafka:
            return None
        if self.settings.local_brokers > 1:  # the compose topology as local processes
            return LocalKafkaCluster(
                home=self.settings.local_kafka_home,
                cache_dir=self.settings.local_dir, port=self.settings.local_kafka_port,
                controller_port=self.settings.local_kafka_controller_port, size=self.settings.local_brokers,
                version=self.settings.kafka_version)
        return LocalKafka(
            home=self.settings.local_kafka_home, cache_dir=self.settings.local_dir,
            port=self.settings.local_kafka_port, controller_port=self.settings.local_kafka_controller_port,
            version=self.settings.kafka_version,
        )

    @property
    def postgres(self) -> LocalPostgres | None:
        if not self.settings.uses_local_postgres:
            return None
        return LocalPostgres(home=self.settings.local_postgres_home, port=self.settings.local_postgres_port,
                             database=self.settings.local_postgres_database)

    def up(self) -> None:
        if (k := self.kafka) is not None:
            k.start()
        if (p := self.postgres) is not None:
            p.start()

    def down(self) -> None:
        if (p := self.postgres) is not None:
            p.stop()
        if (k := self.kafka) is not None:
            k.stop()
        # cluster nodes left by an interrupted chaos run: stopped together, like a cluster's
        left = sorted(self.settings.local_dir.glob("kafka-cluster-*/node-*/broker.pid"))
        stop_all([(f"kafka {pid_file.parent.name}", pid_file) for pid_file in left], timeout=45)

    def down_kafka(self) -> None:
        if (k := self.kafka) is not None:
            k.stop()

    def status(self) -> dict[str, str]:
        k, p = self.kafka, self.postgres
        return {
            "kafka": f"external {self.settings.bootstrap}" if k is None
            else k.status() if isinstance(k, LocalKafkaCluster)
            else f"{'running pid ' + str(k.pid()) if k.is_running() else 'stopped'} ({k.bootstrap})",
            "postgres": "external" if p is None
            else f"{'running pid ' + str(p.pid()) if p.is_running() else 'stopped'} (127.0.0.1:{p.port})",
        }
