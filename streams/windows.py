"""Hourly and daily event counts per family and university (Asia/Shanghai calendar)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from functools import lru_cache

from events.base import Event
from streams.contributions import Contributions, dimkey

CST = timezone(timedelta(hours=8), "Asia/Shanghai")


def window_counts(event: Event) -> Contributions:
    hour_bucket, day_bucket = _buckets(int(event.occurred_at.timestamp()) // 3600)
    base = {"family": event.family, "university": event.source}
    hour = dimkey(base | {"granularity": "hour", "bucket": hour_bucket})
    day = dimkey(base | {"granularity": "day", "bucket": day_bucket})
    return {("windows", hour): {"events": 1}, ("windows", day): {"events": 1}}


@lru_cache(maxsize=4096)
def _buckets(epoch_hour: int) -> tuple[str, str]:
    local = datetime.fromtimestamp(epoch_hour * 3600, CST)
    return local.strftime("%Y-%m-%dT%H"), local.strftime("%Y-%m-%d")


def month_of(iso: str) -> str:
    """The Asia/Shanghai calendar month (YYYY-MM) of an ISO 8601 time."""
    return datetime.fromisoformat(iso).astimezone(CST).strftime("%Y-%m")
