"""Erasing a job seeker from the worker's tables (PIPL; pure, used by streams.engine).

A university's ``services.seeker_erasure_requested`` is copied by the ingest to EVERY partition of EVERY
canonical topic (streams.batch.ingest), because the seeker's pseudonym lives in member keys of entities on
any partition: check-ins at fairs, offers and hires on postings, mentor assignments, the seeker's own
1-1-3-1 state. On each (family, partition) the copy:

- renames every table key and value that names the pseudonym to an anonymous token (``erased.<hex>``, made
  from the request's event id, so it cannot be computed from the pseudonym): counts, sets and merge rules
  stay exactly as they were, so no figure moves; the old keys are deleted (changelog tombstones);
- finds those keys through the seeker's index on that (family, partition), kept as events are applied
  (``seekers|<pseudonym>|<family>|<partition>``: the member keys an event naming the seeker wrote), and
  deletes the index;
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
from typing import Any

from events.base import Event
from events.privacy import erasure_token, renamed, seeker_digest
from streams.domains.base import Tx


def token(request: Event) -> str:
    """The anonymous id that replaces the seeker: from the request's id, not from the pseudonym."""
    return erasure_token(request.source, str(request.event_id))


def marker_key(seeker: str, family: str, partition: int) -> str:
    return f"erased|{seeker_digest(seeker)}|{family}|{partition}"


def index_key(seeker: str, family: str, partition: int) -> str:
    return f"seekers|{seeker}|{family}|{partition}"


def _names(value: Any, seeker: str) -> bool:
    """Whether ``value`` holds the pseudonym (as a dict key or value, at any depth). A pseudonym is a fixed
    prefix and 32 hex digits, so finding it in the value's printed form finds it as a text, in one C call
    instead of a walk through every nested value (this runs for every write of every event naming a
    seeker). A longer text that merely contains it counts too: indexing a key too many is harmless (its
    erasure renames exact texts only)."""
    if isinstance(value, str):
        return value == seeker
    return isinstance(value, dict | list | tuple) and seeker in repr(value)


def is_erased(tx: Tx, seekers: Iterable[str], family: str, partition: int) -> bool:
    return any(tx.get(marker_key(s, family, partition)) is not None for s in seekers)


def index(tx: Tx, seekers: Iterable[str], family: str, partition: int) -> None:
    """Remember which of the event's writes name each of its seekers (after the domain applied it)."""
    for seeker in seekers:
        keys = [k for k, v in tx.writes.items() if seeker in k or _names(v, seeker)]
        if not keys:
            continue
        ik = index_key(seeker, family, partition)
        current = tx.get(ik) or []
        merged = sorted(set(current).union(keys))
        if merged != current:
            tx.put(ik, merged)


def erase(tx: Tx, seeker: str, anonymous: str, family: str, partition: int) -> list[tuple[str, Any]]:
    """Apply one erasure copy; the (key, old value) pairs it renamed (empty when it was applied before)."""
    mk = marker_key(seeker, family, partition)
    if tx.get(mk) is not None:
        return []
    ik = index_key(seeker, family, partition)
    moved = []
    for key in tx.get(ik) or []:
        value = tx.get(key)
        if value is None:
            continue
        tx.put(key, None)
        tx.put(key.replace(seeker, anonymous), renamed(value, seeker, anonymous))
        moved.append((key, value))
    tx.put(ik, None)
    tx.put(mk, 1)
    return moved
