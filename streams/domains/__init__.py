"""Pure domain handlers, one module per event family.

Each module exposes ``state_key(event)``, ``apply(state, event) -> state``, ``contributions(state)`` and
``view(state)`` (the per-entity record published to an aggregated topic, or None). No I/O here.
"""

from __future__ import annotations

from streams.domains import jobfair, mentoring, recruitment, services
from streams.domains.base import Domain

__all__ = ["Domain", "domains"]


def domains() -> dict[str, Domain]:
    """Every family's domain, by family name."""
    return {m.DOMAIN.family: m.DOMAIN for m in (recruitment, jobfair, mentoring, services)}
