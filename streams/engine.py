"""The batch engine: applies a batch of canonical events to entity states and partial aggregates.

Pure: state and partial lookups are passed in as callables, results come back as plain dicts for the Faust
glue (streams.pipeline) to write to tables and topics. One write per touched key per batch.

Replays (a worker taking over partitions re-reads what its predecessor processed but had not committed)
change nothing: entity states merge idempotently, partials are differences of contributions, and the
entity-state table remembers every event applied (``applied:<university>/<event id>``: ids are opaque,
and two UUIDv7 ids of one millisecond share their first 48 bits), so event counts (windows) count an event
once, and a replay is not applied again.

Corrections and retractions (events.corrections): every entity keeps the events applied to it as a log of
member keys (``<entity>|event|<n>``, the event's stored form; the entity's state counts them: domains.base),
and an event's applied key points at its entry. A revision refolds the entity from its log without the original
(or with the corrected event in its place): the domains are order-insensitive, so the result is the state
the entity would have had; member keys only the original wrote are deleted, and the partials move by the
difference of the contributions, like for any event. The revisions of one entity in a batch refold it once
(``_Run``). An original that only added a member (a check-in, an application, a service item: ``Domain.members``)
is taken back alone instead (``take_back``): its member key counts the standing events that added it, the entity's
state counts its standing events, so neither the log nor the other members are read. Any other original refolds the
entity's other events alone (a partial run): their log positions are listed in the entity's refold index
(``domains.base.refold_index_key``), and the fold starts from the state's member part (``Domain.members_only``).
Costs: one more key per event (its log entry), one more for an event that is not a member (its index entry).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from events.base import Event
from events.codec import StoredJson, decode_stored, plain, stored
from events.corrections import (
    EventCorrected,
    EventRetracted,
    entity_probe,
    replacement,
    revision_problem,
    revision_seekers,
)
from events.privacy import named_seekers
from events.services import SeekerErasureRequested
from streams import erasure
from streams.contributions import Contributions, State, Values, add_into, diff
from streams.domains import Domain
from streams.domains.base import (
    LOG_FIELD,
    Logged,
    Tx,
    keep_log_count,
    log_count,
    log_count_key,
    log_key,
    log_numbers,
    refold_count,
    refold_index_key,
    standing_count,
    take_member,
)
from streams.windows import window_counts

PartialKey = tuple[str, str, int]  # (aggregate, dimkey, partition)
# (partition, event), (partition, event, family of the record's topic): an erasure request is copied to
# every family's topic, and each copy erases the seeker from that family's keys (streams.erasure); or
# (partition, event, family, the record's bytes): its canonical JSON, kept as its log entry as it is
Item = tuple[int, Event] | tuple[int, Event, str] | tuple[int, Event, str, bytes]


@dataclass
class BatchResult:
    # (partition, value) of every key written, None: deleted. Entity states, member keys, log entries (an event's
    # canonical record: StoredJson), applied pointers, counts, erasure indexes and markers
    states: dict[str, tuple[int, Any]] = field(default_factory=dict)
    applied_ids: dict[str, int] = field(default_factory=dict)  # applied_key -> partition, first-time events
    # (the applied keys themselves are in ``states``: an event's points at its entry in the entity's log)
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
    return applied_key_of(event.source, str(event.event_id))


def applied_key_of(source: str, event_id: str) -> str:
    """``applied_key`` of the event ``source`` published as ``event_id`` (a revision names its original so)."""
    return f"applied:{source}/{event_id}"


def partial_key(pk: PartialKey) -> str:
    """The key of a partition's partial sum in the entity-state table."""
    return f"partial:{pk[0]}|{pk[1]}|{pk[2]}"


@dataclass
class _Run:
    """Revisions of one entity in this batch whose refold is still to do: it is done once, before anything
    else touches the entity or at the end of the batch, so a bulk retraction (all check-ins a faulty scanner
    recorded) refolds the entity once per batch, not once per revision."""

    domain: Domain
    partition: int
    index: int  # the newest revision's item (a refold that fails is reported against it)
    before: list[Event]  # the entity's events when the run began
    events: dict[int, Event]  # log position -> the event standing there now
    at: str  # occurred_at of the newest revision
    # the run reads the entity's events that are not members alone (its refold index): ``before`` and ``events``
    # hold those, and the refold keeps the member keys and the counters of the state as they are then
    partial: bool = False
    retracted: int = 0  # retractions in the run (the events standing are the state's count less these)


def process(
    items: Iterable[Item],
    domains: Mapping[str, Domain],
    lookup: Callable[[str, int], Any],
) -> BatchResult:
    """Apply ``items`` (partition, event). ``lookup(key, partition)`` reads the entity-state table, which holds
    entity states, their members, their event logs, applied ids (``applied_key``) and partial sums
    (``partial_key``); every key an event reads or writes is on the event's partition (the canonical topics
    are keyed by the entity), so the lookup reads that partition only."""
    out = BatchResult()
    touched: dict[str, tuple[Domain, int]] = {}  # entity key -> its domain and partition
    runs: dict[str, _Run] = {}
    # the contributions of each entity's state as this batch last wrote it: the next event of the entity
    # in the batch diffs against them instead of computing them again (a fair's check-ins, a posting's
    # applications). Dropped when anything else changes the state (a refold, an erasure).
    known: dict[str, Contributions] = {}

    written = out.states

    def reader(partition: int) -> Callable[[str], Any]:
        def read(key: str) -> Any:  # (one call per read: every event reads several keys)
            found = written.get(key)
            return plain(found[1] if found is not None else lookup(key, partition))
        return read

    def partials_for(delta: Contributions, partition: int) -> dict[PartialKey, Values]:
        partials: dict[PartialKey, Values] = {}
        for (aggregate, dk), values in delta.items():
            pk = (aggregate, dk, partition)
            current = out.partials[pk] if pk in out.partials else (lookup(partial_key(pk), partition) or {})
            partials[pk] = add_into(current, values)
        return partials

    def moved(key: str, domain: Domain, old: State | None, new: State | None, windows: Contributions,
              partition: int, replayed: Contributions | None = None) -> tuple[Contributions, dict[PartialKey, Values]]:
        """The entity's contributions in ``new``, and the partials moved by their difference from ``old``'s and by
        ``windows`` (event counts). ``replayed``: the event counts of a replay, which changes nothing but
        publishes the current partials again (they may never have left)."""
        before = known.get(key)
        if before is None:
            before = domain.contributions(old) if old is not None else {}
        if new is None:
            contributions = {}
        elif old is not None and domain.same_contributions(old, new):
            contributions = before  # (an application to a posting: its talent flows are not walked again)
        else:
            contributions = domain.contributions(new)
        delta = diff(before, contributions)
        for (aggregate, dk), values in windows.items():
            delta[(aggregate, dk)] = add_into(delta.get((aggregate, dk), {}), values)
        if replayed is not None:
            for aggregate, dk in contributions.keys() | replayed.keys():
                delta.setdefault((aggregate, dk), {})
        return contributions, partials_for(delta, partition)

    def commit(tx: Tx, partition: int, partials: dict[PartialKey, Values]) -> None:
        for written, value in tx.writes.items():  # the entity and its member keys, all on the event's partition
            out.states[written] = (partition, value)
        out.partials.update(partials)

    def settle(key: str, domain: Domain, old: State | None, new: State | None, partition: int) -> None:
        if new is None and old is not None:  # every event of the entity retracted: its record goes too
            view = domain.view(old)
            if view is not None:
                out.views.append((view[0], view[1], None))
            touched.pop(key, None)
        elif new is not None:
            touched[key] = (domain, partition)

    def flush(key: str) -> None:
        run = runs.pop(key)
        known.pop(key, None)
        tx = Tx(reader(run.partition))
        try:
            old = tx.get(key)  # (a partial run's: with the members taken back since it began)
            new = refold(tx, key, run)
            erasure.index_refold(tx, run.events.values(), run.domain.family, run.partition)
            _, partials = moved(key, run.domain, old, new, {}, run.partition)  # (``known`` holds none for it)
        except Exception as exc:  # a bug: the entity keeps its state (the log already says what stands)
            out.failed.append((run.index, "unprocessable", f"refold of {key}: {type(exc).__name__}: {exc}"))
            return
        commit(tx, run.partition, partials)
        settle(key, run.domain, old, new, run.partition)

    for index, item in enumerate(items):
        partition, event = item[0], item[1]
        family = item[2] if len(item) >= 3 else event.target_family
        if isinstance(event, SeekerErasureRequested):
            for pending in list(runs):  # an erasure renames keys on its partition: every refold first
                flush(pending)
            known.clear()
        try:  # everything for one event is computed first and committed to ``out`` only if it all worked
            tx = Tx(reader(partition))
            if isinstance(event, SeekerErasureRequested):
                _erase(tx, event, family, partition, domains, out)
                continue
            ak = applied_key(event)
            first_time = tx.get(ak) is None
            domain = domains[family]
            if isinstance(event, EventRetracted | EventCorrected):
                if not first_time:  # a replay of a revision applied before (a refused one leaves no key: read
                    continue        # again, it meets the same state, since its batch's writes did not persist)
                seekers = revision_seekers(event, family)
            else:
                seekers = named_seekers(event.data)
                key = domain.state_key(event)
                if key in runs:  # the entity's pending refold first: the event applies to what stands (and the
                    flush(key)   # seekers' indexes are read after it: the refold may have listed keys in them)
            indexed = erasure.standing(tx, seekers, family, partition)
            if indexed is None:
                if first_time:  # (a replay of an event applied before the erasure changes nothing)
                    out.failed.append((index, "erased_seeker", "the event names a job seeker erased before it "
                                                               "arrived (services.seeker_erasure_requested)"))
                continue
            if isinstance(event, EventRetracted | EventCorrected):
                revised = revise(tx, event, domain, runs.get, index, partition)
                if isinstance(revised, FlushFirst):  # (revise wrote nothing): the run, then the seekers' indexes
                    flush(revised.key)
                    if (indexed := erasure.standing(tx, seekers, family, partition)) is None:
                        raise RuntimeError("a refold cannot erase a seeker")
                    revised = revise(tx, event, domain, runs.get, index, partition)
                if isinstance(revised, FlushFirst):
                    raise RuntimeError(f"{revised.key}: a revision met a run after its flush")
                if isinstance(revised, str):
                    out.failed.append((index, "not_revisable", revised))
                    continue
                key, outcome, windows = revised
                tx.put(ak, 1)
                erasure.index(tx, indexed, family, partition)  # the corrected event's log entry names them
                if isinstance(outcome, _Run):  # refolded later, once for the entity's run of revisions
                    runs[key] = outcome
                    partials = partials_for(windows, partition)
                    out.applied_ids[ak] = partition
                    commit(tx, partition, partials)
                    continue
                old, new = tx.get(key), outcome  # taken back already (take_back): moved like any event
                tx.put(key, new)
            else:
                old = tx.get(key)
                windows = {}
                logged = None
                if first_time:
                    new = domain.apply(tx, old, event)
                    logged = log_event(tx, key, old, new, event, ak, item[3] if len(item) == 4 else None,
                                       type(event) not in domain.members)
                    tx.put(key, new)
                    windows = window_counts(event)  # event counts: count each event id once
                else:  # a replay: the event is in the state already (or was revised since): change nothing
                    new = old
                erasure.index(tx, indexed, family, partition, logged)
            replayed = None if first_time else window_counts(event)
            contributions, partials = moved(key, domain, old, new, windows, partition, replayed)
        except Exception as exc:  # a bug or a value the domain cannot take: this event alone is refused
            out.failed.append((index, "unprocessable", f"{type(exc).__name__}: {exc}"))
            continue
        if first_time:
            out.applied_ids[ak] = partition
        commit(tx, partition, partials)
        settle(key, domain, old, new, partition)
        known[key] = contributions
    for pending in list(runs):
        flush(pending)
    for key, (domain, partition) in touched.items():
        state = reader(partition)(key)
        if state is None:  # erased in a later item of this batch (its view was tombstoned there)
            continue
        view = domain.view(state)
        if view is not None:
            out.views.append(view)
            out.view_times[view[1]] = state.get("updated_at") or ""
    return out


# --- the entity's event log, and revisions (events.corrections) ------------------------------------------

def log_event(tx: Tx, key: str, old: State | None, new: State, event: Event, ak: str,
              encoded: bytes | None = None, refolded: bool = True) -> Logged:
    """Append ``event`` to the entity's log: the entry, the count in the entity's ``new`` state, and the
    applied key pointing at the entry. ``encoded``: the canonical record ``event`` was decoded from, kept as
    the entry's bytes (``StoredJson``; the stored form is built otherwise). ``refolded``: the event is not a
    member (``Domain.members``), so a revision of it refolds: its position goes in the entity's refold index."""
    numbers = log_numbers(tx.get, key, old) or [0, True]
    n = numbers[0]
    entry = log_key(key, n)
    tx.put(entry, StoredJson(encoded) if encoded is not None else stored(event))
    count = [n + 1, numbers[1]]
    if old is None:  # no event of the entity stands: none to count, none to index
        count += [1, numbers[3] if len(numbers) == 4 else 0]
    elif len(numbers) >= 3:
        count += numbers[2:]
        count[2] += 1
    if len(count) == 4 and refolded:
        tx.put(refold_index_key(key, count[3]), n)
        count[3] += 1
    keep_log_count(tx, key, old, new, count)
    tx.put(ak, {"log": n})
    return Logged(entry, log_count_key(key), ak)


def _fold(domain: Domain, events: Iterable[Event], seed: State | None = None) -> tuple[State | None, dict[str, Any]]:
    """The entity's state and member keys from ``events`` alone (the domains are order-insensitive), folded onto
    ``seed`` (its member events' part: ``Domain.members_only``) if given."""
    tx = Tx(lambda _: None)
    state = seed
    for event in events:
        state = domain.apply(tx, state, event)
    return state, tx.writes


class FlushFirst(NamedTuple):
    """``revise`` cannot apply the revision while its entity's run is pending: refold the run first, then revise."""

    key: str


def revise(tx: Tx, revision: EventRetracted | EventCorrected, domain: Domain,
           pending: Callable[[str], _Run | None], index: int, partition: int
           ) -> str | FlushFirst | tuple[str, _Run | State, Contributions]:
    """Retract or correct the revision's original in its entity's log: taken back alone (``take_back``) when it
    can be, else in the entity's run of revisions (the refold comes later: ``refold``), which reads the entity's
    events that are not members alone when the original is not one (``_partial``). Returns (entity key, the
    entity's new state or its run, the change of the event counts: the original's taken back, the corrected
    event's counted), or why the revision cannot apply (events.corrections.revision_problem). Nothing is written
    before it returns ``FlushFirst`` or a problem."""
    key = domain.state_key(entity_probe(revision.data.type, str(revision.subject), revision.source))
    state = tx.get(key)
    count = log_count(tx.get, key, state)
    n, complete = count if count is not None else (0, True)
    pointer = tx.get(applied_key_of(revision.source, revision.original_id))
    position = pointer.get("log") if isinstance(pointer, dict) else None
    run = pending(key)
    original: Event | None = None
    if position is not None and position < n:
        if run is not None and position in run.events:
            original = run.events[position]
        elif (entry := tx.get(log_key(key, position))) is not None:  # (what a run revised is written already)
            original = decode_stored(entry)
    if original is not None and (original.source, str(original.event_id)) != (revision.source,
                                                                             revision.original_id):
        original = None  # the pointer is into another entity's log: the revision names the wrong subject
    if (problem := revision_problem(revision, original)) is not None:
        return problem
    assert original is not None and position is not None
    if not complete:
        return f"{key} has events from before corrections were supported; it cannot be refolded"
    corrected = replacement(revision)
    windows = {k: {m: -v for m, v in values.items()} for k, values in window_counts(original).items()}
    for k, values in (window_counts(corrected) if corrected is not None else {}).items():
        windows[k] = add_into(windows.get(k, {}), values)
    entry = stored(corrected) if corrected is not None else None
    if (run is None or run.partial) and (taken := take_back(tx, domain, key, state, original, corrected,
                                                            revision)) is not None:
        tx.put(log_key(key, position), entry)  # (a pending partial run keeps the member counts it finds then)
        return key, taken, windows
    if run is not None and run.partial and type(original) in domain.members:
        return FlushFirst(key)  # a member the partial run does not hold, not taken back: the entity refolds whole
    if run is None:
        partial = _partial(domain, state, original)
        positions = ((tx.get(refold_index_key(key, j)) for j in range(refold_count(state) or 0)) if partial
                     else range(n))
        standing = {j: decode_stored(e) for j in positions if (e := tx.get(log_key(key, j))) is not None}
        run = _Run(domain, partition, index, list(standing.values()), standing, "", partial)
    tx.put(log_key(key, position), entry)
    if corrected is not None:
        run.events[position] = corrected
    else:
        del run.events[position]
        run.retracted += 1
    run.index, run.at = index, max(run.at, revision.occurred_at.isoformat())
    return key, run, windows


def _partial(domain: Domain, state: State | None, original: Event) -> bool:
    """Whether a revision of ``original`` refolds the entity's events that are not members alone: it is not a
    member, and the state counts its standing events and indexes the others (``refold_count``)."""
    return (domain.fresh is not None and type(original) not in domain.members and refold_count(state) is not None
            and bool(standing_count(state)))


def take_back(tx: Tx, domain: Domain, key: str, state: State | None, original: Event, corrected: Event | None,
              revision: Event) -> State | None:
    """The entity's state with ``original`` taken back (and ``corrected`` applied in its place), without refolding
    it: when ``original`` only added a member (``Domain.members``: a check-in, an application, a service item),
    and the state counts its standing events and its member keys count theirs (``standing_count``), and another
    event stays standing. Its member key loses one count (gone at none); the corrected event, of the same type,
    applies like a new one. None otherwise (the entity is refolded): nothing is written then. Costs what one
    event does, whatever the entity's history; a refold reads its whole log."""
    member = domain.members.get(type(original))
    standing = standing_count(state)
    if member is None or state is None or standing is None or standing <= 1:
        return None  # (the last event standing: the refold deletes the entity and keeps its log's count apart)
    count = state[LOG_FIELD]  # (standing_count read it: [events logged, complete, events standing(, indexed)])
    sub = Tx(tx.get)  # (written to ``tx`` only if the member key counts the original)
    new = dict(state)
    if not take_member(sub, new, key, member, original):
        return None
    tx.writes.update(sub.writes)
    new[LOG_FIELD] = [count[0], count[1], standing if corrected is not None else standing - 1, *count[3:]]
    if corrected is not None:
        new = domain.apply(tx, new, corrected)
    at = revision.occurred_at.isoformat()  # the record's time moves on, never back (as a refold's)
    new["updated_at"] = max(t for t in (new.get("updated_at"), at) if t)
    return new


def refold(tx: Tx, key: str, run: _Run) -> State | None:
    """The entity's state from the events standing now (``run.events``): written with the member keys that
    changed; member keys only retracted events wrote are deleted. Returns the new state (None: no event
    stands). A partial run (``_Run.partial``) folds the entity's events that are not members onto its state's
    member counts (``Domain.members_only``), and its member keys stay as they are."""
    current = tx.get(key)
    numbers = log_numbers(tx.get, key, current)
    if run.partial:
        standing = (standing_count(current) or 0) - run.retracted
        if standing < len(run.events):
            raise RuntimeError(f"{key} counts {standing} events standing, fewer than its {len(run.events)} others")
        seed = run.domain.members_only(current) if standing and current is not None else None
    else:
        standing, seed = len(run.events), None
    _, before = _fold(run.domain, run.before)
    new, after = _fold(run.domain, run.events.values(), seed) if standing else (None, {})
    for member in before.keys() - after.keys():
        tx.put(member, None)
    for member, value in after.items():
        if tx.get(member) != value:
            tx.put(member, value)
    if new is not None:  # the record's time moves on (the read model keeps the newest record per entity)
        times = [new.get("updated_at"), (current or {}).get("updated_at"), run.at]
        new["updated_at"] = max(t for t in times if t)
    # the log keeps its length (entries are replaced or emptied); with no event standing the state goes and the
    # log stays, counted on its own key. From now on the count holds the events standing (the member keys count
    # theirs, as folded) and the refold index (written here from the events standing if the state had none)
    if numbers is not None:
        indexed = numbers[3] if len(numbers) == 4 else _index_refolded(tx, key, run)
        keep_log_count(tx, key, current, new, [numbers[0], bool(numbers[1]), standing, indexed])
    tx.put(key, new)
    return new


def _index_refolded(tx: Tx, key: str, run: _Run) -> int:
    """Write the entity's refold index from a whole run's standing events (a state from before the index was kept);
    its count."""
    positions = [j for j, event in sorted(run.events.items()) if type(event) not in run.domain.members]
    for i, position in enumerate(positions):
        tx.put(refold_index_key(key, i), position)
    return len(positions)


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
