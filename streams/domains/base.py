"""What a domain (one event family's pure handlers) provides to the batch engine."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from events.base import Event
from streams.contributions import Contributions, State


@dataclass(frozen=True)
class Domain:
    family: str
    state_key: Callable[[Event], str]
    apply: Callable[[State | None, Event], State]
    contributions: Callable[[State], Contributions]
    view: Callable[[State], tuple[str, str, dict[str, Any]] | None]
