"""Pseudonymisation of student ids: done at the university, before anything is published.

A pseudonym is ``ps_`` + the first 32 hex digits of HMAC-SHA256(key, "<university>:<student number>"). The key
is the alliance's shared secret (ALLIANCE_PSEUDONYM_KEY), so one student keeps one pseudonym alliance-wide
while nobody without the key can map it back. Names and phone numbers never enter events at all.
"""

from __future__ import annotations

import hashlib
import hmac

from events.base import _known_university

# The built-in key of development mode (the local stack, tests, the simulator's students); refused in
# production (core.settings.Settings.pseudonym_secret).
DEVELOPMENT_KEY = "local-development-only-key"


def pseudonymise(university: str, student_number: str, key: bytes | str) -> str:
    if not student_number.strip():
        raise ValueError("student_number is empty")
    _known_university(university)
    secret = key.encode() if isinstance(key, str) else key
    if len(secret) < 16:
        raise ValueError("the pseudonymisation key must be at least 16 bytes")
    digest = hmac.new(secret, f"{university}:{student_number.strip()}".encode(), hashlib.sha256).hexdigest()
    return f"ps_{digest[:32]}"
