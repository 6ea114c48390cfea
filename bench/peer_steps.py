"""The per-record work of the benchmark's Python peer (``bench.quix_peer``), pure: the pipeline's own batch
functions (:mod:`streams.batch`) called for one record at a time on a key-scoped state, as a Quix Streams
application calls its stateful steps.

Three steps, like the worker's three agents:

- ``ingest``: validate, dedupe and route a university's record (``streams.batch.ingest``; the ``seen`` keys
  live in the record key's state);
- ``tables``: apply a canonical event to its entity (``streams.batch.tables`` and ``streams.engine``; the
  entity's state, members, event log and applied keys live in the record key's state, which is the entity's
  subject). The worker keeps one absolute partial per (aggregate, key, partition) beside its entities; a
  key-scoped state cannot hold a sum over other keys, so the peer's partial records carry the event's
  *difference* (``partial_key`` look-ups answer "nothing yet");
- ``rollup``: add the differences per (aggregate, key) and publish the alliance-wide record
  (``streams.rollup.record``), a tombstone when every metric is zero, like the worker.

State is anything with ``get``/``set``/``delete`` (a Quix ``State``; a dict-backed one in the tests)."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from events.codec import plain
from events.reference import UNIVERSITIES
from events.topics import DLQ_TOPIC, PARTIALS_TOPIC, agg_topic, ingest_topic
from streams import batch as pure
from streams import rollup as rollups
from streams.contributions import add_into
from streams.domains import Domain
from streams.domains import domains as all_domains


class KeyState(Protocol):
    def get(self, key: str, default: Any = None) -> Any: ...
    def set(self, key: str, value: Any) -> None: ...
    def delete(self, key: str) -> None: ...


@dataclass(frozen=True, slots=True)
class Out:
    """A record a step writes: its topic (as named by ``Steps.topic``), key and value (None: a tombstone)."""

    topic: str
    key: bytes | None
    value: bytes | None
    headers: pure.Headers = field(default_factory=list)  # a DLQ copy's reason and source


TOPOLOGIES = ("direct", "canonical")  # bench.quix_peer's docstring says what each is
GUARANTEES = ("at-least-once", "exactly-once")


def output_suffix(suffix: str, topology: str, guarantee: str) -> str:
    """The peer's topics (outputs, DLQ): the run's suffix and its topology and guarantee."""
    return f"{suffix}.quix-{topology}-{'eos' if guarantee == 'exactly-once' else 'alo'}"


ROLLUP_STATE = "rollup"  # the rollup step's one state key (under the (aggregate, key) record key)
SUM_MEMBER = "sum"  # the rollup state's one member: the running sum of the differences


@dataclass
class Steps:
    """The peer's steps: ``topic`` names the topics it writes (the peer's suffix), ``source`` the ingest
    topics it reads (the run's; default: ``topic``)."""

    topic: Callable[[str], str]
    source: Callable[[str], str] | None = None
    domains: Mapping[str, Domain] = field(default_factory=all_domains)
    counts: Counter[str] = field(default_factory=Counter)  # records per step (the benchmark's progress)
    first: dict[str, float] = field(default_factory=dict)  # step -> when it began its first record
    last: dict[str, float] = field(default_factory=dict)  # step -> time of its last record
    # as the worker: the tables step takes what the ingest step encoded in this process, without decoding it
    recent: pure.Recent = field(default_factory=pure.Recent)

    def __post_init__(self) -> None:
        self.university_of = {(self.source or self.topic)(ingest_topic(u)): u for u in UNIVERSITIES}
        self.dlq = self.topic(DLQ_TOPIC)
        self.partials = self.topic(PARTIALS_TOPIC)

    def _put(self, state: KeyState, puts: list[tuple[str, int, str, Any]]) -> None:
        for _table, _partition, key, value in puts:
            if value is None:
                state.delete(key)
            else:  # (Quix serialises a value itself: an event's stored form goes to it as the mapping)
                state.set(key, plain(value))

    def _done(self, step: str, writes: pure.Writes) -> list[Out]:
        self.counts[step] += 1
        self.last[step] = time.time()
        return [Out(topic, key, value, headers) for topic, key, value, headers in writes.records] + [
            Out(topic, key, value, headers) for topic, _p, key, value, headers in writes.routed]

    def freshness(self) -> dict[str, dict[str, Any]]:
        """The peer's ``/freshness/`` document, shaped like the worker's (records per step, when it began its
        first and ended its last, seconds since), so the benchmark times it the same way."""
        now = time.time()
        def iso(at: float | None) -> str | None:
            return None if at is None else datetime.fromtimestamp(at, UTC).isoformat()

        return {step: {"events_processed": self.counts[step],
                       "first_batch_at": iso(self.first.get(step)), "last_batch_at": iso(self.last.get(step)),
                       "seconds_since_last_batch": now - self.last[step] if step in self.last else None}
                for step in ("ingest", "tables", "rollup")}

    def ingest(self, raw: pure.Raw, state: KeyState) -> list[Out]:
        self.first.setdefault("ingest", time.time())
        writes = pure.ingest([raw], self.university_of, state.get, datetime.now(UTC), self.topic, self.dlq,
                             recent=self.recent)
        self._put(state, writes.puts)
        return self._done("ingest", writes)

    def tables(self, raw: pure.Raw, state: KeyState) -> list[Out]:
        self.first.setdefault("tables", time.time())

        def lookup(key: str, partition: int) -> Any:  # Quix's state is the record's key's already
            return None if key.startswith("partial:") else state.get(key)

        writes = pure.tables([raw], self.domains, lookup, datetime.now(UTC).isoformat(), self.topic, self.dlq,
                             self.recent)
        self._put(state, [p for p in writes.puts if not p[2].startswith("partial:")])
        return self._done("tables", writes)

    def rollup(self, raw: pure.Raw, state: KeyState) -> list[Out]:
        self.first.setdefault("rollup", time.time())
        out = pure.RollupWrites()
        try:
            body = rollups.parse_partial(raw.value)
        except ValueError as exc:
            out.reject(self.dlq, raw, pure.internal_reject("malformed", str(exc), raw))
            return self._done("rollup", out)
        old = state.get(ROLLUP_STATE)
        total = old["members"][SUM_MEMBER] if old else {}
        merged = rollups.merge(old, body["aggregate"], body["key"], SUM_MEMBER, add_into(total, body["partial"]),
                               body["at"])
        state.set(ROLLUP_STATE, merged)
        value = None if rollups.empty(merged) else pure.to_json(rollups.record(merged))
        out.records.append((self.topic(agg_topic(body["aggregate"])), body["key"].encode(), value, []))
        return self._done("rollup", out)
