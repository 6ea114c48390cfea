"""Batches of events from a faust stream, acknowledged only once they were processed.

faust's ``Stream.take_events`` acknowledges a batch in the ``finally`` of its ``yield``: when the agent's
code fails on a batch, or is cancelled in the middle of it (a graceful stop during a flush), the generator
is closed and *still* acknowledges every event of the batch, and faust then commits offsets past events that
were never applied (faust 0.15.3 ``faust/streams.py``, ``take_events``: ``yield list(events)`` inside
``try``/``finally: ... await self.ack(event)``). This is the same buffering, with one change: the events
of a batch are acknowledged when the agent asks for the next batch, i.e. after it processed this one, and
never when the generator is closed at the ``yield``. An agent that fails on a batch must then stop the worker
(``streams.app``): the unacknowledged events are never committed, and a restart replays them.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from typing import Any, cast

from faust.types import EventT
from mode import want_seconds
from mode.utils.aiter import aiter
from mode.utils.futures import notify


async def take_events(stream: Any, max_: int, within: float) -> AsyncIterator[Sequence[EventT[Any]]]:
    """Up to ``max_`` events, or what arrived within ``within`` seconds of the first one; each batch is
    acknowledged when the next one is requested (see the module docstring)."""
    buffer: list[Any] = []
    events: list[EventT[Any]] = []
    buffer_full = asyncio.Event()
    buffer_consumed = asyncio.Event()
    timeout = want_seconds(within) if within else None
    stream_enable_acks: bool = stream.enable_acks
    buffer_consuming: asyncio.Future[None] | None = None

    async def add_to_buffer(value: Any) -> Any:
        nonlocal buffer_consuming
        try:
            if buffer_consuming is not None:  # the agent is working on the previous batch
                try:
                    await buffer_consuming
                finally:
                    buffer_consuming = None
            buffer.append(value)
            event = stream.current_event
            if event is None:
                raise RuntimeError("take buffer found current_event is None")
            events.append(event)
            if len(buffer) >= max_:
                buffer_full.set()
                buffer_consumed.clear()
                await stream.wait(buffer_consumed)  # never more than max_ events in a batch
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            stream.log.exception("Error adding to take buffer: %r", exc)
            await stream.crash(exc)
        return value

    stream.enable_acks = False  # this generator acknowledges, after the agent processed a batch
    stream.add_processor(add_to_buffer)
    stream._enable_passive(cast(Any, aiter(stream.channel)))
    try:
        while not stream.should_stop:
            await stream.wait_for_stopped(buffer_full, timeout=timeout)
            if not buffer:
                continue
            batch = list(events)
            buffer_consuming = asyncio.get_running_loop().create_future()
            try:
                yield batch  # GeneratorExit here (the agent failed or was cancelled): nothing is acknowledged
                for event in batch:
                    await stream.ack(event)
            finally:
                buffer.clear()
                events.clear()
                notify(buffer_consuming)
                buffer_full.clear()
                buffer_consumed.set()
    finally:
        stream.enable_acks = stream_enable_acks
        stream._processors.remove(add_to_buffer)
