"""Rollup: sums the per-partition partial aggregates into alliance-wide totals (pure part).

Each family partition sends its *absolute* partial for an (aggregate, dimkey) as member ``p<n>``; the
rollup keeps the latest partial per member and publishes the sum. Re-sending a partial is harmless.
"""

from __future__ import annotations

from typing import Any

from streams.state import State, Values, parse_dimkey


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


def record(state: State) -> dict[str, Any]:
    """The value published to ``alliance.agg.<aggregate>`` for this rollup key."""
    return {"aggregate": state["aggregate"], "key": parse_dimkey(state["key"]), "value": totals(state),
            "updated_at": state["updated_at"]}
