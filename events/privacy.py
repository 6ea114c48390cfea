"""Pseudonymisation of student ids: done at the university, before anything is published.

A pseudonym is ``ps.<university>.<key id>.`` + the first 32 hex digits of
HMAC-SHA256(key, "<university>:<student number>"). The key is the alliance's shared secret
(ALLIANCE_PSEUDONYM_KEY), so one student keeps one pseudonym while nobody without the key can map it back;
names and phone numbers never enter events at all.

- The **university** inside says who minted it: only that university may ask to erase the student
  (``services.seeker_erasure_requested``, events.ownership).
- The **key id** (ALLIANCE_PSEUDONYM_KEY_ID) says which key minted it, so keys can rotate: a new key gets a
  new id and mints the pseudonyms of students registered after the rotation; a student keeps the pseudonym
  first minted for them (the university stores it, or the key id it used), so nobody's figures split in two.
  Holders of an old key still recognise the pseudonyms it made (and can erase them); a leaked key exposes
  only the students minted with it (docs/security.md, "Rotating the pseudonym key").

The first form, ``ps_<32 hex>`` (no university, no key id), stays valid input (contract v1); such a seeker has
no recorded owner (events.ownership).
"""

from __future__ import annotations

import hashlib
import hmac
import re
from functools import lru_cache
from typing import Any

from events.base import _known_university

# The built-in key of development mode (the local stack, tests, the simulator's students) and its id; the key
# is refused in production (core.settings.Settings.pseudonym_secret).
DEVELOPMENT_KEY = "local-development-only-key"
DEVELOPMENT_KEY_ID = "dev"
KEY_ID_PATTERN = r"[a-z0-9]{1,12}"
ERASED_PREFIX = "erased."  # of the anonymous ids that replace erased seekers (never a valid pseudonym)
_KEYED = re.compile(rf"^ps\.([a-z]+)\.({KEY_ID_PATTERN})\.[0-9a-f]{{32}}$")


def pseudonymise(university: str, student_number: str, key: bytes | str, key_id: str = DEVELOPMENT_KEY_ID) -> str:
    if not student_number.strip():
        raise ValueError("student_number is empty")
    _known_university(university)
    if not re.fullmatch(KEY_ID_PATTERN, key_id):
        raise ValueError(f"the key id must be 1-12 lower-case letters or digits, not {key_id!r}")
    secret = key.encode() if isinstance(key, str) else key
    if len(secret) < 16:
        raise ValueError("the pseudonymisation key must be at least 16 bytes")
    digest = hmac.new(secret, f"{university}:{student_number.strip()}".encode(), hashlib.sha256).hexdigest()
    return f"ps.{university}.{key_id}.{digest[:32]}"


def named_seekers(data: object) -> tuple[str, ...]:
    """The pseudonyms an event's payload names (``seeker_id``, ``seeker_ids``)."""
    one_field, many_field = _seeker_fields(type(data))  # (a missing attribute of a pydantic model is slow)
    one = getattr(data, "seeker_id", None) if one_field else None
    many = (getattr(data, "seeker_ids", None) or ()) if many_field else ()
    if not many:
        return (one,) if one else ()
    return tuple(dict.fromkeys(([one] if one else []) + list(many)))


_SEEKER_FIELDS: dict[type, tuple[bool, bool]] = {}  # payload class -> (has seeker_id, has seeker_ids)


def _seeker_fields(cls: type) -> tuple[bool, bool]:
    known = _SEEKER_FIELDS.get(cls)
    if known is None:
        fields = getattr(cls, "model_fields", None)  # not a pydantic model: look at the object itself
        known = _SEEKER_FIELDS[cls] = (True, True) if fields is None else ("seeker_id" in fields,
                                                                            "seeker_ids" in fields)
    return known


@lru_cache(maxsize=16_384)  # every event naming a seeker asks (the erasure check); bounded: seekers come with history
def seeker_digest(seeker: str) -> str:
    """What the alliance keeps of an erased seeker, to refuse later events naming them: a SHA-256 of the
    pseudonym, never the pseudonym (docs/security.md, "Erasing a student")."""
    return hashlib.sha256(seeker.encode()).hexdigest()[:32]


def erasure_token(source: str, request_id: str) -> str:
    """The anonymous id an erased seeker's records carry from then on: made from the erasure request's own id
    (its source university and event id), so it cannot be computed from the pseudonym, and the worker and
    the read model agree on it."""
    return ERASED_PREFIX + hashlib.sha256(f"{source}/{request_id}".encode()).hexdigest()[:32]


def renamed(value: Any, seeker: str, anonymous: str) -> Any:
    """``value`` with every text equal to ``seeker`` replaced by ``anonymous``, also inside dicts (keys too),
    lists and tuples: how an erasure renames a seeker in the worker's table values and the read model's rows."""
    if isinstance(value, str):
        return anonymous if value == seeker else value
    if isinstance(value, dict):
        return {renamed(k, seeker, anonymous): renamed(v, seeker, anonymous) for k, v in value.items()}
    if isinstance(value, list):
        return [renamed(v, seeker, anonymous) for v in value]
    if isinstance(value, tuple):
        return tuple(renamed(v, seeker, anonymous) for v in value)
    return value


def minted_by(pseudonym: str) -> tuple[str, str] | None:
    """(university, key id) a pseudonym names; None for the first form (``ps_<hex>``), which names neither."""
    match = _KEYED.match(pseudonym)
    return (match.group(1), match.group(2)) if match else None
