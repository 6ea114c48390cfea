"""The dead-letter topic for operators and universities (pure part; Kafka I/O in events.tools.dlq_kafka).

``python -m events.tools dlq summary``: what the DLQ holds, by university and reason, with the first and the
last time; ``dlq export --university U --out FILE``: one university's rejects as JSONL it can fix, one
object per line: ``{"dlq": "<partition>:<offset>", "reason", "detail", "event_id", "record"}`` where
``record`` is the refused record (parsed JSON when it was JSON, else its text); ``dlq redrive --university U
FILE``: the fixed ``record`` of each line is validated like any publish and sent to the university's ingest
topic with the header ``x-alliance-redrive-of: <partition>:<offset>``; a DLQ record already redriven (its
coordinates on the ingest topic) is skipped, so nothing is redriven twice.

Records refused as ``personal_data`` keep no value in the DLQ (docs/security.md): they cannot be exported
and are counted apart; the university fixes them at the source and publishes again.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from events import wire


@dataclass(frozen=True)
class Reject:
    """One record of the DLQ."""

    partition: int
    offset: int
    timestamp_ms: int
    university: str
    reason: str
    detail: str
    event_id: str | None
    source: str  # "<topic>[<partition>]@<offset>" of the refused record
    value: bytes | None

    @property
    def coordinates(self) -> str:
        return f"{self.partition}:{self.offset}"


def parse(partition: int, offset: int, timestamp_ms: int, value: bytes | None,
          headers: Sequence[tuple[str, bytes]]) -> Reject:
    h = {k: v.decode(errors="replace") for k, v in headers}
    return Reject(partition, offset, timestamp_ms, h.get(wire.DLQ_UNIVERSITY, "?"), h.get(wire.DLQ_REASON, "?"),
                  h.get(wire.DLQ_DETAIL, ""), h.get(wire.DLQ_EVENT_ID),
                  f"{h.get(wire.DLQ_SOURCE_TOPIC, '?')}[{h.get(wire.DLQ_SOURCE_PARTITION, '?')}]"
                  f"@{h.get(wire.DLQ_SOURCE_OFFSET, '?')}", value)


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="seconds")


def summary(rejects: Iterable[Reject]) -> list[dict[str, Any]]:
    """Rows (university, reason, records, first, last), sorted by university then count."""
    groups: dict[tuple[str, str], list[int]] = {}
    for r in rejects:
        g = groups.setdefault((r.university, r.reason), [0, r.timestamp_ms, r.timestamp_ms])
        g[0] += 1
        g[1], g[2] = min(g[1], r.timestamp_ms), max(g[2], r.timestamp_ms)
    rows = [{"university": u, "reason": reason, "records": n, "first": _iso(first), "last": _iso(last)}
            for (u, reason), (n, first, last) in groups.items()]
    return sorted(rows, key=lambda row: (row["university"], -row["records"], row["reason"]))


def format_table(rows: list[dict[str, Any]]) -> str:
    head = ["university", "reason", "records", "first", "last"]
    cells = [head] + [[str(row[h]) for h in head] for row in rows]
    widths = [max(len(c[i]) for c in cells) for i in range(len(head))]
    total = sum(row["records"] for row in rows)
    return "\n".join("  ".join(c[i].ljust(widths[i]) for i in range(len(head))) for c in cells) + \
        f"\n{total} record(s)"


def export_line(r: Reject) -> dict[str, Any] | None:
    """The exported line of a reject (None: its value was not kept, personal data)."""
    if r.value is None:
        return None
    text = r.value.decode("utf-8", errors="replace")
    try:
        record: Any = json.loads(text)
    except ValueError:
        record = text
    return {"dlq": r.coordinates, "reason": r.reason, "detail": r.detail, "event_id": r.event_id,
            "source": r.source, "record": record}


@dataclass
class RedrivePlan:
    send: list[tuple[int, str, Any]]  # (line number, dlq coordinates, record)
    already: list[int]  # line numbers whose DLQ record was redriven before
    bad: list[tuple[int, str]]  # (line number, why the line cannot be redriven)


def plan_redrive(lines: Iterable[tuple[int, str]], redriven: set[str]) -> RedrivePlan:
    """What to send of an exported (and fixed) file; ``redriven`` holds the coordinates already redriven."""
    plan = RedrivePlan([], [], [])
    seen: set[str] = set()
    for number, line in lines:
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except ValueError as exc:
            plan.bad.append((number, f"not JSON: {exc}"))
            continue
        if not isinstance(obj, dict) or not isinstance(obj.get("dlq"), str) or "record" not in obj:
            plan.bad.append((number, "not a line of `dlq export` (needs \"dlq\" and \"record\")"))
            continue
        coords = obj["dlq"]
        if coords in redriven or coords in seen:
            plan.already.append(number)
            continue
        seen.add(coords)
        plan.send.append((number, coords, obj["record"]))
    return plan


@dataclass
class Census:
    """The DLQ as it stands, for its metrics (``dlq watch``): per partition the (offset, reason, university,
    timestamp) of every record still on the topic; retention deletes from the front (``forget_before``)."""

    partitions: dict[int, deque[tuple[int, str, str, int]]] = field(default_factory=dict)

    def add(self, r: Reject) -> None:
        self.partitions.setdefault(r.partition, deque()).append((r.offset, r.reason, r.university, r.timestamp_ms))

    def forget_before(self, partition: int, start: int) -> int:
        """Drop what retention deleted (offsets below the partition's first); how many records."""
        records, dropped = self.partitions.get(partition, deque()), 0
        while records and records[0][0] < start:
            records.popleft()
            dropped += 1
        return dropped

    def figures(self, now_ms: int) -> tuple[dict[tuple[str, str], int], dict[str, float], dict[str, float]]:
        """Records per (reason, university); age in seconds of the oldest and of the newest record per
        reason."""
        counts: dict[tuple[str, str], int] = {}
        oldest: dict[str, int] = {}
        newest: dict[str, int] = {}
        for records in self.partitions.values():
            for _, reason, university, ts in records:
                counts[(reason, university)] = counts.get((reason, university), 0) + 1
                oldest[reason] = min(oldest.get(reason, ts), ts)
                newest[reason] = max(newest.get(reason, ts), ts)
        return (counts, {r: max(0.0, (now_ms - ts) / 1000) for r, ts in oldest.items()},
                {r: max(0.0, (now_ms - ts) / 1000) for r, ts in newest.items()})
