"""A worker and the projector on their own topics (a suffix) and database, for end-to-end tests that need
both and a crash in between: started, killed (-9) and started again by the project's own commands
(infra.processes)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import asyncpg
from pydantic import SecretStr

from consumers.migrate import migrate
from core.kafka_access import ADMIN
from core.settings import Settings
from core.topic_admin import provision
from events.simulator import Record
from events.simulator.publish import publish
from events.topics import AGGREGATES, DLQ_TOPIC, agg_topic
from infra.processes import Service, free_ports, projector, worker
from infra.verify import Aggregates, TopicState, exact_everywhere


@dataclass
class Stack:
    settings: Settings  # the test session's
    cfg: Settings  # the stack's: its topic suffix, app id and database
    suffix: str
    app_id: str
    log_dir: Path
    worker: Service
    projector: Service
    conn: asyncpg.Connection
    env: dict[str, str]  # for the tools run as commands (the stack's Kafka credentials)

    @property
    def agg_topics(self) -> list[str]:
        return [agg_topic(n) + self.suffix for n in AGGREGATES]

    @property
    def dlq(self) -> str:
        return DLQ_TOPIC + self.suffix

    def alive(self) -> bool:
        return self.worker.alive() and self.projector.alive()

    async def start(self) -> None:
        self.worker.start(self.cfg)
        self.projector.start(self.cfg)
        await asyncio.to_thread(self.worker.wait_ready, 120)
        await asyncio.to_thread(self.projector.wait_ready, 60)

    async def crash_and_restart(self) -> None:
        """kill -9 both, wait for them to die, start them again (they replay what they had not committed)."""
        for service in (self.worker, self.projector):
            assert service.proc is not None
            service.proc.kill()
            await asyncio.to_thread(service.proc.wait)
        await self.start()

    def publish(self, records: list[Record]) -> None:
        assert publish([replace(r, topic=r.topic + self.suffix) for r in records], self.settings.kafka) == len(records)

    async def exact_everywhere(self, expected: Aggregates, group: str, extra_topics: list[str] | None = None,
                               check: Any = lambda _: True) -> TopicState:
        """Every aggregate ``expected`` on its topic, in agg_snapshot and in the typed tables (infra.verify)."""
        return await exact_everywhere(self.settings.kafka(ADMIN), self.conn,
                                      [*self.agg_topics, self.dlq, *(extra_topics or [])], self.suffix, expected,
                                      f"check-{group}-{self.app_id}", self.alive, check)


@asynccontextmanager
async def worker_and_projector(settings: Settings, pg_dsn: str, unique: str, name: str) -> AsyncIterator[Stack]:
    suffix, app_id = f".{name[:1]}{unique}", f"{name}-{unique}"
    provision(settings.kafka(ADMIN), suffix=suffix, app_id=app_id)
    await migrate(pg_dsn)
    cfg = settings.model_copy(update={"topic_suffix": suffix, "app_id": app_id, "database_url": SecretStr(pg_dsn)})
    log_dir = settings.local_dir / f"{name}-{unique}"
    log_dir.mkdir(parents=True, exist_ok=True)
    worker_port, projector_port = free_ports(2)
    stack = Stack(settings, cfg, suffix, app_id, log_dir, worker(0, cfg.model_copy(update={"web_port": worker_port}),
                                                                 log_dir),
                  projector(cfg, log_dir, projector_port), await asyncpg.connect(pg_dsn),
                  {**os.environ, **cfg.kafka_env()})
    try:
        await stack.start()
        yield stack
    finally:
        await stack.conn.close()
        stack.projector.stop()
        stack.worker.stop()
