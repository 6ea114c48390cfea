"""Hourly and daily event counts per family and university (Asia/Shanghai calendar)."""

from __future__ import annotations

from datetime import timedelta, timezone

from events.base import Event
from streams.state import Contributions, dimkey

CST = timezone(timedelta(hours=8), "Asia/Shanghai")


def window_counts(event: Event) -> Contributions:
    local = event.occurred_at.astimezone(CST)
    base = {"family": event.family, "university": event.source}
    hour = dimkey(base | {"granularity": "hour", "bucket": local.strftime("%Y-%m-%dT%H")})
    day = dimkey(base | {"granularity": "day", "bucket": local.strftime("%Y-%m-%d")})
    return {("windows", hour): {"events": 1}, ("windows", day): {"events": 1}}
