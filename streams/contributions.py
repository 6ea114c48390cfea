"""Contributions: the aggregate arithmetic shared by every domain (pure).

A domain keeps one state dict per entity (posting, fair, mentor, seeker). From a state it derives
*contributions*: ``{(aggregate, dimkey): {metric: number}}``. The engine applies the difference between the
contributions of the old and the new state to per-partition partial sums, so re-applying an event (a
replay, a duplicate that slipped through) changes nothing, and the order of events only matters through
the domain's own merge rules.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from typing import Any

State = dict[str, Any]
Values = dict[str, float]
Contributions = dict[tuple[str, str], Values]

ALL = "*"


def dimkey(dims: Mapping[str, str]) -> str:
    """Stable key of a dimension combination: ``city=chengdu|industry=finance``."""
    return _dimkey(tuple(dims.items()))


@lru_cache(maxsize=16_384)
def _dimkey(items: tuple[tuple[str, str], ...]) -> str:  # the hot path: a few thousand distinct combinations
    return "|".join(f"{k}={v}" for k, v in sorted(items))


def parse_dimkey(key: str) -> dict[str, str]:
    return dict(part.split("=", 1) for part in key.split("|") if part)


def diff(old: Contributions, new: Contributions) -> Contributions:
    """new - old, per (aggregate, dimkey) and metric; keys whose metrics all stay the same are dropped."""
    out: Contributions = {}
    for k in old.keys() | new.keys():
        o, n = old.get(k, {}), new.get(k, {})
        if o == n:  # (most of an entity's keys: an event moves one or two of its dimension combinations)
            continue
        d = {m: n.get(m, 0) - o.get(m, 0) for m in o.keys() | n.keys()}
        if any(d.values()):  # zero metrics stay, so every published record carries every metric
            out[k] = d
    return out


def add_into(target: Values, delta: Mapping[str, float]) -> Values:
    out = dict(target)
    for m, v in delta.items():
        out[m] = out.get(m, 0) + v
    return out


def ratio(num: float, den: float) -> float:
    return round(num / den, 4) if den else 0.0


def with_all(dims: Mapping[str, str], scope_key: str) -> list[dict[str, str]]:
    """The dims once as given and once with ``scope_key`` widened to the alliance-wide ``*``."""
    return [dict(dims), {**dims, scope_key: ALL}]
