"""The benchmark's input: the valid records of a simulated alliance day (``events.simulator``, the one
event generator of the project), pre-serialised for the ingest topics."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date

from events.base import Event
from events.codec import encode
from events.simulator import DEFAULT_DAY, alliance_day
from events.topics import ingest_topic


@dataclass(frozen=True)
class Item:
    """One event as sent: ingest topic (without suffix), key and value bytes, and the model."""

    topic: str
    key: bytes
    value: bytes
    event: Event


def load_items(n: int, seed: int = 7, day: date = DEFAULT_DAY) -> list[Item]:
    """The first ``n`` valid records of a simulated alliance day (no duplicates, invalid or spoofed
    records), as the universities send them."""
    scale = max(n / 20_000, 0.02)
    for _ in range(6):
        records = alliance_day(seed=seed, scale=scale, day=day, duplicate_rate=0.0, invalid_rate=0.0,
                               spoofed_rate=0.0)
        valid = [Item(r.topic, r.key, r.value, r.event) for r in records if r.kind == "valid" and r.event is not None]
        if len(valid) >= n:
            return valid[:n]
        scale *= 1.2 * n / max(len(valid), 1)
    raise RuntimeError(f"the simulator made fewer than {n} valid events")


def items(evs: list[Event]) -> list[Item]:
    return [Item(ingest_topic(e.source), e.key, encode(e), e) for e in evs]


def by_topic(its: list[Item]) -> Iterator[tuple[str, list[Item]]]:
    groups: dict[str, list[Item]] = {}
    for it in its:
        groups.setdefault(it.topic, []).append(it)
    yield from groups.items()
