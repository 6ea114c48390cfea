"""The batch engine: applies a batch of canonical events to entity states and partial aggregates.

Pure: state and partial lookups are passed in as callables, results come back as plain dicts for the Faust
glue (streams.app) to write to tables and topics. One write per touched key per batch.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from events.base import Event
from streams.domains import Domain
from streams.state import State, Values, add_into, diff
from streams.windows import window_counts

PartialKey = tuple[str, str, int]  # (aggregate, dimkey, partition)


@dataclass
class BatchResult:
    states: dict[str, tuple[int, State]] = field(default_factory=dict)
    partials: dict[PartialKey, Values] = field(default_factory=dict)
    views: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)
    view_times: dict[str, str] = field(default_factory=dict)


def partial_key(pk: PartialKey) -> str:
    return f"{pk[0]}|{pk[1]}|{pk[2]}"


def process(
    items: Iterable[tuple[int, Event]],
    domains: dict[str, Domain],
    get_state: Callable[[str], State | None],
    get_partial: Callable[[str], Values | None],
) -> BatchResult:
    out = BatchResult()
    touched: dict[str, Domain] = {}
    for partition, event in items:
        domain = domains[event.family]
        key = domain.state_key(event)
        old = out.states[key][1] if key in out.states else get_state(key)
        new = domain.apply(old, event)
        out.states[key] = (partition, new)
        touched[key] = domain
        delta = diff(domain.contributions(old) if old is not None else {}, domain.contributions(new))
        for (aggregate, dk), values in window_counts(event).items():
            delta[(aggregate, dk)] = add_into(delta.get((aggregate, dk), {}), values)
        for (aggregate, dk), values in delta.items():
            pk = (aggregate, dk, partition)
            current = out.partials[pk] if pk in out.partials else (get_partial(partial_key(pk)) or {})
            out.partials[pk] = add_into(current, values)
    for key, domain in touched.items():
        view = domain.view(out.states[key][1])
        if view is not None:
            out.views.append(view)
            out.view_times[view[1]] = out.states[key][1].get("updated_at") or ""
    return out
