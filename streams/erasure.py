"""Erasing a job seeker from the worker's tables (PIPL; pure, used by streams.engine).

A university's ``services.seeker_erasure_requested`` is copied by the ingest to EVERY partition of EVERY
canonical topic (streams.batch.ingest), because the seeker's pseudonym lives in member keys of entities on
any partition: check-ins at fairs, offers and hires on postings, mentor assignments, the seeker's own
1-1-3-1 state. On each (family, partition) the copy:

- renames every table key and value that names the pseudonym to an anonymous token (``erased.<hex>``, made
  from the request's event id, so it cannot be computed from the pseudonym): counts, sets and merge rules
  stay exactly as they were, so no figure moves; the old keys are deleted (changelog tombstones);
- finds those keys through the seeker's index on that (family, partition), kept as events are applied
  (``seekers|<pseudonym>|<family>|<partition>``: the keys an event naming the seeker wrote; for the entries
  of an entity's event log, which name the seeker by construction, the log's count key, standing for every
  entry of that log: so the index grows with the entities naming the seeker, not with their events, and is
  not rewritten for every event), and deletes the index. The index is paged (:class:`Listing`): its first
  ``PAGE_KEYS`` keys on the index key itself (a sorted list, as every earlier version kept the whole index),
  further keys appended to pages of ``PAGE_KEYS`` each, so an event adding a key rewrites one bounded page, not
  an index that grows with the seeker's history;
- leaves a marker ``erased|<sha256 of the pseudonym>|<family>|<partition>``: an event naming the seeker that
  arrives on that partition afterwards is refused (reason ``erased_seeker``; its DLQ copy is redacted), and
  a replay of an event applied before the erasure changes nothing. The marker holds a digest, not the
  pseudonym, and no link to the token.

Everything is per (family, partition), in that partition's record order, so the read model (which reads
the same copies in the same order; consumers.mapping and consumers.store) reaches the same decisions. Re-applying a copy
changes nothing (the marker is there).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from pydantic_core import to_json

from events.base import Event
from events.codec import plain
from events.privacy import ERASED_PREFIX, erasure_token, named_seekers, renamed, seeker_digest
from streams.domains.base import LOG_COUNT_SUFFIX, Logged, Tx, log_count, log_key


def token(request: Event) -> str:
    """The anonymous id that replaces the seeker: from the request's id, not from the pseudonym."""
    return erasure_token(request.source, str(request.event_id))


def marker_key(seeker: str, family: str, partition: int) -> str:
    return f"erased|{seeker_digest(seeker)}|{family}|{partition}"


def index_key(seeker: str, family: str, partition: int) -> str:
    return f"seekers|{seeker}|{family}|{partition}"


def page_key(seeker: str, family: str, partition: int, page: int) -> str:
    """The ``page``-th further page (1, 2, …) of the seeker's index on (``family``, ``partition``)."""
    return f"{index_key(seeker, family, partition)}|{page}"


# keys per page of a seeker's index (~88 bytes each: a page is ~5.5 KiB at most). A seeker has far fewer keys on a
# partition (a few per entity naming them), so their index is one page, on the index key, as it always was; one
# flooded with thousands of events (job recommendations to one student) gets further pages, each bounded.
PAGE_KEYS = 64


@dataclass
class Listing:
    """A seeker's index on one (family, partition) as it stands: its first page (on the index key: a sorted list
    of keys, or, once further pages exist, ``{"keys": [...], "pages": n}``), how many further pages follow, and
    the keys of the last of them, where new keys are added."""

    first: list[str] = field(default_factory=list)
    pages: int = 0
    last: list[str] = field(default_factory=list)  # page ``pages``'s keys (none while ``pages`` is 0)

    @classmethod
    def read(cls, tx: Tx, head: Any, seeker: str, family: str, partition: int) -> Listing:
        """The listing whose first page is ``head`` (the index key's value, None: no index)."""
        first, pages = _first_page(head)
        return cls(first, pages, list(tx.get(page_key(seeker, family, partition, pages)) or []) if pages else [])

    def known(self) -> set[str]:
        """Keys an event need not list again: those of the first page and the last (a key listed on a page
        between them may be listed twice; the erasure takes each key once)."""
        return {*self.first, *self.last}

    def add(self, keys: list[str]) -> dict[int, Any]:
        """List ``keys`` (none listed before): the pages written, by number (0: the index key's value). When the
        first further page begins, a first page longer than one (an earlier version's whole index) is cut into
        pages too, so that no page is written again at more than ``PAGE_KEYS`` keys."""
        if not keys:
            return {}
        written: dict[int, Any] = {}
        pages = self.pages
        if self.pages == 0:
            pending = sorted([*self.first, *keys])
            if len(pending) <= PAGE_KEYS:
                self.first = pending
                return {0: pending}
            self.first, keys = pending[:PAGE_KEYS], pending[PAGE_KEYS:]
        for key in keys:
            if self.pages == 0 or len(self.last) >= PAGE_KEYS:
                self.pages, self.last = self.pages + 1, []
            self.last.append(key)
            written[self.pages] = self.last
        if self.pages != pages:  # (the first page counts the pages)
            written[0] = {"keys": self.first, "pages": self.pages}
        return written


def _first_page(head: Any) -> tuple[list[str], int]:
    """The keys on the index key's value ``head`` (a list, or ``{"keys": [...], "pages": n}``; None: no index) and
    the number of further pages."""
    if isinstance(head, dict):
        return list(head["keys"]), head["pages"]
    return list(head or []), 0


def _listed(tx: Tx, seeker: str, family: str, partition: int) -> tuple[list[str], int]:
    """Every key the seeker's index lists on (``family``, ``partition``), each once, and its number of further
    pages. A page missing is one an erasure that stopped part-way deleted already (after renaming every key)."""
    keys, pages = _first_page(tx.get(index_key(seeker, family, partition)))
    for page in range(1, pages + 1):
        keys += tx.get(page_key(seeker, family, partition, page)) or []
    return list(dict.fromkeys(keys)), pages


def _names(value: Any, seeker: str) -> bool:
    """Whether ``value`` holds the pseudonym (as a dict key or value, at any depth): its JSON-escaped text is
    looked for in the value's JSON, in one call of pydantic's serialiser instead of a walk through every nested
    value (this runs for every write of every event naming a seeker; 1.8 µs for a posting's state against 5.9
    with ``repr``). JSON escapes character by character, so a text holding the pseudonym always holds its
    escaped form; a longer text that merely contains it, or a match across two texts, counts too: indexing a
    key too many is harmless (its erasure renames exact texts only)."""
    if isinstance(value, str):
        return value == seeker
    return isinstance(value, dict | list | tuple) and to_json(seeker)[1:-1] in to_json(value)


def standing(tx: Tx, seekers: Iterable[str], family: str, partition: int) -> dict[str, Listing] | None:
    """The index of each of ``seekers`` on (``family``, ``partition``) (empty for a seeker without one), or
    None if any of them was erased there. Only a seeker without an index is looked up among the erased: an
    index exists only for a seeker not erased there (``erase`` deletes it in the transaction that writes the
    marker, and no event naming an erased seeker is indexed afterwards), so most events read one key per
    seeker, not two (a seeker whose index has further pages: one more, its last page)."""
    current: dict[str, Listing] = {}
    for seeker in seekers:
        head = tx.get(index_key(seeker, family, partition))
        if head is None and tx.get(marker_key(seeker, family, partition)) is not None:
            return None
        current[seeker] = Listing.read(tx, head, seeker, family, partition)
    return current


def index(tx: Tx, current: dict[str, Listing], family: str, partition: int, logged: Logged | None = None) -> None:
    """Remember which of the event's writes name each of its seekers (after the domain applied it).
    ``current``: each seeker's index before the event (``standing``). ``logged``: what the event wrote to its
    entity's log: the entry names every seeker of the event, and the index keeps the log's count key for it
    (``erase`` walks the log); the applied key names none. A key the index holds already is not looked into
    again (an entity the seeker's events keep updating)."""
    skip = {logged.entry_key, logged.applied_key, logged.count_key} if logged is not None else set()
    for seeker, listing in current.items():
        indexed = listing.known()
        keys = [k for k, v in tx.writes.items()
                if k not in skip and k not in indexed and (seeker in k or _names(v, seeker))]
        if logged is not None and logged.count_key not in indexed:
            keys.append(logged.count_key)
        _list(tx, listing, keys, seeker, family, partition)


def index_refold(tx: Tx, standing_events: Iterable[Event], family: str, partition: int) -> None:
    """List a refold's writes (streams.engine.refold) in the index of every seeker they name. A refold rewrites an
    entity's member keys from all of its standing events at once, so a value may come to name a seeker whose own
    event did not write it: a corrected event's new seeker (a check-in moved to another student), or the seeker
    of an offer's next-earliest event once the earliest is retracted. Listed like an event's own writes, or an
    erasure of that seeker would leave their pseudonym behind. The candidates are the seekers the standing
    events name (``standing_events``; an erased seeker's anonymous token is not one), matched exactly against
    the parts of each written key and the texts of each written value (deletions name nobody any more)."""
    written = [(k, v) for k, v in tx.writes.items() if v is not None]
    texts: dict[str, list[str]] = {}
    for key, value in written:
        for text in {*_key_parts(key), *_texts(plain(value))}:
            texts.setdefault(text, []).append(key)
    if not texts:
        return
    named: dict[str, list[str]] = {}
    for event in standing_events:
        for seeker in named_seekers(event.data) + ((str(event.subject),) if family == "services" else ()):
            if seeker in texts and not seeker.startswith(ERASED_PREFIX):
                named[seeker] = texts[seeker]
    current = standing(tx, named, family, partition)
    if current is None:  # cannot happen (the log names an erased seeker by the token): refuse, do not leak
        raise RuntimeError(f"a refold would write a seeker erased on {family}/{partition}")
    for seeker, listing in current.items():
        indexed = listing.known()
        _list(tx, listing, [k for k in dict.fromkeys(named[seeker]) if k not in indexed], seeker, family, partition)


def _list(tx: Tx, listing: Listing, keys: list[str], seeker: str, family: str, partition: int) -> None:
    """Add ``keys`` (none listed yet) to the seeker's index: the pages that change."""
    for page, value in listing.add(keys).items():
        tx.put(page_key(seeker, family, partition, page) if page else index_key(seeker, family, partition), value)


def _key_parts(key: str) -> list[str]:
    """The ids a table key is made of (``<kind>:<id>|<set>|<member>``)."""
    parts = key.split("|")
    return parts + [p.partition(":")[2] for p in parts if ":" in p]


def _texts(value: Any) -> list[str]:
    """Every text in a table value (dict keys included), at any depth."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [t for k, v in value.items() for t in (*_texts(k), *_texts(v))]
    if isinstance(value, list | tuple):
        return [t for v in value for t in _texts(v)]
    return []


def _log_entries(tx: Tx, listed: str, seeker: str, anonymous: str) -> list[str]:
    """The entry keys of the log a listed ``…|events`` key names (none for any other key: those are not read
    here, only where they are renamed). The log's count is in its entity's state, or, when an erasure written in
    parts stopped after renaming that state (its replay resumes it), in the renamed state."""
    if not listed.endswith(LOG_COUNT_SUFFIX):
        return []
    entity = listed.removesuffix(LOG_COUNT_SUFFIX)
    count = log_count(tx.get, entity, tx.get(entity))
    if count is None and seeker in entity:
        moved = entity.replace(seeker, anonymous)
        count = log_count(tx.get, moved, tx.get(moved))
    return [log_key(entity, position) for position in range(count[0])] if count is not None else []


def erase(tx: Tx, seeker: str, anonymous: str, family: str, partition: int) -> list[tuple[str, Any]]:
    """Apply one erasure copy; the (key, old value) pairs it renamed (empty when it was applied before).

    Resumable: the writes, in their order, may be made durable in parts (a seeker with hundreds of events on a
    partition writes more than one changelog record batch holds; streams.batch.resumable_parts), and whatever
    prefix of them a crash left, running the copy again completes it to the same tables. So each renamed key
    is written before its original is deleted, a log is found through its renamed entity once that is gone
    (``_log_entries``), and the index is deleted and the marker written last (the marker ends the erasure:
    written first, a replay would stop at it and leave the rest)."""
    mk = marker_key(seeker, family, partition)
    if tx.get(mk) is not None:
        return []
    listed_keys, pages = _listed(tx, seeker, family, partition)
    moved = []
    # every log's entries found before anything is renamed (the count lives in the entity's state, which may be
    # renamed itself), each before the key that named it
    keys = [key for listed in listed_keys for key in (*_log_entries(tx, listed, seeker, anonymous), listed)]
    for key in keys:
        value = tx.get(key)
        if value is None or not (seeker in key or _names(value, seeker)):
            continue  # (an entry of the log that names someone else; a key renamed before)
        new_key = key.replace(seeker, anonymous)
        tx.put(new_key, renamed(value, seeker, anonymous))
        if new_key != key:
            tx.put(key, None)
        moved.append((key, value))
    for page in range(1, pages + 1):  # the further pages before the first, which counts them
        tx.put(page_key(seeker, family, partition, page), None)
    tx.put(index_key(seeker, family, partition), None)
    tx.put(mk, 1)
    return moved
