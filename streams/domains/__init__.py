"""Pure domain handlers, one module per event family.

Each module exposes ``state_key(event)``, ``apply(state, event) -> state``, ``contributions(state)`` and
``view(state)`` (the per-entity record published to an aggregated topic, or None). No I/O here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from events.base import Event
from streams.state import Contributions, State


@dataclass(frozen=True)
class Domain:
    family: str
    state_key: Callable[[Event], str]
    apply: Callable[[State | None, Event], State]
    contributions: Callable[[State], Contributions]
    view: Callable[[State], tuple[str, str, dict[str, Any]] | None]


def domains() -> dict[str, Domain]:
    from streams.domains import jobfair, mentoring, recruitment, services

    return {m.DOMAIN.family: m.DOMAIN for m in (recruitment, jobfair, mentoring, services)}
