"""The local stack: which services to start for a given Settings object."""

from __future__ import annotations

from dataclasses import dataclass

from infra.kafka_local import LocalKafka
from infra.postgres_local import LocalPostgres
from infra.settings import LOCAL_KAFKA_PORT, LOCAL_POSTGRES_PORT, Settings


@dataclass
class LocalStack:
    """The embedded services that ``settings`` asks for (none when both URLs point elsewhere)."""

    settings: Settings

    @property
    def kafka(self) -> LocalKafka | None:
        if not self.settings.uses_local_kafka:
            return None
        return LocalKafka(
            home=self.settings.local_dir / "kafka", cache_dir=self.settings.local_dir,
            port=LOCAL_KAFKA_PORT, controller_port=LOCAL_KAFKA_PORT + 1, version=self.settings.kafka_version,
        )

    @property
    def postgres(self) -> LocalPostgres | None:
        if not self.settings.uses_local_postgres:
            return None
        return LocalPostgres(home=self.settings.local_dir / "postgres", port=LOCAL_POSTGRES_PORT)

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

    def status(self) -> dict[str, str]:
        k, p = self.kafka, self.postgres
        return {
            "kafka": f"external {self.settings.bootstrap}" if k is None
            else f"{'running pid ' + str(k.pid()) if k.is_running() else 'stopped'} ({k.bootstrap})",
            "postgres": "external" if p is None
            else f"{'running pid ' + str(p.pid()) if p.is_running() else 'stopped'} (127.0.0.1:{p.port})",
        }
