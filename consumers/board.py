"""The live fair board (pure): what the portal API keeps of ``alliance.agg.fairs`` and sends to a board.

``Boards`` folds the records of the fairs' aggregated topic (each validated against ``events.aggregates``)
into each fair's newest figures and their history (the topic's records in order: booths, distinct check-ins
and on-site offers over time, at most ``HISTORY`` points); ``message`` is what one server-sent event
carries to a board. The I/O (the Kafka consumer, the subscribers, the read-model look-up of the host
university's 1-1-3-1 progress) is in :mod:`consumers.feed`; the page is ``consumers/static/fair-board.html``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC
from pathlib import Path
from typing import Any

from events.aggregates import Fair, parse_record
from events.errors import EventValidationError

HISTORY = 500  # points kept per fair (oldest dropped)
PAGE = Path(__file__).with_name("static") / "fair-board.html"


@dataclass
class FairFigures:
    value: dict[str, Any] = field(default_factory=dict)  # the newest record's value
    updated_at: str = ""
    history: list[tuple[str, int, int, int]] = field(default_factory=list)  # (updated_at, booths, checkins, offers)


@dataclass
class Boards:
    fairs: dict[str, FairFigures] = field(default_factory=dict)
    rejected: int = 0  # records that were not a fair record (counted, never shown)

    def apply(self, key: bytes | None, value: bytes | None) -> str | None:
        """Fold one record of the fairs topic; the fair id it changed (None: nothing changed)."""
        if key is None:
            self.rejected += 1
            return None
        fair_id = key.decode("utf-8", "replace")
        if value is None:  # a tombstone: the fair is gone
            return fair_id if self.fairs.pop(fair_id, None) is not None else None
        try:
            record = parse_record("fairs", value)
        except EventValidationError:
            self.rejected += 1
            return None
        assert isinstance(record, Fair)
        updated_at = record.updated_at.astimezone(UTC).isoformat()  # one offset: the texts compare as times
        figures = self.fairs.setdefault(fair_id, FairFigures())
        if figures.updated_at and updated_at < figures.updated_at:
            return None  # an older record than the one shown (the topic is not ordered by time across producers)
        v = record.value
        figures.value, figures.updated_at = v.model_dump(mode="json"), updated_at
        point = (updated_at, v.booths, v.distinct_checkins, v.onsite_offers)
        if not figures.history or figures.history[-1][1:] != point[1:]:
            figures.history.append(point)
            del figures.history[:-HISTORY]
        return fair_id

    def message(self, fair_id: str, host: dict[str, Any] | None) -> str | None:
        """The JSON one server-sent event carries: the fair's newest figures, their history, and the host
        university's 1-1-3-1 progress (from the read model); None for an unknown fair."""
        figures = self.fairs.get(fair_id)
        if figures is None:
            return None
        return json.dumps({"fair_id": fair_id, "fair": figures.value, "updated_at": figures.updated_at,
                           "history": figures.history, "host": host}, ensure_ascii=False)
