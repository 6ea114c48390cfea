"""The live fair board's I/O: one Kafka consumer of ``alliance.agg.fairs`` per portal API process (as the
``portal`` principal, from the topic's beginning: the compacted topic holds every fair's newest record and
the recent updates), the boards subscribed to each fair, and the host university's 1-1-3-1 progress from
the read model (``portal.service_guarantee``). What is kept and sent is :mod:`consumers.board`."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

import asyncpg
from aiokafka import AIOKafkaConsumer

from consumers.board import Boards
from core.kafka_access import KafkaAccess

log = logging.getLogger(__name__)
HOST_TTL_S = 2.0  # the host's progress is read at most this often per university


class FairFeed:
    def __init__(self, kafka: KafkaAccess, topic: str) -> None:
        self.kafka, self.topic = kafka, topic
        self.boards = Boards()
        self._subscribers: dict[str, set[asyncio.Queue[None]]] = {}
        self._task: asyncio.Task[None] | None = None
        self._hosts: dict[str, tuple[float, dict[str, Any] | None]] = {}
        self.ready = False  # the topic's partitions are assigned (a board then shows what exists)

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="fair-feed")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:  # a lost broker is retried; the boards keep what they have meanwhile
            # no group: every partition, from the beginning (the compacted topic: each fair's newest record)
            consumer = AIOKafkaConsumer(self.topic, **self.kafka.aiokafka(), group_id=None, enable_auto_commit=False,
                                        auto_offset_reset="earliest", client_id="portal-fair-board")
            try:
                await consumer.start()
                while True:
                    batch = await consumer.getmany(timeout_ms=500, max_records=1000)
                    if not self.ready and consumer.assignment():
                        self.ready = True
                    changed = set()
                    for records in batch.values():
                        for r in records:
                            fair = self.boards.apply(r.key, r.value)
                            if fair is not None:
                                changed.add(fair)
                    for fair in changed:
                        for queue in self._subscribers.get(fair, ()):
                            if queue.empty():  # a slow board gets the newest state, not every step
                                queue.put_nowait(None)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # any Kafka error: log, wait, reconnect
                log.warning("fair board feed: %s: %s; retrying in 5 s", type(exc).__name__, exc)
                await asyncio.sleep(5)
            finally:
                await consumer.stop()

    def subscribe(self, fair_id: str) -> asyncio.Queue[None]:
        queue: asyncio.Queue[None] = asyncio.Queue(maxsize=1)
        self._subscribers.setdefault(fair_id, set()).add(queue)
        return queue

    def unsubscribe(self, fair_id: str, queue: asyncio.Queue[None]) -> None:
        self._subscribers.get(fair_id, set()).discard(queue)

    async def host_progress(self, pool: asyncpg.Pool, university: str | None) -> dict[str, Any] | None:
        """The host university's 1-1-3-1 counts (read model, cached ``HOST_TTL_S``); None if unknown."""
        if not university:
            return None
        cached = self._hosts.get(university)
        if cached is not None and time.monotonic() - cached[0] < HOST_TTL_S:
            return cached[1]
        async with pool.acquire(timeout=10) as conn:
            row = await conn.fetchrow("SELECT university, seekers, briefed, counselled, three_recommendations, "
                                      "trained, fully_served FROM portal.service_guarantee WHERE university = $1",
                                      university)
        progress = dict(row) if row is not None else {"university": university, "seekers": 0}
        self._hosts[university] = (time.monotonic(), progress)
        return progress
