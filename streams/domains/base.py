"""What a domain (one event family's pure handlers) provides to the batch engine, and the transaction an
event is applied in.

Bounded values: an entity's state holds counters and a few fields, never the ids of its members. Every
member (an application, an offer, a check-in, a session, a service item) is a key of its own in the same
table, ``<entity key>|<set>|<member id>``, written to the same partition as the entity (the event's), so an
entity with 100,000 applications is 100,000 small records, not one record that grows with each of them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple, TypeGuard

from events.base import Event
from streams.contributions import Contributions, State


def newest(state: State, version: str, ts: str) -> bool:
    """Whether an event of ``occurred_at`` ``ts`` sets the fields its entity's creating event sets (JobPosted,
    JobFairScheduled, MentorRegistered: the segment, the fair's place and time, the mentor's profile), and if so
    records ``ts`` under ``version``. The newest such event's fields stand, as in the read model's ``posted_at``,
    ``scheduled_at`` and ``registered_at`` groups (consumers.tables); at the same instant the one applied first
    stays (both apply a partition's events in its order), so a second creating event that arrives first does
    not lose to an older one that arrives later. A state written before the version was kept has none: the
    event sets the fields, as every event did then."""
    current = state.get(version)
    if current is not None and ts <= current:
        return False
    state[version] = ts
    return True


def member_key(entity_key: str, set_name: str, member: str) -> str:
    return f"{entity_key}|{set_name}|{member}"


# the event log every entity keeps (streams.engine: corrections refold it; streams.erasure: renames in it)
def log_key(entity_key: str, position: int) -> str:
    """The event applied ``position``-th to the entity (its stored form; None once retracted)."""
    return member_key(entity_key, "event", str(position))


LOG_COUNT_SUFFIX = "|events"
# the entity's own state holds its log's count (one key less to read and write per event): [events logged,
# complete] and, since 2026-12-07, the events standing (logged and not retracted). The third number also says that
# every member key of the entity counts the standing events that add it (``Tx.add``), so a revision can take one
# such event back without refolding the entity (streams.engine.take_back); a state without it refolds.
# Later that day a fourth number: the entries of the entity's refold index (``refold_index_key``), where in the log
# the events that are not members stand, so that a revision of one refolds those alone and keeps the members.
LOG_FIELD = "_log"
REFOLD_SET = "refold"


def refold_index_key(entity_key: str, j: int) -> str:
    """The ``j``-th entry of the entity's refold index: the log position of the ``j``-th event logged that is not a
    member (``Domain.members``: a scheduling, a posting's fields, an offer, a session, a flag). A retracted event's
    entry stays (its log entry is empty); a correction stays at its original's position."""
    return member_key(entity_key, REFOLD_SET, str(j))


class Logged(NamedTuple):
    """The keys one applied event added to or changed in its entity's log."""

    entry_key: str  # log_key: the event's stored form (it names the event's seekers)
    count_key: str  # log_count_key: the name the erasure index lists the whole log under
    applied_key: str  # the event's applied key (streams.engine.applied_key): a pointer to the entry


def log_count_key(entity_key: str) -> str:
    """The log's name in a seeker's erasure index (streams.erasure), and the key that holds the log's count
    where the entity's state cannot: while no event of the entity stands (all retracted), and for logs
    written before the count moved into the state (read, and deleted once the state holds it)."""
    return f"{entity_key}{LOG_COUNT_SUFFIX}"


def log_numbers(read: Callable[[str], Any], entity_key: str, state: Any) -> list[Any] | None:
    """The entity's log count as kept (``LOG_FIELD``: 2 to 4 numbers), in its ``state`` (the caller has read it) or
    on the log's own key; None if it has no log, ``[0, False]`` if it has a state from before logs were kept."""
    if isinstance(state, dict) and _is_count(count := state.get(LOG_FIELD)):
        return count
    if _is_count(count := read(log_count_key(entity_key))):
        return count
    return [0, False] if state is not None else None


def log_count(read: Callable[[str], Any], entity_key: str, state: Any) -> tuple[int, bool] | None:
    """``(events logged, complete)`` of the entity's log, None if it has none; ``state``: the entity's state
    (the caller has read it). Complete unless the entity had a state before it had a log (an entity from
    before corrections were supported: its events cannot be refolded, so it cannot be revised)."""
    numbers = log_numbers(read, entity_key, state)
    return (numbers[0], bool(numbers[1])) if numbers is not None else None


def standing_count(state: Any) -> int | None:
    """The events standing in the entity's log, as its ``state`` counts them; None for a state that does not
    (written before the count was kept: its member keys may not count their events either)."""
    count = state.get(LOG_FIELD) if isinstance(state, dict) else None
    return count[2] if _is_count(count) and len(count) >= 3 else None


def refold_count(state: Any) -> int | None:
    """The entries of the entity's refold index (``refold_index_key``), as its ``state`` counts them; None for a
    state without the index (written before it was kept: a revision refolds the whole log, and writes the index)."""
    count = state.get(LOG_FIELD) if isinstance(state, dict) else None
    return count[3] if _is_count(count) and len(count) == 4 else None


def keep_log_count(tx: Tx, entity_key: str, before: State | None, after: State | None, count: list[Any]) -> None:
    """Keep the log's ``count`` [events logged, complete] with the entity's ``after`` state (which the caller
    writes): in the state, or on the log's own key while no event stands (``after`` None). A count that lay on
    that key before (``before`` does not hold one) is deleted once the state holds it; a state holding its count
    never has one lying apart, so the key is not read then (every event but an entity's first)."""
    count_key = log_count_key(entity_key)
    if after is None:
        tx.put(count_key, count)
        return
    after[LOG_FIELD] = count
    if not (isinstance(before, dict) and LOG_FIELD in before) and tx.get(count_key) is not None:
        tx.put(count_key, None)


def _is_count(value: Any) -> TypeGuard[list[Any]]:
    # (a key that merely ends like a count key, a member named "…|events", holds something else)
    return isinstance(value, list) and len(value) in (2, 3, 4) and isinstance(value[0], int)


def without_log(state: State) -> State:
    """The entity's state as its domain keeps it (no log count)."""
    return {k: v for k, v in state.items() if k != LOG_FIELD}


@dataclass
class Tx:
    """The reads and writes of one event: ``read`` sees the table through the batch so far; ``writes`` are
    committed by the engine only if the whole event applied."""

    read: Callable[[str], Any]
    writes: dict[str, Any] = field(default_factory=dict)

    def get(self, key: str) -> Any:
        return self.writes[key] if key in self.writes else self.read(key)

    def put(self, key: str, value: Any) -> None:
        self.writes[key] = value

    def add(self, entity_key: str, set_name: str, member: str) -> bool:
        """Add ``member`` to a set of the entity; True if it was not there yet. The member's key counts the
        events that added it (a student checked in twice: 2), so that taking one of them back leaves it."""
        key = member_key(entity_key, set_name, member)
        current = self.get(key)
        self.put(key, 1 if current is None else current + 1)
        return current is None

    def remove(self, entity_key: str, set_name: str, member: str) -> bool | None:
        """Take back one event that added ``member`` (``add``); True if none is left, so the member is gone.
        None if the key does not count an event (missing: nothing to take back)."""
        key = member_key(entity_key, set_name, member)
        current = self.get(key)
        if not isinstance(current, int) or isinstance(current, bool) or current < 1:
            return None
        self.put(key, current - 1 or None)
        return current == 1


class Member(NamedTuple):
    """An event that adds one member to a set of its entity, and nothing else but the entity's time: a check-in,
    an application, a service item. The domain's ``apply`` adds it through :func:`add_member`; a revision takes
    it back through :func:`take_member` (streams.engine), without refolding the entity."""

    set_name: str  # the member key's set (``<entity>|<set>|<member id>``)
    counter: str  # the state's field that counts the set's members
    attribute: str  # the event data's field naming the member


def add_member(tx: Tx, state: State, entity_key: str, member: Member, event: Event) -> None:
    state[member.counter] += tx.add(entity_key, member.set_name, getattr(event.data, member.attribute))


def take_member(tx: Tx, state: State, entity_key: str, member: Member, event: Event) -> bool:
    """Take ``event`` back from ``state`` (a copy the caller writes); False if its member key does not count it
    (then nothing is written)."""
    gone = tx.remove(entity_key, member.set_name, getattr(event.data, member.attribute))
    if gone is None:
        return False
    state[member.counter] -= gone
    return True


@dataclass(frozen=True)
class Domain:
    family: str
    state_key: Callable[[Event], str]
    apply: Callable[[Tx, State | None, Event], State]  # the new entity state; members through the Tx
    contributions: Callable[[State], Contributions]
    view: Callable[[State], tuple[str, str, dict[str, Any]] | None]
    # the state fields ``contributions`` reads, all of them (None: not declared). An event that leaves every one of
    # them as it was leaves the contributions as they were, so the engine does not compute them again: a posting's
    # talent flows, say, are walked when an offer changes them, not for every application to the posting
    # (tests/unit/test_contribution_fields.py checks each declaration against every state of three simulated days)
    contribution_fields: tuple[str, ...] | None = None
    # the event classes that add one member and nothing else (``Member``): a revision of one is taken back alone
    members: Mapping[type[Event], Member] = field(default_factory=dict)
    # the state of an entity before any event, from a state of it (its id): what a revision of an event that is not a
    # member refolds onto (``members_only``), reading the entity's other events alone. None: such a revision refolds
    # the whole log
    fresh: Callable[[State], State] | None = None

    def members_only(self, state: State) -> State:
        """``state`` as its entity's member events alone would have left it (the domains are order-insensitive, and
        a member event changes nothing but its set's counter and the entity's time): fresh, with the counters kept.
        The entity's other events folded onto it give the state all its events give."""
        assert self.fresh is not None
        seed = self.fresh(state)
        for member in self.members.values():
            if member.counter in seed:  # (a posting's, not an employer's: recruitment keeps both kinds)
                seed[member.counter] = state[member.counter]
        return seed

    def same_contributions(self, old: State, new: State) -> bool:
        """Whether ``new`` has the contributions of ``old`` because no field they read differs."""
        fields = self.contribution_fields
        return fields is not None and all((a := old.get(f)) is (b := new.get(f)) or a == b for f in fields)
