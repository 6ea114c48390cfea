"""Where the time goes: the worker's pure batch path (streams.batch: ingest, tables, rollup) run in-process
over the same events, timed and profiled."""

from __future__ import annotations

import cProfile
import pstats
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from bench.workload import Item
from core.partitioning import key_partition
from events.reference import UNIVERSITIES
from events.topics import AGG_PARTITIONS, DLQ_TOPIC, EVENT_PARTITIONS, PARTIALS_TOPIC, ingest_topic
from streams import batch as pure
from streams.domains import domains

NOW = datetime.now(UTC)


@dataclass(frozen=True)
class Hotspot:
    function: str
    calls: int
    tottime_s: float
    cumtime_s: float
    share: float  # tottime / total profiled time


class _Stores:
    """The worker's tables as dicts, and what the pure batch path writes into them (counted: the entity-state
    table's reads, every table's writes)."""

    def __init__(self) -> None:
        self.tables: dict[str, dict[str, Any]] = {t: {} for t in (pure.SEEN, pure.STATES, pure.ROLLUPS)}
        self.state_reads = 0
        self.writes: dict[str, int] = dict.fromkeys(self.tables, 0)

    def put(self, writes: pure.Writes) -> None:
        for table, _, key, value in writes.puts:
            self.tables[table][key] = value
            self.writes[table] += 1

    def read_states(self, key: str, partition: int) -> Any:  # one dict for every partition here
        self.state_reads += 1
        return self.tables[pure.STATES].get(key)

    def read_rollups(self, key: str, partition: int) -> Any:
        return self.tables[pure.ROLLUPS].get(key)


def _same(name: str) -> str:
    return name


def _consumed(writes: pure.Writes, prefix: str, partitions: int, first_offset: int) -> list[pure.Raw]:
    """The records ``writes`` sent to topics starting with ``prefix``, as the next agent reads them (the
    partition chosen like the worker's writer: murmur2 of the key)."""
    return [pure.Raw(topic, key_partition(key or b"", partitions), first_offset + i, None, key, value)
            for i, (topic, key, value, _) in enumerate(r for r in writes.records if r[0].startswith(prefix))]


STAGES = ("ingest (decode, validate, dedupe, re-encode)", "tables (decode, engine, partials, views)",
          "rollup (sums)")


def pure_path(items: Sequence[Item], batch: int = 1000, seconds: dict[str, float] | None = None,
              stores: _Stores | None = None) -> int:
    """What one worker does per event, minus Kafka and faust: the worker's own batch path
    (:mod:`streams.batch`) for the three agents, on in-memory tables. Returns the number of events accepted;
    ``seconds`` (if given) receives the time spent per stage; ``stores`` the tables (and their counts)."""
    stores = stores if stores is not None else _Stores()
    doms, recent = domains(), pure.Recent()
    university_of = {ingest_topic(u): u for u in UNIVERSITIES}
    times = seconds if seconds is not None else {}
    accepted = 0
    for start in range(0, len(items), batch):
        chunk = items[start:start + batch]
        raws = [pure.Raw(it.topic, 0, start + i, None, it.key, it.value) for i, it in enumerate(chunk)]
        t0 = time.perf_counter()
        ingested = pure.ingest(raws, university_of, stores.tables[pure.SEEN].get, NOW, _same, DLQ_TOPIC,
                               recent=recent)
        stores.put(ingested)
        t1 = time.perf_counter()
        canonical = _consumed(ingested, "alliance.events.", EVENT_PARTITIONS, start)  # (Kafka's part: untimed)
        t2 = time.perf_counter()
        tabled = pure.tables(canonical, doms, stores.read_states, NOW.isoformat(), _same, DLQ_TOPIC, recent)
        stores.put(tabled)
        t3 = time.perf_counter()
        partials = _consumed(tabled, PARTIALS_TOPIC, AGG_PARTITIONS, start)
        t4 = time.perf_counter()
        rolled = pure.rollup(partials, stores.read_rollups, _same, DLQ_TOPIC)
        stores.put(rolled)
        t5 = time.perf_counter()
        for stage, dt in zip(STAGES, (t1 - t0, t3 - t2, t5 - t4), strict=True):
            times[stage] = times.get(stage, 0.0) + dt
        accepted += sum(ingested.ingested.values())
    return accepted


def timed(items: Sequence[Item]) -> float:
    """Events/s of the pure path (no profiler attached): the three stages' time, without the harness's
    own work between them (choosing the partition of each record the next stage reads)."""
    seconds: dict[str, float] = {}
    pure_path(items, seconds=seconds)
    return len(items) / sum(seconds.values())


def table_operations(items: Sequence[Item]) -> dict[str, float]:
    """Table operations per accepted event of the pure path: a count, not a time, so it does not drift with the
    machine (each one is a RocksDB read or a changelog record and a RocksDB write in the worker)."""
    stores = _Stores()
    accepted = pure_path(items, stores=stores) or 1
    return {"entity-state reads": stores.state_reads / accepted,
            **{f"{table} writes": n / accepted for table, n in stores.writes.items()}}


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
    """Seconds per stage of the pure path (the three agents' batch functions)."""
    seconds: dict[str, float] = {}
    pure_path(items, seconds=seconds)
    return seconds


def format_hotspots(rows: Sequence[Hotspot]) -> str:
    lines = [f"{'tottime':>8} {'cumtime':>8} {'share':>6} {'calls':>9}  function"]
    for h in rows:
        lines.append(f"{h.tottime_s:8.3f} {h.cumtime_s:8.3f} {h.share:6.1%} {h.calls:9d}  {h.function}")
    return "\n".join(lines)
