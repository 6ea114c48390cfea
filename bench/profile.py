"""Where the time goes: the worker's pure path (decode + ingest.classify + re-encode + decode +
engine.process + the JSON the agents publish) run in-process over the same events, timed and profiled."""

from __future__ import annotations

import cProfile
import json
import pstats
import time
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from bench.workload import Item
from events.codec import decode, encode
from events.topics import EVENT_PARTITIONS
from streams import engine
from streams.domains import domains
from streams.ingest import Accepted, Rejected, classify, seen_key

NOW = datetime.now(UTC)


def _classify(it: Item, offset: int, seen: dict[str, Any]) -> Accepted | Rejected:
    """The ingest decision for one bench item, remembering accepted events like the ingest-seen table."""
    university = it.topic.removeprefix("alliance.ingest.")
    result = classify(it.value, university, seen.get, partition=0, offset=offset, received_at=NOW)
    if isinstance(result, Accepted):
        seen[seen_key(university, str(result.event.event_id))] = result.seen.to_value()
    return result


@dataclass(frozen=True)
class Hotspot:
    function: str
    calls: int
    tottime_s: float
    cumtime_s: float
    share: float  # tottime / total profiled time


def pure_path(items: Sequence[Item], batch: int = 1000) -> int:
    """What one worker does per event, minus Kafka and Faust. Returns the number accepted."""
    seen: dict[str, Any] = {}
    states: dict[str, Any] = {}
    partials: dict[str, Any] = {}
    applied: set[str] = set()
    doms = domains()
    accepted = 0
    for start in range(0, len(items), batch):
        chunk = items[start:start + batch]
        canonical: list[tuple[int, bytes]] = []
        for i, it in enumerate(chunk, start=start):  # ingest agent
            result = _classify(it, i, seen)
            if isinstance(result, Accepted):
                canonical.append((zlib.crc32(result.event.key) % EVENT_PARTITIONS, encode(result.event)))
        accepted += len(canonical)
        evs = [(p, decode(raw)) for p, raw in canonical]  # tables agent
        out = engine.process(evs, doms, states.get, partials.get, applied.__contains__)
        applied.update(out.applied_ids)
        for key, (_, state) in out.states.items():
            states[key] = state
        for pk, values in out.partials.items():
            partials[engine.partial_key(pk)] = values
            json.dumps({"aggregate": pk[0], "key": pk[1], "partial": values}, sort_keys=True)
        for aggregate, key, value in out.views:
            json.dumps({"aggregate": aggregate, "key": {"id": key}, "value": value}, sort_keys=True)
    return accepted


def timed(items: Sequence[Item]) -> float:
    """Events/s of the pure path (no profiler attached)."""
    t0 = time.perf_counter()
    pure_path(items)
    return len(items) / (time.perf_counter() - t0)


def profile(items: Sequence[Item], top: int = 15) -> list[Hotspot]:
    prof = cProfile.Profile()
    prof.enable()
    pure_path(items)
    prof.disable()
    return hotspots(pstats.Stats(prof), top)


def _short(filename: str) -> str:
    for marker in ("site-packages/", "/work/main/", "lib/python3.11/"):
        if marker in filename:
            return filename.split(marker, 1)[-1]
    return filename


def hotspots(stats: pstats.Stats, top: int = 15) -> list[Hotspot]:
    """The ``top`` functions by own time (tottime)."""
    raw: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
    total = sum(v[2] for v in raw.values()) or 1.0
    rows = []
    for (filename, line, name), (_, calls, tottime, cumtime, _) in raw.items():
        rows.append(Hotspot(f"{_short(filename)}:{line}({name})", calls, tottime, cumtime, tottime / total))
    rows.sort(key=lambda h: h.tottime_s, reverse=True)
    return rows[:top]


AREAS = (  # (label, path fragment) — first match wins
    ("streams/ (alliance handlers)", "/streams/"), ("events/ (codec, models)", "/events/"),
    ("pydantic", "pydantic"), ("faust", "/faust/"), ("mode", "/mode/"), ("aiokafka", "/aiokafka/"),
    ("kafka-python", "/kafka/"), ("prometheus_client", "prometheus_client"), ("json", "/json/"),
    ("asyncio", "/asyncio/"), ("aiohttp", "aiohttp"), ("infra/ (metrics)", "/infra/"),
)


def area_of(filename: str) -> str:
    if filename == "~":
        return "builtins (C)"
    for label, fragment in AREAS:
        if fragment in filename:
            return label
    return "other"


def own_time_by_area(stats: pstats.Stats) -> dict[str, float]:
    """Own time (tottime) summed per library/package, largest first."""
    raw: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
    out: dict[str, float] = {}
    for (filename, _, _), (_, _, tottime, _, _) in raw.items():
        area = area_of(filename)
        out[area] = out.get(area, 0.0) + tottime
    return dict(sorted(out.items(), key=lambda kv: kv[1], reverse=True))


def by_area(items: Sequence[Item]) -> dict[str, float]:
    """Seconds per stage of the pure path: decode+classify, encode, decode again, engine, JSON."""
    seen: dict[str, Any] = {}
    states: dict[str, Any] = {}
    partials: dict[str, Any] = {}
    applied: set[str] = set()
    doms = domains()
    t = {"ingest decode+validate (classify)": 0.0, "re-encode for family topic": 0.0,
         "tables decode+validate": 0.0, "engine.process": 0.0, "aggregate JSON": 0.0}
    for start in range(0, len(items), 1000):
        chunk = items[start:start + 1000]
        c0 = time.perf_counter()
        acc = []
        for i, it in enumerate(chunk, start=start):
            r = _classify(it, i, seen)
            if isinstance(r, Accepted):
                acc.append(r.event)
        c1 = time.perf_counter()
        raws = [(zlib.crc32(e.key) % EVENT_PARTITIONS, encode(e)) for e in acc]
        c2 = time.perf_counter()
        evs = [(p, decode(raw)) for p, raw in raws]
        c3 = time.perf_counter()
        out = engine.process(evs, doms, states.get, partials.get, applied.__contains__)
        applied.update(out.applied_ids)
        for key, (_, state) in out.states.items():
            states[key] = state
        for pk, values in out.partials.items():
            partials[engine.partial_key(pk)] = values
        c4 = time.perf_counter()
        for pk, values in out.partials.items():
            json.dumps({"aggregate": pk[0], "key": pk[1], "partial": values}, sort_keys=True)
        for aggregate, key, value in out.views:
            json.dumps({"aggregate": aggregate, "key": {"id": key}, "value": value}, sort_keys=True)
        c5 = time.perf_counter()
        for name, dt in zip(t, (c1 - c0, c2 - c1, c3 - c2, c4 - c3, c5 - c4), strict=True):
            t[name] += dt
    return t


def format_hotspots(rows: Sequence[Hotspot]) -> str:
    lines = [f"{'tottime':>8} {'cumtime':>8} {'share':>6} {'calls':>9}  function"]
    for h in rows:
        lines.append(f"{h.tottime_s:8.3f} {h.cumtime_s:8.3f} {h.share:6.1%} {h.calls:9d}  {h.function}")
    return "\n".join(lines)
