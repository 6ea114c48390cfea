"""An agent's inbox: the records of its topics, handed over by the consumer's fetch loop in whole fetches.

faust delivers every record through its per-record machinery: the conductor decodes it into an event, puts it
on the agent's channel queue, the agent's stream takes it off again, runs its processors, calls four sensors
and acknowledges it, with several asyncio tasks per record and stage (about 150 µs per record and stage on
this machine, more than the alliance code itself; docs/benchmarks.md). The worker's agents read whole batches
and write them at once, so none of that is needed: :class:`streams.consumer.GaplessConsumer` appends each
fetched record of an agent's topics to its :class:`Inbox` (no event, no task), and the agent's loop
(:func:`streams.app.serve_inbox`) takes up to ``size`` records at a time, processes them, and only then
acknowledges them to the consumer, which commits only acknowledged runs (streams.consumer).

A rebalance clears every inbox (faust's flow control clears the queues it manages when it suspends the flow
for a rebalance): the cleared records were never acknowledged, and after the rebalance faust seeks every
assigned partition back to its committed offset, so they are read again by whichever worker then owns them.
No I/O and no faust here; the consumer and the agent loop do both.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from typing import Any

# bytes of keys and values an inbox holds at most (beyond that the fetch loop waits for the agent): a university
# sending records of a megabyte (refused, but fetched first) cannot make a worker buffer ``capacity`` of them
MAX_BYTES = 32 * 1024 * 1024


def size_of(message: Any) -> int:
    return len(message.key or b"") + len(message.value or b"")


class Inbox:
    """The fetched, not yet taken records of one agent's topics (at most ``capacity`` records and ``max_bytes``
    bytes of keys and values, whichever comes first; one record always fits)."""

    def __init__(self, name: str, topics: Iterable[str], *, size: int, within: float, capacity: int,
                 max_bytes: int = MAX_BYTES) -> None:
        if size < 1 or capacity < size or within < 0 or max_bytes < 1:
            raise ValueError(f"inbox {name}: need 1 <= size <= capacity, within >= 0 and max_bytes >= 1 "
                             f"(size={size}, capacity={capacity}, within={within}, max_bytes={max_bytes})")
        self.name = name
        self.topics = frozenset(topics)
        self.size = size  # records per batch at most
        self.within = within  # seconds a batch waits, from its first record, to fill up
        self.capacity = capacity
        self.max_bytes = max_bytes
        self._items: list[Any] = []
        self._bytes = 0
        self._arrived = asyncio.Event()  # set while the inbox holds records
        self._filled = asyncio.Event()  # set while it holds a whole batch
        self._space = asyncio.Event()  # set while it is below capacity
        self._space.set()
        self.cleared = 0  # records dropped by clear() (read again after the rebalance), per inbox

    def __len__(self) -> int:
        return len(self._items)

    @property
    def bytes(self) -> int:
        return self._bytes

    def full(self) -> bool:
        return len(self._items) >= self.capacity or self._bytes >= self.max_bytes

    def put(self, message: Any) -> None:
        """Append one fetched record (the consumer checks :meth:`full` first)."""
        self._items.append(message)
        self._bytes += size_of(message)
        self._settle()

    def put_many(self, messages: Sequence[Any], start: int = 0) -> int:
        """Append ``messages[start:]`` one after another until the inbox is full (what :meth:`put` does for each
        while :meth:`full` is false; the consumer checks it first, so one always fits). Returns the index after
        the last one appended."""
        items = self._items
        end = min(len(messages), start + self.capacity - len(items))
        size, limit = self._bytes, self.max_bytes
        i = start
        while i < end and size < limit:
            message = messages[i]
            size += len(message.key or b"") + len(message.value or b"")  # (size_of, inlined: once per record)
            i += 1
        items.extend(messages[start:i])
        self._bytes = size
        self._settle()
        return i

    async def wait_space(self) -> None:
        await self._space.wait()

    async def take(self) -> list[Any]:
        """The next batch: up to ``size`` records, waiting for the first one and then at most ``within``
        seconds for a whole batch. Empty when a rebalance cleared the inbox meanwhile."""
        while not self._items:
            await self._arrived.wait()
        if len(self._items) < self.size and self.within > 0:
            try:
                await asyncio.wait_for(self._filled.wait(), self.within)
            except TimeoutError:
                pass
        items = self._items
        batch = items[:self.size]
        del items[:self.size]
        self._bytes = self._bytes - sum(map(size_of, batch)) if items else 0
        self._settle()
        return batch

    def clear(self) -> None:
        """Drop every record not taken yet (faust calls this on its managed queues in a rebalance)."""
        self.cleared += len(self._items)
        self._items.clear()
        self._bytes = 0
        self._settle()

    def _settle(self) -> None:
        """The three events from what the inbox holds now (every change of its records ends here)."""
        n = len(self._items)
        for event, on in ((self._arrived, n > 0), (self._filled, n >= self.size), (self._space, not self.full())):
            if on:
                event.set()
            else:
                event.clear()
