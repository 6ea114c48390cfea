"""Pure parts of the benchmark: results, ratios, percentiles, the printed table and the JSON document."""

from __future__ import annotations

import json
import math
import platform
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

Direction = Literal["higher", "lower", "info"]


class BenchError(RuntimeError):
    """The benchmark could not measure something (a service did not come up, a wait timed out)."""


def ratio(value: float, baseline: float) -> float | None:
    """value / baseline, or None when the baseline is missing or zero."""
    if not baseline or math.isnan(baseline) or math.isnan(value):
        return None
    return value / baseline


def rate(count: int, seconds: float) -> float:
    """Items per second; 0.0 for an empty or instantaneous interval."""
    return count / seconds if seconds > 0 and count > 0 else 0.0


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100) with linear interpolation between closest ranks (numpy's default)."""
    if not values:
        raise ValueError("percentile of no values")
    if not 0 <= q <= 100:
        raise ValueError(f"percentile {q} outside 0..100")
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100
    lo = math.floor(pos)
    hi = math.ceil(pos)
    if lo == hi:
        return float(ordered[lo])
    return float(ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo))


@dataclass
class Result:
    """One line of the table.

    ``value`` and ``baseline`` share ``unit``; ``target`` applies to the ratio (``direction`` higher: the
    ratio must reach it; lower: ``value`` must stay under it; info: no target, reported only).
    """

    name: str
    value: float | None
    unit: str
    baseline: float | None = None
    target: float | None = None
    direction: Direction = "higher"
    parameters: dict[str, Any] = field(default_factory=dict)
    note: str = ""
    error: str | None = None

    @property
    def ratio(self) -> float | None:
        if self.value is None or self.baseline is None:
            return None
        return ratio(self.value, self.baseline)

    @property
    def passed(self) -> bool | None:
        """True/False against the target; None when there is no target or nothing was measured."""
        if self.error is not None or self.value is None or self.target is None or self.direction == "info":
            return None if self.error is None else False
        if self.direction == "higher":
            r = self.ratio
            return None if r is None else r >= self.target
        return self.value <= self.target

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["ratio"] = None if self.ratio is None else round(self.ratio, 4)
        d["pass"] = self.passed
        for k in ("value", "baseline"):
            if isinstance(d[k], float):
                d[k] = round(d[k], 4)
        return d


def _num(v: float | None) -> str:
    if v is None:
        return "-"
    if abs(v) >= 1000:
        return f"{v:,.0f}"
    if abs(v) >= 10:
        return f"{v:.1f}"
    return f"{v:.3f}"


def _verdict(r: Result) -> str:
    if r.error is not None:
        return "ERROR"
    p = r.passed
    return "info" if p is None else ("PASS" if p else "FAIL")


def _target(r: Result) -> str:
    if r.target is None or r.direction == "info":
        return "-"
    return f">= {r.target:.2f}x" if r.direction == "higher" else f"<= {_num(r.target)} {r.unit}"


def format_table(results: Iterable[Result]) -> str:
    """A fixed-width text table: name, value, baseline, ratio, target, verdict."""
    header = ("measurement", "value", "baseline", "ratio", "target", "result")
    rows = [header]
    for r in results:
        unit = f" {r.unit}" if r.unit else ""
        rows.append((
            r.name,
            (_num(r.value) + unit) if r.value is not None else "-",
            (_num(r.baseline) + unit) if r.baseline is not None else "-",
            f"{r.ratio:.3f}" if r.ratio is not None else "-",
            _target(r),
            _verdict(r),
        ))
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = []
    for i, row in enumerate(rows):
        cells = [row[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(row[1:], widths[1:], strict=True)]
        lines.append("  ".join(cells).rstrip())
        if i == 0:
            lines.append("  ".join("-" * w for w in widths))
    notes = [f"  {r.name}: {r.error or r.note}" for r in results if r.error or r.note]
    if notes:
        lines += ["", "notes:", *notes]
    return "\n".join(lines)


def document(results: Sequence[Result], parameters: dict[str, Any], extra: dict[str, Any] | None = None,
             now: datetime | None = None) -> dict[str, Any]:
    """The JSON result document."""
    verdicts = [r.passed for r in results]
    return {
        "generated_at": (now or datetime.now(UTC)).isoformat(),
        "host": {"python": platform.python_version(), "machine": platform.machine(), "system": platform.system()},
        "parameters": parameters,
        "summary": {
            "passed": sum(1 for v in verdicts if v is True),
            "failed": sum(1 for v in verdicts if v is False),
            "info": sum(1 for v in verdicts if v is None),
        },
        "results": [r.to_dict() for r in results],
        **(extra or {}),
    }


def write_json(path: Path, doc: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=2, sort_keys=False, default=str) + "\n", encoding="utf-8")
