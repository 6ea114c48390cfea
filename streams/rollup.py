"""Rollup: sums the per-partition partial aggregates into alliance-wide totals (pure part).

Each family partition sends its *absolute* partial for an (aggregate, dimkey) as member ``p<n>``; the
rollup keeps the latest partial per member and publishes the sum. Re-sending a partial is harmless.
"""

from __future__ import annotations

import math
from typing import Any

import pydantic_core

from streams.contributions import State, Values, parse_dimkey


def parse_partial(raw: bytes | None) -> dict[str, Any]:
    """One record of the partials topic; ValueError says what is wrong with it."""
    try:
        body = pydantic_core.from_json(raw) if raw is not None else None
    except (ValueError, RecursionError) as exc:
        raise ValueError(f"partial is not JSON: {exc}") from None
    if not isinstance(body, dict):
        raise ValueError("partial must be a JSON object")
    for name in ("aggregate", "key", "member", "at"):
        if not isinstance(body.get(name), str):
            raise ValueError(f"partial field {name!r} must be a string")
    partial = body.get("partial")
    if not isinstance(partial, dict) or not all(
            isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in partial.values()):
        raise ValueError("partial field 'partial' must be an object of finite numbers")
    return body


def merge(state: State | None, aggregate: str, key: str, member: str, partial: Values, at: str) -> State:
    s: State = dict(state) if state else {"aggregate": aggregate, "key": key, "members": {}, "updated_at": at}
    members: dict[str, Values] = s["members"]
    s["members"] = {**members, member: partial}
    s["updated_at"] = max(at, str(s["updated_at"]))
    return s


def totals(state: State) -> dict[str, float]:
    out: dict[str, float] = {}
    for partial in state["members"].values():
        for metric, v in partial.items():
            out[metric] = out.get(metric, 0) + v
    return out


def empty(state: State) -> bool:
    """Every metric is zero: nothing counts under this key any more (its events were all retracted, or
    corrected into other keys); the key is published as a tombstone, like a key that never counted."""
    return not any(totals(state).values())


def record(state: State) -> dict[str, Any]:
    """The value published to ``alliance.agg.<aggregate>`` for this rollup key."""
    return {"aggregate": state["aggregate"], "key": parse_dimkey(state["key"]), "value": totals(state),
            "updated_at": state["updated_at"]}
