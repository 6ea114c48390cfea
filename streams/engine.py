"""The batch engine: applies a batch of canonical events to entity states and partial aggregates.

Pure: state and partial lookups are passed in as callables, results come back as plain dicts for the Faust
glue (streams.pipeline) to write to tables and topics. One write per touched key per batch.

Replays (a worker taking over partitions re-reads what its predecessor processed but had not committed)
change nothing: entity states merge idempotently, partials are differences of contributions, and the
entity-state table remembers every event applied (``applied:<university>/<event id>``: ids are opaque,
and two UUIDv7 ids of one millisecond share their first 48 bits), so event counts (windows) count an event
once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from events.base import Event
from events.privacy import named_seekers
from events.services import SeekerErasureRequested
from streams import erasure
from streams.contributions import State, Values, add_into, diff
from streams.domains import Domain
from streams.domains.base import Tx
from streams.windows import window_counts

PartialKey = tuple[str, str, int]  # (aggregate, dimkey, partition)
# (partition, event) or (partition, event, family of the record's topic): an erasure request is copied to
# every family's topic, and each copy erases the seeker from that family's keys (streams.erasure)
Item = tuple[int, Event] | tuple[int, Event, str]


@dataclass
class BatchResult:
    states: dict[str, tuple[int, State | None]] = field(default_factory=dict)  # None: deleted
    applied_ids: dict[str, int] = field(default_factory=dict)  # applied_key -> partition, first-time events
    partials: dict[PartialKey, Values] = field(default_factory=dict)
    views: list[tuple[str, str, dict[str, Any] | None]] = field(default_factory=list)  # None: tombstone
    view_times: dict[str, str] = field(default_factory=dict)

    @property
    def applied(self) -> int:
        """Events applied for the first time (replays excluded)."""
        return len(self.applied_ids)
    failed: list[tuple[int, str, str]] = field(default_factory=list)  # (index, reason, why) of refused events


def applied_key(event: Event) -> str:
    """The key that says an event was applied: its whole id, scoped by its source university. It lives in
    the entity-state table, beside the states and partials it changed (one changelog partition, written
    atomically; streams.writer)."""
    return f"applied:{event.source}/{event.event_id}"


def partial_key(pk: PartialKey) -> str:
    """The key of a partition's partial sum in the entity-state table."""
    return f"partial:{pk[0]}|{pk[1]}|{pk[2]}"


def process(
    items: Iterable[Item],
    domains: Mapping[str, Domain],
    lookup: Callable[[str], Any],
) -> BatchResult:
    """Apply ``items`` (partition, event). ``lookup`` reads the entity-state table, which holds entity
    states, their members, applied ids (``applied_key``) and partial sums (``partial_key``)."""
    out = BatchResult()
    touched: dict[str, Domain] = {}

    def read(key: str) -> State | None:
        return out.states[key][1] if key in out.states else lookup(key)

    for index, item in enumerate(items):
        partition, event = item[0], item[1]
        family = item[2] if len(item) == 3 else event.family
        try:  # everything for one event is computed first and committed to ``out`` only if it all worked
            tx = Tx(read)
            if isinstance(event, SeekerErasureRequested):
                _erase(tx, event, family, partition, domains, out)
                continue
            ak = applied_key(event)
            first_time = ak not in out.applied_ids and lookup(ak) is None
            seekers = named_seekers(event.data)
            if seekers and erasure.is_erased(tx, seekers, event.family, partition):
                if first_time:  # (a replay of an event applied before the erasure changes nothing)
                    out.failed.append((index, "erased_seeker", "the event names a job seeker erased before it "
                                                               "arrived (services.seeker_erasure_requested)"))
                continue
            domain = domains[event.family]
            key = domain.state_key(event)
            old = tx.get(key)
            new = domain.apply(tx, old, event)
            tx.put(key, new)
            erasure.index(tx, seekers, event.family, partition)
            contributions = domain.contributions(new)
            delta = diff(domain.contributions(old) if old is not None else {}, contributions)
            windows = window_counts(event)
            if first_time:  # event counts are the only non-idempotent aggregate: count each event id once
                for (aggregate, dk), values in windows.items():
                    delta[(aggregate, dk)] = add_into(delta.get((aggregate, dk), {}), values)
            else:  # a replay: change nothing, but publish the current partials again (they may never have left)
                for aggregate, dk in contributions.keys() | windows.keys():
                    delta.setdefault((aggregate, dk), {})
            partials: dict[PartialKey, Values] = {}
            for (aggregate, dk), values in delta.items():
                pk = (aggregate, dk, partition)
                current = out.partials[pk] if pk in out.partials else (lookup(partial_key(pk)) or {})
                partials[pk] = add_into(current, values)
        except Exception as exc:  # a bug or a value the domain cannot take: this event alone is refused
            out.failed.append((index, "unprocessable", f"{type(exc).__name__}: {exc}"))
            continue
        if first_time:
            out.applied_ids[ak] = partition
        for written, value in tx.writes.items():  # the entity and its member keys, all on the event's partition
            out.states[written] = (partition, value)
        touched[key] = domain
        out.partials.update(partials)
    for key, domain in touched.items():
        state = out.states[key][1]
        if state is None:  # erased in a later item of this batch (its view was tombstoned there)
            continue
        view = domain.view(state)
        if view is not None:
            out.views.append(view)
            out.view_times[view[1]] = state.get("updated_at") or ""
    return out


def _erase(tx: Tx, request: SeekerErasureRequested, family: str, partition: int, domains: Mapping[str, Domain],
           out: BatchResult) -> None:
    """One copy of an erasure request: rename the seeker in this (family, partition)'s keys and tombstone
    the views that were published under the pseudonym (the seeker's own 1-1-3-1 record). Counts no event
    and changes no partial: every count stays."""
    seeker = request.data.seeker_id
    renamed = erasure.erase(tx, seeker, erasure.token(request), family, partition)
    domain = domains[family]
    for key, old in renamed:
        if "|" in key or not isinstance(old, dict):  # member keys publish no view of their own
            continue
        view = domain.view(old)
        if view is not None and seeker in view[1]:
            out.views.append((view[0], view[1], None))
    for written, value in tx.writes.items():
        out.states[written] = (partition, value)
